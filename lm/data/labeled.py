"""Labelled texts for classifiers: files to token ids, seeded splits, label names, batches.

Texts are tokenised with `lm.text.vocab.tokenize` at the run's level; at word level the
whitespace tokens are dropped (they carry no sentiment and double the sequence length)
unless the vocabulary comes from a language model that was trained with them. A text
with no token at all becomes one `<unk>`, so every example has at least one valid step.
"""
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lm.data.batch import Batch, pad_batch
from lm.data.batchers import LengthBatcher
from lm.text.labeled import BINARY_NAMES, read_labeled, read_pos_neg
from lm.text.vocab import Vocab, is_space, tokenize

# The classifier's own word vocabularies keep lm 0.1's tokens (whitespace is dropped there
# anyway); one started from a language model uses that model's tokeniser.
CLASSIFIER_TOKENIZER = "runs"

@dataclass
class LabeledIds:
    """One split: the texts, their token ids (one 1-D int array each) and labels (n,)."""
    texts: list
    ids: list
    labels: np.ndarray
    lengths: np.ndarray = field(init=False)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.lengths = np.array([len(x) for x in self.ids], dtype=np.int64)

    def __len__(self):
        return len(self.ids)


class TextBatcher(LengthBatcher):
    """Length-bucketed batches of labelled texts: Batch(inputs (N, T) ids padded with
    `pad_id`, targets (N,) class ids, mask (N, T) True on tokens)."""
    what = "texts"

    def __init__(self, data, batch_size, rng=None, shuffle=True, pad_id=0):
        self.data, self.pad_id = data, pad_id
        super().__init__(data.lengths, batch_size, rng, shuffle)

    def make_batch(self, idx):
        ids, mask = pad_batch([self.data.ids[i] for i in idx], self.pad_id)
        return Batch(ids, self.data.labels[idx], mask)


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


def text_tokens(text, level, lowercase, drop_spaces, tokenizer=CLASSIFIER_TOKENIZER):
    """The tokens of one text (whitespace tokens dropped when `drop_spaces`)."""
    toks = tokenize(text, level, lowercase, tokenizer if level == "word" else None)
    return [t for t in toks if not is_space(t)] if drop_spaces else toks


def build_vocab(texts, level, lowercase, min_count, drop_spaces):
    """The vocabulary of the training texts (`<unk>` first, id 0, also used as padding)."""
    counts = Counter()
    for t in texts:
        counts.update(text_tokens(t, level, lowercase, drop_spaces))
    if not counts:
        raise ValueError("the training texts contain no tokens")
    return Vocab.build(counts, min_count=min_count, level=level, lowercase=lowercase,
                       tokenizer=CLASSIFIER_TOKENIZER if level == "word" else None)


def encode_texts(texts, vocab, drop_spaces):
    """List of 1-D int64 id arrays, one per text, at least one id each (`<unk>`)."""
    out = []
    for t in texts:
        ids = vocab.encode(text_tokens(t, vocab.level, vocab.lowercase, drop_spaces,
                                       vocab.tokenizer))
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
