"""The recall task's data: remember the first token of a sequence until its end.

    ids     C  e  b  h  a ... d      (length + 1 tokens)
    label   C                        (the loss is read after the last token)

The first token is one of `symbols` letters A, B, C, ... (ids 1..S); the `length` tokens
after it are noise letters a, b, c, ... (ids S+1..2S), so the symbol to recall is `length`
steps from the loss. Id 0 is `<unk>`, never used. Chance accuracy is 1 / S.
Training batches are drawn afresh (no example is seen twice, nothing to memorise); batch
k of epoch e depends only on (seed, e, k), so a run resumes from its position alone.
"""
import string

import numpy as np

from lm.data.batch import Batch
from lm.data.batchers import _Resumable
from lm.data.labeled import LabeledIds
from lm.text.vocab import Vocab


def recall_vocab(symbols):
    """`<unk>`, the symbols A.. (ids 1..S), the noise letters a.. (ids S+1..2S)."""
    return Vocab(["<unk>"] + list(string.ascii_uppercase[:symbols])
                 + list(string.ascii_lowercase[:symbols]), level="char")


def recall_examples(rng, n, length, symbols):
    """ids (n, length + 1) int64 and labels (n,) int64 in [0, symbols)."""
    ids = rng.integers(1 + symbols, 1 + 2 * symbols, (n, length + 1))
    labels = rng.integers(0, symbols, n)
    ids[:, 0] = 1 + labels
    return ids, labels


def held_out(length, symbols, n, seed):
    """A fixed held-out set (LabeledIds), from a stream no training batch draws from."""
    ids, labels = recall_examples(np.random.default_rng([seed, 1]), n, length, symbols)
    vocab = recall_vocab(symbols)
    texts = ["".join(vocab.itos[i] for i in row) for row in ids]
    return LabeledIds(texts, list(ids), labels)


class RecallBatcher(_Resumable):
    """`epoch_steps` fresh batches per epoch: Batch(inputs (N, length + 1), targets (N,))."""
    _shape_keys = ("batch_size", "length", "symbols", "seed")
    note = None

    def __init__(self, batch_size, length, symbols, seed, epoch_steps):
        self.batch_size, self.length, self.symbols = int(batch_size), int(length), int(symbols)
        self.seed, self.epoch_steps = int(seed), int(epoch_steps)

    def __len__(self):
        return self.epoch_steps

    def batch(self, k):
        rng = np.random.default_rng([self.seed, 0, self.epoch, k])
        return Batch(*recall_examples(rng, self.batch_size, self.length, self.symbols))
