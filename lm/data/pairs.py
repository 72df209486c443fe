"""Pairs for sequence to sequence: the addition questions, seeded splits, ids, batches.

Addition, drawn as the course draws it: each number gets a digit count uniform in
1..digits, then uniform digits (so "007" is the number 7); a question and its swapped
twin ("12+345", "345+12") count once, so the n questions are n distinct unordered pairs.
The question is padded with spaces after it to 2 * digits + 1 characters, the answer
before it to digits + 1: "231+432" -> " 663", "5+7    " -> "  12". Users write questions
without padding (`format_question` adds it); the model reverses the question itself
(`Seq2Seq(reverse=True)`).

Splits hold out whole sources: every pair of a held-out source is held out, so no
held-out question is ever seen in training. Ids share one character vocabulary
(`<unk>` 0, also padding, `<bos>` 1, `<eos>` 2); every target ends with `<eos>`.
"""
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lm.data.batch import Batch, pad_batch
from lm.data.batchers import LengthBatcher
from lm.text.vocab import LINE_SPECIALS, Vocab

_QUESTION = re.compile(r"(\d+)\+(\d+)")


def addition_size(digits):
    """How many distinct questions (unordered pairs of numbers below 10**digits) exist."""
    m = 10 ** digits
    return m * (m + 1) // 2


def draw_numbers(rng, digits, size):
    """Numbers as the course draws them: a digit count k uniform in 1..digits, then k
    uniform digits, i.e. a number uniform in [0, 10**k). Returns an int64 array of `size`."""
    k = rng.integers(1, digits + 1, size=size)
    return rng.integers(0, 10 ** k)


def addition_pairs(n, digits, seed=0):
    """n distinct addition questions [(question, answer), ...] (see the module docstring).

    Deterministic in (n, digits, seed). ValueError if fewer than n questions exist.
    """
    if n > addition_size(digits):
        raise ValueError(f"--num_questions {n:,}: only {addition_size(digits):,} distinct "
                         f"questions have numbers of at most {digits} digits")
    rng = np.random.default_rng(seed)
    seen, out = set(), []
    width = 2 * digits + 1
    while len(out) < n:
        ab = draw_numbers(rng, digits, (2, 4096))  # a chunk of candidates at a time
        for a, b in zip(ab[0].tolist(), ab[1].tolist()):
            key = (a, b) if a <= b else (b, a)
            if key in seen:
                continue
            seen.add(key)
            out.append((f"{a}+{b}".ljust(width), str(a + b).rjust(digits + 1)))
            if len(out) == n:
                break
    return out


def format_question(text, digits):
    """A question as a user writes it ("231+432", spaces anywhere) -> the model's padded
    source ("231+432", "5+7    "). ValueError unless it is two numbers of at most
    `digits` digits joined by +."""
    bare = "".join(str(text).split())
    m = _QUESTION.fullmatch(bare)
    if not m:
        raise ValueError(f"{text!r} is not an addition question like 231+432")
    if max(len(m.group(1)), len(m.group(2))) > digits:
        raise ValueError(f"{text!r}: this model adds numbers of at most {digits} digits")
    return f"{int(m.group(1))}+{int(m.group(2))}".ljust(2 * digits + 1)


def split_pairs(sources, val_frac, seed):
    """(train, val) index arrays: the distinct sources are permuted with `seed` and the
    first round(val_frac * distinct) of them held out with all their pairs."""
    if not 0 <= val_frac < 1:
        raise ValueError(f"--val_frac must be in [0, 1), got {val_frac}")
    uniq, inverse = np.unique(np.asarray(sources, dtype=object), return_inverse=True)
    perm = np.random.default_rng(seed).permutation(len(uniq))
    held = np.zeros(len(uniq), dtype=bool)
    held[perm[:int(round(len(uniq) * val_frac))]] = True
    val = held[inverse.reshape(-1)]
    train = np.flatnonzero(~val)
    if not len(train):
        raise ValueError(f"--val_frac {val_frac} leaves no training pairs out of "
                         f"{len(sources)}")
    return train, np.flatnonzero(val)


def build_vocab(pairs):
    """The character vocabulary of the pairs' sources and targets (specials first)."""
    counts = Counter()
    for s, t in pairs:
        counts.update(s)
        counts.update(t)
    return Vocab.build(counts, specials=LINE_SPECIALS, level="char")


@dataclass
class PairIds:
    """One split: the pairs' texts and ids (sources as they are, targets + <eos>)."""
    sources: list      # str
    targets: list      # str
    src_ids: list = field(default_factory=list)   # 1-D int64 arrays
    tgt_ids: list = field(default_factory=list)   # 1-D int64 arrays, ending in <eos>

    def __len__(self):
        return len(self.sources)


def encode_pairs(pairs, vocab):
    """PairIds of [(source, target), ...]; characters the vocabulary lacks become <unk>."""
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    src = [vocab.encode(list(s)).astype(np.int64) for s in sources]
    tgt = [np.append(vocab.encode(list(t)).astype(np.int64), vocab.eos_id) for t in targets]
    return PairIds(sources, targets, src, tgt)


class PairBatcher(LengthBatcher):
    """Length-bucketed batches of pairs: Batch(inputs (N, S) source ids, targets (N, T)
    target ids ending in <eos>, mask (N, S), target_mask (N, T)), padding id `pad_id`.
    Pairs are grouped by source length, then target length."""
    what = "pairs"

    def __init__(self, data, batch_size, rng=None, shuffle=True, pad_id=0):
        self.data, self.pad_id = data, pad_id
        src = np.array([len(x) for x in data.src_ids], dtype=np.int64)
        tgt = np.array([len(x) for x in data.tgt_ids], dtype=np.int64)
        super().__init__(src * (int(tgt.max(initial=0)) + 1) + tgt, batch_size, rng, shuffle)

    def make_batch(self, idx):
        ids, mask = pad_batch([self.data.src_ids[i] for i in idx], self.pad_id)
        tgt, tmask = pad_batch([self.data.tgt_ids[i] for i in idx], self.pad_id)
        return Batch(ids, tgt, mask, tmask)
