"""Encoder: token embedding + a stack of recurrent layers (or a convolution), shared by the LM
and the classifier."""
import numpy as np

from lm.config import choices
from lm.config.checks import check_size
from lm.layers.base import Layer, as_rng
from lm.layers.bidirectional import Bidirectional
from lm.layers.conv import Conv1D, MaxPool1D
from lm.layers.dropout import Dropout
from lm.layers.embedding import Embedding
from lm.layers.gru import GRU
from lm.layers.lstm import LSTM
from lm.layers.rnn import VanillaRNN

CELLS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU}  # lm.config.choices.CELLS -> layer
BAG = "bag"  # no recurrence: the encoder returns the embeddings (pooled by the classifier)
CNN, CNN_LSTM = choices.CONV_ENCODERS  # Conv1D + ReLU; the same, max-pooled, then LSTMs
assert set(CELLS) == set(choices.CELLS) and set(choices.ENCODERS) == {*CELLS, BAG, CNN, CNN_LSTM}


def check_dropout(p):
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"dropout must be a number in [0, 1), got {p!r}") from None
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    return p


class Encoder(Layer):
    """ids (N, T) -> hidden states (N, T_out, H_out).

        e   = dropout(Embedding(ids))                  (N, T, E)   [embed_dropout]
        h_0 = rnn0(e, state[0]);  h_l = rnn_l(dropout(h_{l-1}), state[l])
    H_out = hidden_size (2 * hidden_size when bidirectional); for cell "bag" there is no
    recurrence, h = e and H_out = embed_size. Params `embed.W`, `rnn0.Wx`, `rnn0.Wh`, ...
    (bidirectional: `rnn0.fwd.Wx`, `rnn0.bwd.Wx`, ...). Dropout masks come from `rng`.

    Convolutional cells (params `conv.W` (K, E, F), `conv.b` (F,)):
        "cnn":      h = relu(Conv1D(e))                         (N, T, F),  H_out = F
        "cnn-lstm": c = dropout(MaxPool1D(relu(Conv1D(e)), P))  (N, ceil(T/P), F)
                    h = the LSTM stack above, read over c       (N, ceil(T/P), H_out)
    Conv1D pads "same" (kernel K = kernel_size, F = filters); the pool takes windows of
    P = pool_size steps, the time axis padded to a multiple of P with masked steps, so a
    text's windows are the same whatever the batch's length. After forward, `out_mask`
    (N, T_out) is the mask of h's steps (the input mask, or the pooled one for cnn-lstm).
    """

    def __init__(self, vocab_size, embed_size, hidden_size, cell="lstm", num_layers=1,
                 dropout=0.0, bidirectional=False, dtype=np.float32, rng=None,
                 embed_dropout=True, filters=200, kernel_size=3, pool_size=3):
        super().__init__()
        if cell not in choices.ENCODERS:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join([*CELLS, BAG])}"
                             f", {', '.join(choices.CONV_ENCODERS)}")
        self.vocab_size = check_size("vocab_size", vocab_size, flag=False)
        self.embed_size = check_size("embed_size", embed_size, flag=False)
        self.hidden_size = check_size("hidden_size", hidden_size, flag=False)
        self.num_layers = check_size("num_layers", num_layers, flag=False)
        self.dropout = check_dropout(dropout)
        self.cell = cell
        self.bidirectional = bool(bidirectional)
        self.embed_dropout = bool(embed_dropout)
        self.filters = check_size("filters", filters, flag=False)
        self.kernel_size = check_size("kernel_size", kernel_size, flag=False)
        self.pool_size = check_size("pool_size", pool_size, flag=False)
        if cell == CNN and (self.bidirectional or self.num_layers != 1):
            raise ValueError("cell 'cnn' has one convolution and reads no direction: "
                             "num_layers must be 1 and bidirectional False")
        self._dtype = dtype
        rng = as_rng(rng)
        self.rng = rng
        self.embed = self.add_child("embed", Embedding(self.vocab_size, self.embed_size,
                                                       dtype=dtype, rng=rng))
        p_embed = self.dropout if self.embed_dropout else 0.0
        self.drop_embed = self.add_child("drop_embed", Dropout(p_embed, rng=rng))
        self.layers, self.drops = [], []
        self.conv = self.maxpool = None
        self.out_mask = None
        if cell == BAG:
            self.output_size = self.embed_size
            return
        in_dim = self.embed_size
        if cell in (CNN, CNN_LSTM):
            self.conv = self.add_child("conv", Conv1D(in_dim, self.filters, self.kernel_size,
                                                      "same", dtype=dtype, rng=rng))
            in_dim = self.output_size = self.filters
            if cell == CNN:
                return
            self.maxpool = self.add_child("maxpool", MaxPool1D(self.pool_size))
            self.drop_conv = self.add_child("drop_conv", Dropout(self.dropout, rng=rng))
        rnn = CELLS["lstm" if cell == CNN_LSTM else cell]
        for i in range(self.num_layers):
            if self.bidirectional:
                layer = Bidirectional(rnn(in_dim, self.hidden_size, dtype=dtype, rng=rng),
                                      rnn(in_dim, self.hidden_size, dtype=dtype, rng=rng))
            else:
                layer = rnn(in_dim, self.hidden_size, dtype=dtype, rng=rng)
            self.layers.append(self.add_child(f"rnn{i}", layer))
            if i > 0:  # dropout between layers (on the input of every layer above the first)
                self.drops.append(self.add_child(f"drop{i}", Dropout(self.dropout, rng=rng)))
            in_dim = self.hidden_size * (2 if self.bidirectional else 1)
        self.output_size = in_dim

    def config(self):
        """The constructor arguments, JSON-able (dtype and rng excluded; the convolution's
        sizes only for the convolutional cells)."""
        return {"vocab_size": self.vocab_size, "embed_size": self.embed_size,
                "hidden_size": self.hidden_size, "cell": self.cell,
                "num_layers": self.num_layers, "dropout": self.dropout,
                "bidirectional": self.bidirectional, "embed_dropout": self.embed_dropout,
                **self.conv_config()}

    def conv_config(self):
        """{"filters", "kernel_size", "pool_size"} as this cell uses them ({} for the others)."""
        if self.cell == CNN:
            return {"filters": self.filters, "kernel_size": self.kernel_size}
        if self.cell == CNN_LSTM:
            return {"filters": self.filters, "kernel_size": self.kernel_size,
                    "pool_size": self.pool_size}
        return {}

    def forward(self, ids, state=None, mask=None):
        """ids: (N, T) ints; state: None or a list with one `final_state` tuple per layer
        ((h,) or (h, c), each (N, H)); mask: (N, T) bool or None.

        Returns h: (N, T_out, H_out) (its mask: `out_mask`) and the new state (a list of
        copied `final_state` tuples; [] for "bag" and "cnn"). The incoming state is used as
        h0/c0 only: no gradient flows into it (truncated BPTT). Bidirectional and
        convolutional encoders cannot carry state.
        """
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids must be (N, T), got shape {ids.shape}")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != ids.shape:
                raise ValueError(f"mask shape {mask.shape} does not match ids {ids.shape}")
        if state is not None:
            if self.conv is not None:
                raise ValueError(f"a {self.cell} encoder reads whole texts: it carries no state")
            if self.bidirectional:
                raise ValueError("a bidirectional encoder cannot carry state between calls")
            if len(state) != len(self.layers):
                raise ValueError(f"state has {len(state)} layers, the encoder {len(self.layers)}")
        x = self.drop_embed.forward(self.embed.forward(ids))  # (N, T, E)
        self._mask = self.out_mask = mask
        if self.cell == BAG:
            if mask is not None:  # padded steps output zero, as in the recurrent layers
                x = x * mask[:, :, None].astype(x.dtype)
            return x, []
        if self.conv is not None:
            x, mask = self._conv_forward(x, mask)
            if self.cell == CNN:
                return x, []
        new_state = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.drops[i - 1].forward(x)
            init = () if state is None or state[i] is None else tuple(state[i])
            x = layer.forward(x, *init, mask=mask)
            final = getattr(layer, "final_state", None)
            # copies: a layer may reuse its buffers on the next call
            new_state.append(None if final is None else tuple(np.array(a) for a in final))
        return x, new_state

    def _conv_forward(self, x, mask):
        """e (N, T, E), mask -> relu(conv(e)) (cnn) or its max-pool (cnn-lstm), out mask."""
        r = self.conv.forward(x, mask)                        # (N, T, F), padded steps 0
        np.maximum(r, 0, out=r)                               # ReLU in place
        self._relu = r
        if self.cell == CNN:
            return r, mask
        N, T, F = r.shape
        P = self.pool_size
        Tp = -(-T // P) * P                                   # T rounded up to whole windows
        if Tp != T:  # masked steps fill the last window, so no text loses its last steps
            r = np.concatenate([r, np.zeros((N, Tp - T, F), dtype=r.dtype)], axis=1)
            valid = np.ones((N, T), dtype=bool) if mask is None else mask
            mask = np.concatenate([valid, np.zeros((N, Tp - T), dtype=bool)], axis=1)
        pooled = self.maxpool.forward(r, mask)               # (N, Tp / P, F)
        self.out_mask = self.maxpool.out_mask
        return self.drop_conv.forward(pooled), self.out_mask  # dropout between layers

    def _conv_backward(self, dh):
        """The gradient of `_conv_forward`'s output -> the gradient of the embeddings."""
        if self.cell == CNN_LSTM:
            dh = self.drop_conv.backward(dh)
            dh = self.maxpool.backward(dh)[:, :self._relu.shape[1]]  # drop the filler steps
        return self.conv.backward(dh * (self._relu > 0))      # ReLU: pass where it was > 0

    def step(self, ids, state=None):
        """One time step for generation (no dropout, no cache for backward).

        ids: (N,) ints; state: as in `forward` (None = zeros). Returns h: (N, H_out) and
        the new state. Uses each layer's `step_forward`, so a token costs one small
        product per weight, not a sequence pass.
        """
        if self.bidirectional or self.conv is not None:
            raise ValueError(f"a {'bidirectional' if self.bidirectional else self.cell} "
                             f"encoder cannot run one step at a time")
        x = self.embed.params["W"][np.asarray(ids).reshape(-1)]  # (N, E)
        if self.cell == BAG:
            return x, []
        N, new_state = x.shape[0], []
        for i, layer in enumerate(self.layers):
            if state is None or state[i] is None:
                zeros = np.zeros((N, self.hidden_size), dtype=x.dtype)
                init = (zeros,) * len(layer.state_names)
            else:
                init = tuple(state[i])
            out = layer.step_forward(x, *init)  # (next_h, [next_c,] cache)
            new_state.append(tuple(out[:-1]))
            x = out[0]
        return x, new_state

    def backward(self, dh, dstate=None):
        """dh: (N, T, H_out) or None (zeros) -> None; adds into every parameter gradient.

        dstate: None, or one entry per layer like `forward`'s returned state: None or a
        tuple of gradients on that layer's final state ((dh,) or (dh, dc), each (N, H)
        or None). A sequence-to-sequence decoder starts from the encoder's final state and
        sends its gradient back this way.
        """
        if dstate is not None and len(dstate) != len(self.layers):
            raise ValueError(f"dstate has {len(dstate)} layers, the encoder {len(self.layers)}")
        if self.cell == BAG:
            if self._mask is not None:
                dh = dh * self._mask[:, :, None].astype(dh.dtype)
        else:
            for i in range(len(self.layers) - 1, -1, -1):
                dfinal = None if dstate is None else dstate[i]
                # (dx, dh0): dh0 dropped, the initial state is detached
                dh = self.layers[i].backward(dh, dfinal)[0]
                if i > 0:
                    dh = self.drops[i - 1].backward(dh)
            if self.conv is not None:
                dh = self._conv_backward(dh)
        self.embed.backward(self.drop_embed.backward(dh))
        return None
