"""Seq2Seq: an encoder reads the source; a decoder started from its state writes the target."""
import numpy as np

from lm.config import choices
from lm.layers.base import Layer, as_rng
from lm.layers.bidirectional import reverse_valid
from lm.layers.dropout import Dropout
from lm.layers.embedding import Embedding
from lm.layers.linear import TemporalLinear
from lm.layers.losses import temporal_softmax_loss
from lm.models.encoder import CELLS, Encoder
from lm.models.sampling import sample_from_logits


class Seq2Seq(Layer):
    """source ids (N, S) + target ids (N, T) -> target scores (N, T, V).

        s_0    = the encoder's top layer after reading the source (reversed first when
                 `reverse`), at each row's last valid step: (h,) or (h, c), each (N, Hd)
        z_t    = h of s_0 at every step             ("repeat", the RepeatVector design)
               | dec_embed(y_{t-1}), y_{-1} = <bos>  ("teacher": teacher forcing)
               | [dec_embed(y_{t-1}); h of s_0]      ("teacher" with `feed_state`)
        d      = decoder(z, initial state s_0)       (N, T, Hd)
        scores = dropout(d) @ head.W + head.b        (N, T, V)
        loss   = mean over the valid target steps of CE(scores_t, y_t)

    A bidirectional encoder's final state is both directions side by side, [forward at
    the last valid step; backward after reading back to step 0] (N, 2H) for h and for c,
    so the decoder has Hd = 2H units and starts from that concatenation unchanged (no
    bridge layer). Otherwise Hd = hidden_size. The targets end with <eos>; at test time the
    decoder runs up to `max_target_len` steps (greedy, or top-k sampling) and a row stops
    at its <eos>. Source and target share one vocabulary; each side has its own
    embedding. Params: the encoder's (`embed.W`, `rnn0.*`), `dec_embed.W` (teacher only),
    `dec.*`, `head.W`, `head.b`.
    """

    def __init__(self, vocab_size, embed_size=32, hidden_size=128, cell="lstm", num_layers=1,
                 bidirectional=False, decoder_input="teacher", reverse=True, dropout=0.0,
                 max_target_len=8, bos_id=1, eos_id=2, feed_state=False, dtype=np.float32,
                 rng=None):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; a seq2seq model needs a recurrent cell: "
                             f"{', '.join(CELLS)}")
        if decoder_input not in choices.DECODER_INPUTS:
            raise ValueError(f"unknown decoder_input {decoder_input!r}; choose one of "
                             f"{', '.join(choices.DECODER_INPUTS)}")
        rng = as_rng(rng)
        self.decoder_input, self.reverse = decoder_input, bool(reverse)
        # the encoder's state as a second input at every step: teacher forcing only (it is
        # the whole input of "repeat")
        self.feed_state = bool(feed_state) and decoder_input == "teacher"
        self.max_target_len = _positive("max_target_len", max_target_len)
        self.bos_id, self.eos_id = int(bos_id), int(eos_id)
        self.encoder = self.add_child("", Encoder(vocab_size, embed_size, hidden_size, cell,
                                                  num_layers, dropout, bidirectional, dtype,
                                                  rng))
        if not (0 <= self.bos_id < vocab_size and 0 <= self.eos_id < vocab_size):
            raise ValueError(f"bos_id and eos_id must lie in [0, {vocab_size})")
        Hd = self.encoder.output_size
        if decoder_input == "teacher":
            self.dec_embed = self.add_child("dec_embed", Embedding(vocab_size, embed_size,
                                                                   dtype=dtype, rng=rng))
            dec_in = embed_size + (self.encoder.output_size if self.feed_state else 0)
        else:
            self.dec_embed, dec_in = None, Hd
        self.dec = self.add_child("dec", CELLS[cell](dec_in, Hd, dtype=dtype, rng=rng))
        self.drop = self.add_child("drop", Dropout(self.encoder.dropout, rng=rng))
        self.head = self.add_child("head", TemporalLinear(Hd, vocab_size, dtype=dtype, rng=rng))

    def config(self):
        """The constructor arguments, JSON-able: what `config.json`'s "model" holds."""
        e = self.encoder
        return {"vocab_size": e.vocab_size, "embed_size": e.embed_size,
                "hidden_size": e.hidden_size, "cell": e.cell, "num_layers": e.num_layers,
                "bidirectional": e.bidirectional, "decoder_input": self.decoder_input,
                "reverse": self.reverse, "dropout": e.dropout,
                "max_target_len": self.max_target_len, "bos_id": self.bos_id,
                "eos_id": self.eos_id, "feed_state": self.feed_state}

    @classmethod
    def from_config(cls, d, dtype=np.float32, rng=None):
        """Inverse of `config()` (weights are fresh: load them by name afterwards)."""
        keys = ("vocab_size", "embed_size", "hidden_size", "cell", "num_layers",
                "bidirectional", "decoder_input", "reverse", "dropout", "max_target_len",
                "bos_id", "eos_id")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"seq2seq config lacks {', '.join(missing)}")
        return cls(**{k: d[k] for k in keys}, feed_state=bool(d.get("feed_state", False)),
                   dtype=dtype, rng=rng)

    # ---- encoder ----
    def encode(self, ids, mask=None):
        """ids (N, S), mask (N, S) or None -> the top encoder layer's final state, a tuple
        of (N, Hd) arrays. The source is reversed (within each row's valid steps) first
        when `reverse`."""
        ids = np.asarray(ids)
        if self.reverse:
            lengths = None if mask is None else np.asarray(mask).sum(axis=1)
            ids = reverse_valid(ids, lengths)
        _, state = self.encoder.forward(ids, mask=mask)
        return state[-1]

    # ---- training ----
    def forward(self, ids, targets, mask=None, target_mask=None):
        """ids (N, S), targets (N, T) ids (teacher forcing reads them shifted right) ->
        scores (N, T, V)."""
        s0 = self.encode(ids, mask)
        targets = np.asarray(targets)
        N, T = targets.shape
        if self.decoder_input == "teacher":
            prev = np.empty((N, T), dtype=np.int64)
            prev[:, 0] = self.bos_id
            prev[:, 1:] = targets[:, :-1]
            z = self.dec_embed.forward(prev)                      # (N, T, E)
            if self.feed_state:                                   # (N, T, E + Hd)
                z = np.concatenate([z, np.repeat(s0[0][:, None, :], T, axis=1)], axis=2)
        else:
            z = np.repeat(s0[0][:, None, :], T, axis=1)           # (N, T, Hd)
        d = self.dec.forward(z, *s0, mask=target_mask)            # (N, T, Hd)
        return self.head.forward(self.drop.forward(d))

    def backward(self, dscores):
        """dscores (N, T, V) -> None; adds into every parameter gradient."""
        dd = self.drop.backward(self.head.backward(dscores))
        dz, dh0 = self.dec.backward(dd)                           # dh0: (N, Hd)
        if self.decoder_input == "teacher":
            E = self.dec_embed.dim
            self.dec_embed.backward(dz[:, :, :E])
            if self.feed_state:
                dh0 = dh0 + dz[:, :, E:].sum(axis=1)
        else:
            dh0 = dh0 + dz.sum(axis=1)      # the state fed at every step: its gradients add
        dfinal = (dh0, self.dec.dc0) if len(self.dec.state_names) == 2 else (dh0,)
        self.encoder.backward(None, [None] * (len(self.encoder.layers) - 1) + [dfinal])

    def loss(self, batch, state=None):
        """Mean cross-entropy per valid target step; zeroes then fills `grads`.

        batch: Batch(inputs (N, S) source ids, targets (N, T) target ids ending in <eos>,
        mask (N, S) or None, target_mask (N, T) or None). Returns (loss, {"count": valid
        target steps, "correct": of them predicted right (argmax)}).
        """
        self.zero_grad()
        tmask = batch.target_mask
        scores = self.forward(batch.inputs, batch.targets, batch.mask, tmask)
        y = np.asarray(batch.targets)
        right = scores.argmax(axis=2) == y
        correct = int(np.count_nonzero(right if tmask is None else right & tmask))
        loss, dscores = temporal_softmax_loss(scores, y, tmask, overwrite_scores=True,
                                              per_token=True)
        self.backward(dscores)
        return float(loss), {"count": batch.num_targets(), "correct": correct}

    def decayed_names(self):
        """The parameters weight decay applies to: the weight matrices, not the biases."""
        return [name for name, p in self.params.items() if p.ndim >= 2]

    # ---- decoding ----
    def generate(self, ids, mask=None, max_len=None, top_k=1, temperature=1.0, rng=None):
        """Decode in evaluation mode: greedy (top_k 1) or sampled from the top_k tokens.

        ids (N, S), mask (N, S) or None -> (N, L) int64 ids, L <= max_len (default
        `max_target_len`); each row's tokens up to its <eos>, then <eos> again. "teacher"
        feeds each chosen token back in (one `step_forward` per step); "repeat" needs no
        feedback and runs the decoder over all L steps at once.
        """
        L = self.max_target_len if max_len is None else _positive("max_len", max_len)
        rng = as_rng(rng)
        was_training = self.training
        self.eval()
        try:
            s0 = self.encode(ids, mask)
            N = s0[0].shape[0]
            W, b = self.head.params["W"], self.head.params["b"]
            out = np.full((N, L), self.eos_id, dtype=np.int64)
            done = np.zeros(N, dtype=bool)
            if self.decoder_input == "repeat":
                d = self.dec.forward(np.repeat(s0[0][:, None, :], L, axis=1), *s0)
                steps = (d[:, t] @ W + b for t in range(L))
            else:
                steps = self._teacher_steps(s0, out, L, W, b)
            for t, scores in enumerate(steps):
                tok = sample_from_logits(scores, temperature, top_k, rng=rng)
                out[:, t] = np.where(done, self.eos_id, tok)
                done |= out[:, t] == self.eos_id
                if done.all():
                    return out[:, :t + 1]
            return out
        finally:
            self.train(was_training)

    def _teacher_steps(self, s0, out, L, W, b):
        """Scores (N, V) of each step, feeding back the token written into out[:, t - 1]."""
        state = tuple(s0)
        E = self.dec_embed.params["W"]
        prev = np.full(len(out), self.bos_id, dtype=np.int64)
        for t in range(L):
            x = np.concatenate([E[prev], s0[0]], axis=1) if self.feed_state else E[prev]
            step = self.dec.step_forward(x, *state)
            state = tuple(step[:-1])
            yield state[0] @ W + b
            prev = out[:, t]


def _positive(name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
