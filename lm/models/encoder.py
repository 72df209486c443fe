"""Encoder: token embedding + a stack of recurrent layers, shared by the LM and the classifier."""
import numpy as np

from lm.config import choices
from lm.config.checks import check_size
from lm.layers.base import Layer, as_rng
from lm.layers.bidirectional import Bidirectional
from lm.layers.dropout import Dropout
from lm.layers.embedding import Embedding
from lm.layers.gru import GRU
from lm.layers.lstm import LSTM
from lm.layers.rnn import VanillaRNN

CELLS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU}  # lm.config.choices.CELLS -> layer
BAG = "bag"  # no recurrence: the encoder returns the embeddings (pooled by the classifier)
assert set(CELLS) == set(choices.CELLS) and BAG in choices.ENCODERS


def check_dropout(p):
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"dropout must be a number in [0, 1), got {p!r}") from None
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    return p


class Encoder(Layer):
    """ids (N, T) -> hidden states (N, T, H_out).

        e   = dropout(Embedding(ids))                  (N, T, E)   [embed_dropout]
        h_0 = rnn0(e, state[0]);  h_l = rnn_l(dropout(h_{l-1}), state[l])
    H_out = hidden_size (2 * hidden_size when bidirectional); for cell "bag" there is no
    recurrence, h = e and H_out = embed_size. Params `embed.W`, `rnn0.Wx`, `rnn0.Wh`, ...
    (bidirectional: `rnn0.fwd.Wx`, `rnn0.bwd.Wx`, ...). Dropout masks come from `rng`.
    """

    def __init__(self, vocab_size, embed_size, hidden_size, cell="lstm", num_layers=1,
                 dropout=0.0, bidirectional=False, dtype=np.float32, rng=None,
                 embed_dropout=True):
        super().__init__()
        if cell not in CELLS and cell != BAG:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join([*CELLS, BAG])}")
        self.vocab_size = check_size("vocab_size", vocab_size, flag=False)
        self.embed_size = check_size("embed_size", embed_size, flag=False)
        self.hidden_size = check_size("hidden_size", hidden_size, flag=False)
        self.num_layers = check_size("num_layers", num_layers, flag=False)
        self.dropout = check_dropout(dropout)
        self.cell = cell
        self.bidirectional = bool(bidirectional)
        self.embed_dropout = bool(embed_dropout)
        self._dtype = dtype
        rng = as_rng(rng)
        self.rng = rng
        self.embed = self.add_child("embed", Embedding(self.vocab_size, self.embed_size,
                                                       dtype=dtype, rng=rng))
        p_embed = self.dropout if self.embed_dropout else 0.0
        self.drop_embed = self.add_child("drop_embed", Dropout(p_embed, rng=rng))
        self.layers, self.drops = [], []
        if cell == BAG:
            self.output_size = self.embed_size
            return
        in_dim = self.embed_size
        for i in range(self.num_layers):
            if self.bidirectional:
                layer = Bidirectional(CELLS[cell](in_dim, self.hidden_size, dtype=dtype, rng=rng),
                                      CELLS[cell](in_dim, self.hidden_size, dtype=dtype, rng=rng))
            else:
                layer = CELLS[cell](in_dim, self.hidden_size, dtype=dtype, rng=rng)
            self.layers.append(self.add_child(f"rnn{i}", layer))
            if i > 0:  # dropout between layers (on the input of every layer above the first)
                self.drops.append(self.add_child(f"drop{i}", Dropout(self.dropout, rng=rng)))
            in_dim = self.hidden_size * (2 if self.bidirectional else 1)
        self.output_size = in_dim

    def config(self):
        """The constructor arguments, JSON-able (dtype and rng excluded)."""
        return {"vocab_size": self.vocab_size, "embed_size": self.embed_size,
                "hidden_size": self.hidden_size, "cell": self.cell,
                "num_layers": self.num_layers, "dropout": self.dropout,
                "bidirectional": self.bidirectional, "embed_dropout": self.embed_dropout}

    def forward(self, ids, state=None, mask=None):
        """ids: (N, T) ints; state: None or a list with one `final_state` tuple per layer
        ((h,) or (h, c), each (N, H)); mask: (N, T) bool or None.

        Returns h: (N, T, H_out) and the new state (a list of copied `final_state` tuples;
        [] for "bag"). The incoming state is used as h0/c0 only: no gradient flows into it
        (truncated BPTT). A bidirectional encoder cannot carry state.
        """
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids must be (N, T), got shape {ids.shape}")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != ids.shape:
                raise ValueError(f"mask shape {mask.shape} does not match ids {ids.shape}")
        if state is not None:
            if self.bidirectional:
                raise ValueError("a bidirectional encoder cannot carry state between calls")
            if len(state) != len(self.layers):
                raise ValueError(f"state has {len(state)} layers, the encoder {len(self.layers)}")
        x = self.drop_embed.forward(self.embed.forward(ids))  # (N, T, E)
        self._mask = mask
        if self.cell == BAG:
            if mask is not None:  # padded steps output zero, as in the recurrent layers
                x = x * mask[:, :, None].astype(x.dtype)
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

    def step(self, ids, state=None):
        """One time step for generation (no dropout, no cache for backward).

        ids: (N,) ints; state: as in `forward` (None = zeros). Returns h: (N, H_out) and
        the new state. Uses each layer's `step_forward`, so a token costs one small
        product per weight, not a sequence pass.
        """
        if self.bidirectional:
            raise ValueError("a bidirectional encoder cannot run one step at a time")
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
        self.embed.backward(self.drop_embed.backward(dh))
        return None
