"""SentimentClassifier: the shared Encoder, pooling over valid steps, dropout, a linear head."""
import numpy as np

from lm.layers.base import Layer, as_rng
from lm.layers.dropout import Dropout
from lm.layers.linear import TemporalLinear
from lm.layers.pooling import TemporalPooling
from lm.config.choices import POOLS
from lm.layers.losses import softmax_cross_entropy
from lm.models.encoder import Encoder


class SentimentClassifier(Layer):
    """ids (N, T) + mask (N, T) -> class scores (N, C).

        h      = encoder(ids, mask)                      (N, T', H)  H = encoder.output_size
        f      = pool(h over the valid steps of each row)  (N, H)    (encoder.out_mask)
        scores = dropout(f) @ head.W + head.b            (N, C)
        loss   = mean_n CE(scores_n, y_n)

    The encoder is the language model's `Encoder` module itself, added without a prefix,
    so the flat parameter names are the language model's (`embed.W`, `rnn0.Wx`, ...) plus
    `head.W` (H, C) and `head.b` (C,): a language model's `embed.*`/`rnn*.*` arrays load
    by name. Pooling "last" on a bidirectional encoder takes the forward half at each
    row's last valid step and the backward half at step 0 (where it has read the whole
    sentence). `bidirectional` None follows the encoder; True/False must agree with it.
    Cell "cnn" with pool "max" is the convolutional classifier: relu(Conv1D), max over time.
    Padded steps never reach the scores, so padding never changes a prediction.
    """

    def __init__(self, encoder, num_classes=2, pool="mean", bidirectional=None, dropout=0.0,
                 rng=None):
        super().__init__()
        if not isinstance(encoder, Encoder):
            raise ValueError(f"encoder must be an lm.models.encoder.Encoder, got {type(encoder)}")
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if bidirectional is not None and bool(bidirectional) != encoder.bidirectional:
            raise ValueError(f"bidirectional={bool(bidirectional)} but the encoder is "
                             f"{'' if encoder.bidirectional else 'not '}bidirectional")
        rng = as_rng(rng)
        self.num_classes, self.pool_mode = int(num_classes), pool
        self.bidirectional = encoder.bidirectional
        self.encoder = self.add_child("", encoder)
        # a bidirectional "last" reads the forward half at the end, the backward at step 0
        self._split_last = pool == "last" and self.bidirectional and encoder.cell != "bag"
        self.pool = self.add_child("pool", TemporalPooling(pool))
        self.drop = self.add_child("drop", Dropout(dropout, rng=rng))
        self.head = self.add_child("head", TemporalLinear(encoder.output_size, self.num_classes,
                                                          dtype=encoder.dtype, rng=rng))

    @classmethod
    def build(cls, vocab_size, embed_size=64, hidden_size=64, cell="lstm", num_layers=1,
              bidirectional=False, pool="mean", dropout=0.0, num_classes=2,
              dtype=np.float32, rng=None, filters=200, kernel_size=3, pool_size=3):
        """A classifier with a new Encoder; `dropout` applies to the encoder and the head.
        filters, kernel_size: the convolution of cells cnn and cnn-lstm; pool_size: the
        max-pool of cnn-lstm."""
        rng = as_rng(rng)
        enc = Encoder(vocab_size, embed_size, hidden_size, cell=cell, num_layers=num_layers,
                      dropout=dropout, bidirectional=bidirectional, dtype=dtype, rng=rng,
                      filters=filters, kernel_size=kernel_size, pool_size=pool_size)
        return cls(enc, num_classes=num_classes, pool=pool, dropout=dropout, rng=rng)

    def config(self):
        """The `build` arguments, JSON-able: what `config.json`'s "model" holds."""
        e = self.encoder
        return {"vocab_size": e.vocab_size, "embed_size": e.embed_size,
                "hidden_size": e.hidden_size, "cell": e.cell, "num_layers": e.num_layers,
                "bidirectional": e.bidirectional, "pool": self.pool_mode,
                "dropout": self.drop.p, "num_classes": self.num_classes, **e.conv_config()}

    @classmethod
    def from_config(cls, d, dtype=np.float32, rng=None):
        """Inverse of `config()` (weights are fresh: load them by name afterwards)."""
        keys = ("vocab_size", "embed_size", "hidden_size", "cell", "num_layers",
                "bidirectional", "pool", "dropout", "num_classes")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"classifier config lacks {', '.join(missing)}")
        conv = {k: d[k] for k in ("filters", "kernel_size", "pool_size") if k in d}
        return cls.build(**{k: d[k] for k in keys}, **conv, dtype=dtype, rng=rng)

    def forward(self, ids, mask=None):
        """ids: (N, T) ints, mask: (N, T) bool or None (all valid) -> scores (N, C)."""
        h, _ = self.encoder.forward(ids, mask=mask)           # (N, T', H)
        mask = self.encoder.out_mask                           # h's steps (cnn-lstm pools time)
        self._h_shape = h.shape
        if self._split_last:
            Hf = h.shape[2] // 2
            feats = np.concatenate([self.pool.forward(h[:, :, :Hf], mask), h[:, 0, Hf:]], axis=1)
        else:
            feats = self.pool.forward(h, mask)                 # (N, H)
        return self.head.forward(self.drop.forward(feats))     # (N, C)

    def backward(self, dscores):
        """dscores: (N, C) -> None; adds into every parameter gradient."""
        dfeats = self.drop.backward(self.head.backward(dscores))  # (N, H)
        if self._split_last:
            Hf = self._h_shape[2] // 2
            dh = np.zeros(self._h_shape, dtype=dfeats.dtype)
            dh[:, :, :Hf] = self.pool.backward(dfeats[:, :Hf])
            dh[:, 0, Hf:] += dfeats[:, Hf:]
        else:
            dh = self.pool.backward(dfeats)                      # (N, T, H)
        self.encoder.backward(dh)

    def loss(self, batch, state=None):
        """Mean cross-entropy of the labels; zeroes then fills `grads`.

        batch: Batch(inputs (N, T) ids, targets (N,) class ids, mask (N, T) or None).
        Returns (loss, {"count": N, "correct": right predictions, "probs": (N, C)}).
        Weight decay is the optimiser's (see `decayed_names`).
        """
        self.zero_grad()
        scores = self.forward(batch.inputs, batch.mask)
        y = np.asarray(batch.targets)
        probs = softmax(scores)
        correct = int(np.count_nonzero(probs.argmax(axis=1) == y))
        loss, dscores = softmax_cross_entropy(scores, y, overwrite_scores=True)
        self.backward(dscores)
        return float(loss), {"count": len(y), "correct": correct, "probs": probs}

    def decayed_names(self):
        """The parameters weight decay applies to: the weight matrices, not the biases."""
        return [name for name, p in self.params.items() if p.ndim >= 2]

    def predict_proba(self, ids, mask=None):
        """Class probabilities (N, C) in evaluation mode (no dropout); mode is restored."""
        was_training = self.training
        self.eval()
        try:
            return softmax(self.forward(ids, mask))
        finally:
            self.train(was_training)


def softmax(scores):
    """Row-wise softmax of (N, C) scores, shifted by the row max for stability."""
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
