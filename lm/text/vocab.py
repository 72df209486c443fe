"""Tokenisers (char and word level) and the Vocab that maps tokens to integer ids.

Tokenisers (lm.config.choices.TOKENIZERS lists each level's, its default first):
- "char" (level char): every Unicode code point is a token.
- "lines" (level word, the default): the words of "split" below, and a line break
  carries the whitespace that opens the next line (its indentation, less the one space a
  word there carries): "\n    if" is "\n   ", " if". So an indented line costs as many
  tokens as its words plus one, as an unindented line does, and code or verse is not
  charged once per line for an indentation token; on text without indentation the tokens
  are those of "split".
- "split" (level word; the default before "lines"): the words of `str.split()` (runs of
  non-whitespace characters, punctuation included: " don't", " end."), each carrying the one space
  (U+0020) before it, as " the"; a line break is a token (" \n" with a space before it);
  other whitespace (indentation, a second space, tabs) forms tokens of its own. The
  token count is the word count plus the line breaks: the classic word level (Penn
  Treebank, PyTorch's word_language_model), lossless.
- "words" (level word): a run of letters (with combining marks), a run of
  digits, or any other single character (punctuation, symbols), each carrying the one
  space (U+0020) before it, as " the"; a line break is a token (" \n" with a space before
  it); other whitespace (indentation, a second space, tabs) forms tokens of its own.
  The token count is about the word count.
- "runs" (level word, lm 0.1): runs of letters, of digits, of whitespace, and every other
  character on its own; kept so that runs saved then tokenise as they did.
Whitespace is kept, so `detokenize(tokenize(text)) == text` exactly with every tokeniser.
`lowercase=True` lowercases the text (`str.lower`) before it is cut into tokens.

Vocab ids: the specials come first, `<unk>` is always id 0 (so padding with 0 and a
mask is safe, and a lookup table filled with zeros maps unknown symbols to `<unk>`);
line mode adds `<bos>` = 1 and `<eos>` = 2. Then the tokens by decreasing count, ties
by token string, so a vocabulary is a pure function of the counts. Unknown tokens map
to `<unk>`, never to a KeyError; so does the text's own marker for them, a word `<unk>`
(Penn Treebank's, WikiText's), which is no vocabulary entry of its own.
"""
import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from itertools import repeat

import numpy as np
import regex

from lm.config.choices import LEGACY_TOKENIZERS, TOKENIZERS

UNK, BOS, EOS = "<unk>", "<bos>", "<eos>"
SPECIALS = (UNK,)
LINE_SPECIALS = (UNK, BOS, EOS)

# Class-run tokens: a boundary depends only on the two characters beside it, which is
# what lets lm.text.stream tokenise a file chunk by chunk (see _SAFE_SPLIT there).
WORD_PATTERN = r"[\p{L}\p{M}]+|\p{N}+|\s+|."
WORD_RE = regex.compile(WORD_PATTERN, flags=regex.DOTALL)
# The same classes for ASCII text, where the stdlib `re` is about twice as fast
# (White_Space in ASCII is \t \n \v \f \r and space; not \x1c-\x1f as `re`'s \s has).
_ASCII_WORD_RE = re.compile(r"[A-Za-z]+|[0-9]+|[\t\n\x0b\x0c\r ]+|.", flags=re.DOTALL)
_SPACE_RE = regex.compile(r"\s+")

# "words" and "split": a token carries at most one space before it. A whitespace run
# followed by a word loses its last space to the word (the lazy run stops before " X");
# a line break ends a token; any other whitespace run is a token. Below the same rule for
# ASCII text with the stdlib `re`, about twice as fast (the same whitespace set as
# `regex`'s \s: \t \n \v \f \r and space).
_SPACES = r" ?\n|[^\S\n]+?(?= [\S\n])|[^\S\n]+"
_ASCII_SPACES = r" ?\n|[\t\x0b\x0c\r ]+?(?= [^\t\x0b\x0c\r ])|[\t\x0b\x0c\r ]+"
# "words": a word is a run of letters, a run of digits or one other character.
WORDS_PATTERN = r" ?[\p{L}\p{M}]+| ?\p{N}+| ?[^\s\p{L}\p{M}\p{N}]|" + _SPACES
WORDS_RE = regex.compile(WORDS_PATTERN)
_ASCII_WORDS_RE = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\t\n\x0b\x0c\r A-Za-z0-9]|"
                             + _ASCII_SPACES)
# "split": a word is any run of non-whitespace (str.split()'s words).
SPLIT_PATTERN = r" ?\S+|" + _SPACES
SPLIT_RE = regex.compile(SPLIT_PATTERN)
_ASCII_SPLIT_RE = re.compile(r" ?[^\t\n\x0b\x0c\r ]+|" + _ASCII_SPACES)
# "lines": "split", but a line break takes the whitespace after it, all but a last space
# that a word follows (the lazy run stops before " X"); the rest of the rule as _SPACES.
_LINE_BREAK = r" ?\n[^\S\n]*?(?= \S)| ?\n[^\S\n]*"
_ASCII_LINE_BREAK = (r" ?\n[\t\x0b\x0c\r ]*?(?= [^\t\n\x0b\x0c\r ])"
                     r"| ?\n[\t\x0b\x0c\r ]*")
LINES_PATTERN = r" ?\S+|" + _LINE_BREAK + "|" + _SPACES
LINES_RE = regex.compile(LINES_PATTERN)
_ASCII_LINES_RE = re.compile(r" ?[^\t\n\x0b\x0c\r ]+|" + _ASCII_LINE_BREAK + "|"
                             + _ASCII_SPACES)


def _char_tokens(text):
    return list(text)


def run_tokens(text):
    """"runs" tokens of `text` (no lowercasing): lm 0.1's word level."""
    return (_ASCII_WORD_RE if text.isascii() else WORD_RE).findall(text)


def words_tokens(text):
    """"words" tokens of `text` (no lowercasing): " the", ",", " \n", "  " (indentation)."""
    return (_ASCII_WORDS_RE if text.isascii() else WORDS_RE).findall(text)


def split_tokens(text):
    """"split" tokens of `text` (no lowercasing): " don't", " end.", " \n", "  " (indentation)."""
    return (_ASCII_SPLIT_RE if text.isascii() else SPLIT_RE).findall(text)


def lines_tokens(text):
    """"lines" tokens of `text` (no lowercasing): " end.", " \n", "\n   " + " if"."""
    return (_ASCII_LINES_RE if text.isascii() else LINES_RE).findall(text)


word_tokens = run_tokens  # the name lm 0.1 gave it
TOKENIZE = {"char": _char_tokens, "runs": run_tokens, "words": words_tokens,
            "split": split_tokens, "lines": lines_tokens}


def check_level(level):
    """Raise ValueError unless `level` is a known tokenisation level."""
    if level not in TOKENIZERS:
        raise ValueError(f"--level must be one of {', '.join(TOKENIZERS)}, not {level!r}")
    return level


def check_tokenizer(level, tokenizer=None):
    """The tokeniser's name: `tokenizer` if it is one of `level`'s, the level's default
    when None or ""; ValueError listing the level's tokenisers otherwise."""
    choices = TOKENIZERS[check_level(level)]
    if tokenizer is None or tokenizer == "":
        return choices[0]
    if tokenizer not in choices:
        raise ValueError(f"--tokenizer must be one of {', '.join(choices)} at level {level}, "
                         f"not {tokenizer!r}")
    return tokenizer


def tokenize(text, level="char", lowercase=False, tokenizer=None):
    """Cut `text` (str) into a list of str tokens; `"".join(tokens)` is the (lowered) text.
    tokenizer: one of `level`'s (None: the level's default, "lines" at word level)."""
    return TOKENIZE[check_tokenizer(level, tokenizer)](text.lower() if lowercase else text)


def detokenize(tokens, level="char"):
    """Inverse of tokenize: every tokeniser keeps whitespace, so the text is the concatenation."""
    check_level(level)
    return "".join(tokens)


def is_space(token):
    """True for a token made only of (Unicode) whitespace."""
    return _SPACE_RE.fullmatch(token) is not None


def id_dtype(size):
    """Narrowest unsigned/int dtype for ids < size: uint8, uint16 or int32."""
    if size <= 1 << 8:
        return np.dtype(np.uint8)
    if size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


class Vocab:
    """Bidirectional token <-> id map. `itos`: list of tokens, `stoi`: dict token -> id."""

    def __init__(self, itos, specials=SPECIALS, level="char", lowercase=False, tokenizer=None):
        itos, specials = [str(t) for t in itos], tuple(specials)
        if not specials or specials[0] != UNK or list(itos[:len(specials)]) != list(specials):
            raise ValueError(f"vocabulary must start with the specials {specials} "
                             f"and {UNK!r} must be first")
        if len(set(itos)) != len(itos):
            raise ValueError("vocabulary has duplicate tokens")
        self.itos, self.specials = itos, specials
        self.level, self.lowercase = check_level(level), bool(lowercase)
        self.tokenizer = check_tokenizer(level, tokenizer)
        self.stoi = {t: i for i, t in enumerate(itos)}
        self.unk_id = 0
        self.bos_id = self.stoi[BOS] if BOS in specials else None
        self.eos_id = self.stoi[EOS] if EOS in specials else None
        self.dtype = id_dtype(len(itos))

    @classmethod
    def build(cls, tokens_or_counter, min_count=1, max_vocab=None, specials=SPECIALS,
              level="char", lowercase=False, tokenizer=None):
        """Vocabulary of the tokens seen at least `min_count` times, at most `max_vocab`
        entries in all (specials included), most frequent first. A word that is the
        text's own unknown-word marker (" <unk>", as in Penn Treebank and WikiText) is
        no entry of its own: it encodes as `<unk>`, with the rare words."""
        specials = tuple(specials) if UNK in specials else (UNK,) + tuple(specials)
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) \
                or min_count < 1:
            raise ValueError(f"--min_count must be a positive integer, not {min_count!r}")
        if max_vocab is not None and (isinstance(max_vocab, bool) or not isinstance(
                max_vocab, (int, np.integer)) or max_vocab <= len(specials)):
            raise ValueError(f"--max_vocab must be an integer above {len(specials)} "
                             f"(the special tokens {', '.join(specials)}), not {max_vocab!r}")
        counts = tokens_or_counter if isinstance(tokens_or_counter, Mapping) \
            else Counter(tokens_or_counter)
        kept = sorted(((c, t) for t, c in counts.items() if c >= min_count and
                       t not in specials and t.lstrip(" ") != UNK),
                      key=lambda ct: (-ct[0], ct[1]))
        if not kept:
            top = max(counts.values(), default=0)
            raise ValueError(f"--min_count {min_count} leaves no tokens in the vocabulary "
                             f"(the most frequent token occurs {top} times)")
        itos = list(specials) + [t for _, t in kept]
        if max_vocab is not None:
            itos = itos[:max_vocab]
        return cls(itos, specials, level, lowercase, tokenizer)

    def __len__(self):
        return len(self.itos)

    def __contains__(self, token):
        return token in self.stoi

    def __getitem__(self, token):
        """Id of `token`, `unk_id` if unknown."""
        return self.stoi.get(token, self.unk_id)

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.to_json() == other.to_json()

    def encode(self, tokens):
        """tokens: list of str -> ids (len,) in the narrowest dtype; unknown -> unk_id."""
        lookup = map(self.stoi.get, tokens, repeat(self.unk_id))  # map(): fastest loop here
        return np.fromiter(lookup, dtype=self.dtype, count=len(tokens))

    def decode(self, ids):
        """ids: iterable of ints -> list of str tokens. Ids out of range raise ValueError."""
        ids = np.asarray(ids).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.itos)):
            raise ValueError(f"token id out of range [0, {len(self.itos)})")
        return [self.itos[i] for i in ids.tolist()]

    def encode_text(self, text):
        """Tokenise `text` at this vocabulary's level and case, then encode it."""
        return self.encode(self.tokenize(text))

    def tokenize(self, text):
        """`text` cut by this vocabulary's tokeniser, lowered if it is lowercase."""
        return tokenize(text, self.level, self.lowercase, self.tokenizer)

    def decode_text(self, ids, keep_specials=False):
        """ids -> text. `<bos>`/`<eos>` are dropped unless keep_specials; `<unk>` shows."""
        drop = set() if keep_specials else {self.bos_id, self.eos_id} - {None}
        ids = [i for i in np.asarray(ids).ravel().tolist() if i not in drop]
        return detokenize(self.decode(ids), self.level)

    def closest(self, token, n=3):
        """Up to `n` vocabulary tokens that look like `token`, best first (for warnings).

        Case and accent variants come first (they matter for single characters, where
        difflib's ratio is useless), then difflib's close matches.
        """
        out = []
        bare = "".join(c for c in unicodedata.normalize("NFKD", token)
                       if not unicodedata.combining(c))
        for cand in (token.lower(), token.upper(), token.capitalize(), bare, bare.lower(),
                     bare.upper()):
            if cand != token and cand in self.stoi and cand not in out:
                out.append(cand)
        lowered = {}  # case-insensitive matching, most frequent spelling kept
        for t in self.itos[len(self.specials):]:
            if t not in out:
                lowered.setdefault(t.lower(), t)
        out += [lowered[m] for m in difflib.get_close_matches(token.lower(), list(lowered),
                                                              n=n, cutoff=0.6)]
        return list(dict.fromkeys(out))[:n]

    def to_json(self):
        """A JSON-able dict that from_json turns back into an equal Vocab."""
        return {"format": "lm.vocab", "version": 2, "level": self.level,
                "tokenizer": self.tokenizer, "lowercase": self.lowercase, "specials": list(self.specials),
                "itos": list(self.itos)}

    @classmethod
    def from_json(cls, d):
        """Inverse of to_json; ValueError (one line) for anything malformed. A vocabulary
        saved without "tokenizer" (lm 0.1) keeps the tokeniser of its time ("runs")."""
        if not isinstance(d, dict) or d.get("format") != "lm.vocab":
            raise ValueError("not an lm vocabulary (missing \"format\": \"lm.vocab\")")
        itos, specials = d.get("itos"), d.get("specials", list(SPECIALS))
        for key, val in (("itos", itos), ("specials", specials)):
            if not isinstance(val, list) or not all(isinstance(t, str) for t in val):
                raise ValueError(f"vocabulary {key!r} must be a list of strings")
        if not isinstance(d.get("lowercase", False), bool):
            raise ValueError("vocabulary 'lowercase' must be true or false")
        level = d.get("level", "char")
        if level not in TOKENIZERS:
            raise ValueError(f"vocabulary 'level' must be one of {', '.join(TOKENIZERS)}")
        tokenizer = d.get("tokenizer", LEGACY_TOKENIZERS[level])
        if not isinstance(tokenizer, str) or tokenizer not in TOKENIZERS[level]:
            raise ValueError(f"vocabulary 'tokenizer' must be one of "
                             f"{', '.join(TOKENIZERS[level])} at level {level}")
        return cls(itos, specials, level, d.get("lowercase", False), tokenizer)

    def __repr__(self):
        return (f"Vocab({len(self)} tokens, level={self.level!r}, "
                f"tokenizer={self.tokenizer!r}, lowercase={self.lowercase}, specials={self.specials})")
