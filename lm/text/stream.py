"""Loading a corpus: stream a text file in chunks, count tokens, encode once into ids.

Two passes over the file, never holding its text whole: the first counts tokens (and
builds the Vocab), the second writes ids into one preallocated array of the narrowest
dtype (uint8 when the vocabulary has at most 256 entries). Peak memory is about the id
array plus a few chunks, so a 100 MB file trains in a few hundred MB and a 200 MB
single-line file tokenises in well under three times its size.

Chunk boundaries are moved to safe points before tokenising: a word tokeniser sees
whole tokens ("runs": cut before the last run of non-space characters; "split" and
"words": after a line break, between a non-space character and " X", or between a tab
and "X"; "lines": the same, but after a line break only where a non-space character
follows it, and also between a non-space character and a line break; a "split" or
"lines" word longer than four chunks is cut where the chunk ends),
`lowercase` sees
whole words (`str.lower` of a final sigma depends on its neighbours), line mode sees
whole lines; iter_text already keeps CRLF pairs and multi-byte characters together.
The char level without lowercase needs no cut and takes a numpy fast path: code points
from `str.encode("utf-32-le")`, `np.bincount` to count, a lookup table to encode.
"""
import os
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np
import regex

from .files import CHUNK_BYTES, iter_text
from .vocab import (LINE_SPECIALS, SPECIALS, TOKENIZE, WORD_PATTERN, Vocab, check_tokenizer,
                    is_space)

NUM_CODEPOINTS = 0x110000
WORD_CHUNK_BYTES = 1 << 18
_SAFE_SPLIT = regex.compile(r"\s\S", flags=regex.REVERSE)  # last space -> non-space edge
_LAST_TOKEN = regex.compile(f"(?:{WORD_PATTERN})\\Z", flags=regex.REVERSE | regex.DOTALL)
# "split" and "words": a token ends at every line break, between a non-space character and
# " X", and between whitespace other than a space and a non-space character ("\tX")
_WORDS_SAFE_SPLIT = regex.compile(r"\n|\S(?= \S)|[^\S \n](?=\S)", flags=regex.REVERSE)
# "lines": a line break token runs on through the next line's indentation, so it may end
# where a non-space character follows it ("\nX") or begin after one ("X\n")
_LINES_SAFE_SPLIT = regex.compile(r"\n(?=\S)|\S(?=\n)|\S(?= \S)|[^\S \n](?=\S)",
                                  flags=regex.REVERSE)
_WORD_SAFE_POINTS = {"words": _WORDS_SAFE_SPLIT, "split": _WORDS_SAFE_SPLIT,
                     "lines": _LINES_SAFE_SPLIT}
# "words" without such a point: an edge between two non-space characters of different classes
_WORDS_EDGE = regex.compile(r"(?<=[\p{L}\p{M}])(?=[^\s\p{L}\p{M}])|(?<=\p{N})(?=[^\s\p{N}])"
                            r"|(?<=[^\s\p{L}\p{M}\p{N}])(?=\S)", flags=regex.REVERSE)


@dataclass
class Corpus:
    """A tokenised corpus.

    ids: (num_tokens,) narrowest int dtype, the whole token stream; in line mode the
        lines' tokens back to back (no newlines, no markers).
    offsets: line mode only, (num_lines + 1,) int64: line k is ids[offsets[k]:offsets[k+1]].
    """
    ids: np.ndarray
    vocab: Vocab
    path: str
    level: str
    lowercase: bool
    line_mode: bool
    num_bytes: int
    offsets: Optional[np.ndarray] = None
    unk_chars: Optional[np.ndarray] = None  # word level, not line mode: (num <unk>,) int64,
    # the characters of the text each <unk> in ids stands for, in stream order

    def num_chars(self, start=0):
        """Characters of the text of ids[start:] (the tokens' lengths, <unk> included);
        None where unknown (line mode, or a word corpus read without unk_chars)."""
        if self.line_mode or (self.level != "char" and self.unk_chars is None):
            return None
        ids = self.ids[start:]
        if self.level == "char":
            return len(ids)
        lens = np.array([len(t) for t in self.vocab.itos], dtype=np.int64)
        unk = ids == self.vocab.unk_id
        n_unk = int(np.count_nonzero(unk))
        tail = self.unk_chars[len(self.unk_chars) - n_unk:] if n_unk else self.unk_chars[:0]
        return int(lens[ids[~unk]].sum() + tail.sum())

    @property
    def name(self):
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def num_lines(self):
        return None if self.offsets is None else len(self.offsets) - 1


def _codepoints(text):
    """text -> (len,) uint32 code points (a view on one temporary bytes object)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _cut(text, tokenizer, lowercase, line_mode):
    """Last index where `text` may be cut without changing any token, or -1 if none."""
    if line_mode:
        return text.rfind("\n") + 1 or -1  # whole lines only
    if tokenizer == "char" and not lowercase:
        return len(text)
    if tokenizer in _WORD_SAFE_POINTS:
        m = _WORD_SAFE_POINTS[tokenizer].search(text)
        return m.end() if m is not None else -1
    m = _SAFE_SPLIT.search(text)
    return m.start() + 1 if m is not None else -1


def _forced_cut(text, tokenizer):
    """Cut for `text` without a safe point: at the last class edge (word level), else the end."""
    if tokenizer in ("split", "lines"):
        return len(text)  # a word of over 4 chunks: cut anywhere (both halves stay tokens)
    if tokenizer == "words":
        m = _WORDS_EDGE.search(text)
        return m.start() if m is not None and m.start() > 0 else len(text)
    m = _LAST_TOKEN.search(text) if tokenizer == "runs" else None
    return m.start() if m is not None and m.start() > 0 else len(text)


def _pieces(path, tokenizer, lowercase, line_mode, encoding, errors, chunk_bytes):
    """Yield the (lowered) text of `path` in pieces cut at safe points.

    Only the new chunk (and the two characters before it: "words" looks at three) is
    searched for a safe point;
    chunks without one wait in a list, so nothing is re-scanned or re-joined
    quadratically. Past `4 * chunk_bytes` characters without a space, word-level text is
    cut at a class edge (only a final sigma's lowercase could then differ) and char-level
    text anywhere; in line mode a line always waits for its end.
    """
    limit = 4 * chunk_bytes
    pending, size, head = [], 0, ""  # text waiting for a safe point; the chars before chunk
    for chunk in iter_text(path, encoding, errors, chunk_bytes):
        c = _cut(head + chunk, tokenizer, lowercase, line_mode)
        cut = size + c - len(head)  # in the coordinates of "".join(pending + [chunk])
        if cut < 0:
            c = -1  # the safe point lies in text already cut off
        head = (head + chunk)[-2:]
        pending.append(chunk)
        size += len(chunk)
        if c < 0 and (line_mode or size <= limit):
            continue
        text = "".join(pending)
        if c < 0:
            cut = _forced_cut(text, tokenizer)
        piece, rest = text[:cut], text[cut:]
        pending, size = [rest], len(rest)
        if piece:
            yield piece.lower() if lowercase else piece
    text = "".join(pending)
    if text:
        yield text.lower() if lowercase else text


def _lines(piece):
    """Non-blank lines of a piece of whole lines (blank and whitespace-only are skipped)."""
    return [line for line in piece.split("\n") if line and not is_space(line)]


def _count(pieces, tokenizer, line_mode):
    """First pass: (token counts (Counter), number of tokens, number of lines)."""
    counts, cp_counts, num_tokens, num_lines = Counter(), None, 0, 0
    level, word_tokens = ("char" if tokenizer == "char" else "word"), TOKENIZE[tokenizer]
    for piece in pieces:
        if line_mode:
            lines = _lines(piece)
            num_lines += len(lines)
            for line in lines:
                tokens = line if level == "char" else word_tokens(line)
                counts.update(tokens)
                num_tokens += len(tokens)
        elif level == "char":
            binc = np.bincount(_codepoints(piece))
            if cp_counts is None:
                cp_counts = np.zeros(NUM_CODEPOINTS, dtype=np.int64)
            cp_counts[:len(binc)] += binc
            num_tokens += len(piece)
        else:
            tokens = word_tokens(piece)
            counts.update(tokens)
            num_tokens += len(tokens)
    if cp_counts is not None:
        counts.update({chr(c): int(cp_counts[c]) for c in np.flatnonzero(cp_counts)})
    return counts, num_tokens, num_lines


def _char_table(vocab):
    """Lookup table code point -> id; zeros mean <unk> (id 0)."""
    lut = np.zeros(NUM_CODEPOINTS, dtype=vocab.dtype)
    for i, t in enumerate(vocab.itos):
        if len(t) == 1 and i >= len(vocab.specials):
            lut[ord(t)] = i
    return lut


def _encode(pieces, vocab, line_mode, num_tokens, num_lines):
    """Second pass: fill one preallocated id array (and line offsets)."""
    level, word_tokens = vocab.level, TOKENIZE[vocab.tokenizer]
    ids = np.empty(num_tokens, dtype=vocab.dtype)
    offsets = np.zeros(num_lines + 1, dtype=np.int64) if line_mode else None
    unk_chars = []  # word level: the lengths of the tokens that became <unk>
    lut = _char_table(vocab) if level == "char" else None
    pos, line = 0, 0
    for piece in pieces:
        if line_mode:
            lines = _lines(piece)
            if level == "char":
                lens = [len(s) for s in lines]
                new = lut[_codepoints("".join(lines))]
            else:
                toks = [word_tokens(s) for s in lines]
                lens = [len(t) for t in toks]
                new = vocab.encode([t for ts in toks for t in ts])
            offsets[line + 1:line + 1 + len(lines)] = pos + np.cumsum(lens)
            line += len(lines)
        elif level == "char":
            new = lut[_codepoints(piece)]
        else:
            toks = word_tokens(piece)
            new = vocab.encode(toks)
            unk_chars += [len(toks[i]) for i in np.flatnonzero(new == vocab.unk_id).tolist()]
        if pos + len(new) > num_tokens or (line_mode and line > num_lines):
            raise ValueError("the file changed while it was being read")
        ids[pos:pos + len(new)] = new
        pos += len(new)
    if pos != num_tokens:
        raise ValueError("the file changed while it was being read")
    unk = None if level == "char" or line_mode else np.array(unk_chars, dtype=np.int64)
    return ids, offsets, unk


def check_trainable(counts, num_tokens, path, level, line_mode):
    """One-line ValueError for text a language model cannot learn from."""
    what = "token" if level == "word" else "symbol"
    if num_tokens == 0:
        raise ValueError(f"{path} has no non-blank lines (--line_mode)" if line_mode
                         else f"{path} contains no text")
    if all(is_space(t) for t in counts):
        raise ValueError(f"{path} contains only whitespace ({num_tokens:,} {what}s)")
    if len(counts) == 1:
        (tok, n), = counts.items()
        raise ValueError(f"{path} has only one distinct {what} ({tok!r}, {n:,} times); "
                         "a language model needs at least two")


def load_corpus(path, level="char", lowercase=False, min_count=1, max_vocab=None,
                line_mode=False, encoding="utf-8", errors="strict", vocab=None,
                chunk_bytes=None, tokenizer=None):
    """Read, tokenise and encode a text file into a Corpus, in two streaming passes.

    tokenizer: one of the level's (None: its default). With `vocab` (resuming,
    evaluating, --init_from) that vocabulary is used as is, with its own level,
    tokeniser and lowercase; unknown tokens become `<unk>`. Otherwise a Vocab
    is built from the counts (specials `<unk>`, plus `<bos>`, `<eos>` in line mode).
    Raises FileNotFoundError / ValueError with a one-line message for unusable input.
    """
    path = os.fspath(path)
    if vocab is not None:
        level, lowercase, tokenizer = vocab.level, vocab.lowercase, vocab.tokenizer
    tokenizer = check_tokenizer(level, tokenizer)
    if chunk_bytes is None:  # word tokens cost ~60 bytes each while a chunk is processed
        chunk_bytes = CHUNK_BYTES if level == "char" else WORD_CHUNK_BYTES
    args = (path, tokenizer, lowercase, line_mode, encoding, errors, chunk_bytes)
    counts, num_tokens, num_lines = _count(_pieces(*args), tokenizer, line_mode)
    if vocab is None:
        check_trainable(counts, num_tokens, path, level, line_mode)
        vocab = Vocab.build(counts, min_count, max_vocab,
                            LINE_SPECIALS if line_mode else SPECIALS, level, lowercase,
                            tokenizer)
    elif num_tokens == 0:
        check_trainable(counts, num_tokens, path, level, line_mode)
    elif line_mode and vocab.bos_id is None:
        raise ValueError("--line_mode needs a vocabulary with <bos> and <eos> "
                         "(this one was built without --line_mode)")
    del counts
    ids, offsets, unk_chars = _encode(_pieces(*args), vocab, line_mode, num_tokens, num_lines)
    return Corpus(ids, vocab, path, level, bool(lowercase), bool(line_mode),
                  os.path.getsize(path), offsets, unk_chars)
