"""Bidirectional: two recurrent layers, one reading each sequence forwards, one backwards from its last valid step."""
import numpy as np

from .base import Layer
from .recurrent import resolve_mask


def reverse_valid(x, lengths):
    """x (N, T, ...) with each row's first lengths[n] steps reversed; padding stays in place.

    lengths None means every row is full: plain x[:, ::-1]. Applying it twice gives x back.
    """
    if lengths is None:
        return x[:, ::-1]
    N, T = x.shape[:2]
    t = np.arange(T)
    L = lengths[:, None]
    idx = np.where(t < L, L - 1 - t, t)                # (N, T) source step of each step
    idx = idx.reshape((N, T) + (1,) * (x.ndim - 2))
    return np.take_along_axis(x, idx, axis=1)


class Bidirectional(Layer):
    """h = [fwd(x), reverse(bwd(reverse(x)))] along features: (N, T, Hf + Hb).

    reverse() reverses each row within its valid length, so the backward direction starts
    at each sequence's own last valid step. Params are the two layers', prefixed `fwd.` and
    `bwd.`. Initial states (optional, zeros by default) and `final_state` hold both
    directions side by side, (N, Hf + Hb): the first half is the forward direction's state
    at the last valid step, the second the backward direction's after reading back to
    step 0. `hidden_dim` = `output_size` = Hf + Hb.
    """

    def __init__(self, forward_layer, backward_layer):
        super().__init__()
        self.fwd = self.add_child("fwd", forward_layer)
        self.bwd = self.add_child("bwd", backward_layer)
        if forward_layer.input_dim != backward_layer.input_dim:
            raise ValueError(f"the two directions take different input sizes: "
                             f"{forward_layer.input_dim} and {backward_layer.input_dim}")
        self.state_names = tuple(getattr(forward_layer, "state_names", ("h",)))
        if self.state_names != tuple(getattr(backward_layer, "state_names", ("h",))):
            raise ValueError("the two directions must carry the same states (same cell type)")
        self.input_dim = forward_layer.input_dim
        self.hidden_dim = self.output_size = forward_layer.hidden_dim + backward_layer.hidden_dim
        self.final_state = None
        self._cache = None

    def forward(self, x, h0=None, c0=None, mask=None):
        """x: (N, T, D); h0 (and c0 for LSTMs): None, (N, Hf + Hb) or (Hf + Hb,), both
        directions side by side; mask: (N, T) bool or None (NaN padding also accepted).

        Returns h: (N, T, Hf + Hb), zero at padded steps.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3:
            raise ValueError(f"x must have shape (N, T, {self.input_dim}), got {x.shape}")
        if c0 is not None and "c" not in self.state_names:
            raise ValueError("c0 is only for LSTM layers")
        mask, lengths = resolve_mask(x, mask)  # once, for both directions and the reversal
        Hf = self.fwd.hidden_dim
        initial = dict(zip(("h0", "c0"), (h0, c0)))
        init_f, init_b = {}, {}
        for key in (s + "0" for s in self.state_names):
            s0 = initial[key]
            if s0 is not None:
                s0 = np.asarray(s0, dtype=self.dtype)
                if s0.shape[-1] != self.hidden_dim:
                    raise ValueError(f"{key} must end in {self.hidden_dim} (both directions), got {s0.shape}")
                init_f[key], init_b[key] = s0[..., :Hf], s0[..., Hf:]
        hf = self.fwd.forward(x, mask=mask, **init_f)
        hb = reverse_valid(self.bwd.forward(reverse_valid(x, lengths), mask=mask, **init_b), lengths)
        self._cache = (lengths, h0 is not None, c0 is not None)
        self.final_state = tuple(np.concatenate([a, b], axis=-1)
                                 for a, b in zip(self.fwd.final_state, self.bwd.final_state))
        return np.concatenate([hf, hb], axis=2)

    def backward(self, dh, dfinal=None):
        """dh: (N, T, Hf + Hb) or None (zeros) -> (dx (N, T, D), dh0). dfinal: None or a
        tuple like `final_state` (both directions side by side, each (N, Hf + Hb) or None),
        a gradient on the final state.

        dh0 is None when forward had no h0, else both directions' gradients side by side;
        for LSTMs `dc0` likewise. Adds into both layers' grads.
        """
        if self._cache is None:
            raise RuntimeError("Bidirectional.backward called before forward")
        lengths, had_h0, had_c0 = self._cache
        Hf = self.fwd.hidden_dim
        if dh is None:
            dhf = dhb = None
        else:
            dh = np.asarray(dh)
            if dh.ndim != 3 or dh.shape[2] != self.hidden_dim:
                raise ValueError(f"dh must have shape (N, T, {self.hidden_dim}), got {dh.shape}")
            dhf, dhb = dh[:, :, :Hf], reverse_valid(dh[:, :, Hf:], lengths)
        fin_f = fin_b = None
        if dfinal is not None:
            halves = [(None, None) if g is None else (g[:, :Hf], g[:, Hf:])
                      for g in (None if g is None else np.asarray(g) for g in dfinal)]
            fin_f, fin_b = tuple(h[0] for h in halves), tuple(h[1] for h in halves)
        dxf, dh0f = self.fwd.backward(dhf, fin_f)
        dxb, dh0b = self.bwd.backward(dhb, fin_b)
        dx = dxf + reverse_valid(dxb, lengths)
        dh0 = np.concatenate([dh0f, dh0b], axis=-1) if had_h0 else None
        self.dc0 = np.concatenate([self.fwd.dc0, self.bwd.dc0], axis=-1) if had_c0 else None
        return dx, dh0
