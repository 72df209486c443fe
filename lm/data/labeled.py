"""Sentiment data: labelled files to token ids, seeded train/val/test splits, label names.

Texts are tokenised with `lm.text.vocab.tokenize` at the run's level; at word level the
whitespace tokens are dropped (they carry no sentiment and double the sequence length)
unless the vocabulary comes from a language model that was trained with them. A text
with no token at all becomes one `<unk>`, so every example has at least one valid step.
"""
from collections import Counter

import numpy as np

from lm.text.labeled import BINARY_NAMES, read_labeled, read_pos_neg
from lm.training.sentiment_task import LabeledIds
from lm.text.vocab import Vocab, is_space, tokenize

# integer labels 0/1 are named negative/positive by lm.text.labeled: either name matches
_ALIASES = {BINARY_NAMES[0]: "0", BINARY_NAMES[1]: "1", "0": BINARY_NAMES[0],
            "1": BINARY_NAMES[1]}


def read_examples(path, neg=None, encoding="utf-8", errors="strict", min_classes=2):
    """LabeledData of a `label<TAB>text` file, or of a positive file and a --neg file."""
    if neg:
        return read_pos_neg(path, neg, encoding, errors)
    return read_labeled(path, encoding, errors, min_classes=min_classes)


def class_index(data, classes, source):
    """data.labels re-indexed into `classes` (the training run's label names), (n,) int64."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(data), dtype=np.int64)
    for k, name in enumerate(data.label_names):
        sel = data.labels == k
        if not sel.any():
            continue
        i = index.get(name, index.get(_ALIASES.get(name)))
        if i is None:
            raise ValueError(f"{source} has the label {name!r}, which the classifier does not "
                             f"know (its classes: {', '.join(classes)})")
        out[sel] = i
    return out


def split_indices(n, val_frac, test_frac, seed):
    """A seeded random split of range(n) -> (train, val, test) index arrays.

    The test set is the first round(n * test_frac) of a permutation drawn from
    `np.random.default_rng(seed)`, validation the next round(n * val_frac), so 800 rows
    with 0.125 / 0.125 give 600 / 100 / 100.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(n * test_frac)), int(round(n * val_frac))
    if n - n_test - n_val < 1:
        raise ValueError(f"--val_frac {val_frac} and --test_frac {test_frac} leave no "
                         f"training examples out of {n}")
    return perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]


def text_tokens(text, level, lowercase, drop_spaces):
    """The tokens of one text (whitespace tokens dropped when `drop_spaces`)."""
    toks = tokenize(text, level, lowercase)
    return [t for t in toks if not is_space(t)] if drop_spaces else toks


def build_vocab(texts, level, lowercase, min_count, drop_spaces):
    """The vocabulary of the training texts (`<unk>` first, id 0, also used as padding)."""
    counts = Counter()
    for t in texts:
        counts.update(text_tokens(t, level, lowercase, drop_spaces))
    if not counts:
        raise ValueError("the training texts contain no tokens")
    return Vocab.build(counts, min_count=min_count, level=level, lowercase=lowercase)


def encode_texts(texts, vocab, drop_spaces):
    """List of 1-D int64 id arrays, one per text, at least one id each (`<unk>`)."""
    out = []
    for t in texts:
        ids = vocab.encode(text_tokens(t, vocab.level, vocab.lowercase, drop_spaces))
        out.append(ids.astype(np.int64) if len(ids) else np.array([vocab.unk_id], np.int64))
    return out


def subset(texts, labels, idx, vocab, drop_spaces):
    """LabeledIds of the examples `idx` (texts: list of str, labels: (n,) class ids)."""
    sub = [texts[i] for i in idx]
    return LabeledIds(sub, encode_texts(sub, vocab, drop_spaces), np.asarray(labels)[idx])


def unk_rate(data, vocab):
    """Fraction of a split's token ids that are `<unk>` (0.0 for an empty split)."""
    n = sum(len(x) for x in data.ids)
    return sum(int((x == vocab.unk_id).sum()) for x in data.ids) / n if n else 0.0
