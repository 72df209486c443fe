"""TemporalPooling: reduce (N, T, H) hidden states to (N, H) over the valid steps only."""
import numpy as np

from .base import Layer


class TemporalPooling(Layer):
    """Pool over time, counting only the steps where mask is True.

    mode "mean": out[n] = sum_t m[n,t] h[n,t] / sum_t m[n,t]
    mode "max":  out[n] = max over valid t of h[n,t] (per feature)
    mode "last": out[n] = h[n, last valid t]
    forward(h (N, T, H), mask (N, T) bool or None = all valid) -> (N, H);
    backward(dout (N, H)) -> dh (N, T, H), zero on padded steps. Values at padded steps
    (even NaN) never reach the output. A row with no valid step pools to zeros.
    """

    def __init__(self, mode="mean"):
        super().__init__()
        forwards = {"mean": self._mean, "max": self._max, "last": self._last}
        if mode not in forwards:
            raise ValueError(f"unknown pooling mode {mode!r}; choose one of {', '.join(forwards)}")
        self.mode = mode
        self._forward = forwards[mode]

    def forward(self, h, mask=None):
        """h: (N, T, H), mask: (N, T) bool or None -> (N, H)."""
        if h.ndim != 3:
            raise ValueError(f"TemporalPooling expects h of shape (N, T, H), got {h.shape}")
        N, T, H = h.shape
        if mask is None:
            mask = np.ones((N, T), dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (N, T):
            raise ValueError(f"mask shape {mask.shape} does not match h's (N, T) = {(N, T)}")
        self._shape, self._dtype = h.shape, h.dtype
        self._mask = mask
        self._any = mask.any(axis=1)                          # (N,) rows with a valid step
        return self._forward(h, mask)

    def _mean(self, h, mask):
        self._count = np.maximum(mask.sum(axis=1), 1).astype(h.dtype)[:, None]  # (N, 1)
        return np.where(mask[:, :, None], h, 0).sum(axis=1) / self._count

    def _max(self, h, mask):
        hm = np.where(mask[:, :, None], h, -np.inf)
        self._arg = hm.argmax(axis=1)                         # (N, H) time index of the max
        out = np.take_along_axis(hm, self._arg[:, None, :], axis=1)[:, 0]
        return np.where(self._any[:, None], out, 0).astype(h.dtype)

    def _last(self, h, mask):
        T = mask.shape[1]
        self._last_t = T - 1 - mask[:, ::-1].argmax(axis=1)   # (N,) last True per row
        out = h[np.arange(h.shape[0]), self._last_t]
        return np.where(self._any[:, None], out, 0).astype(h.dtype)

    def backward(self, dout):
        """dout: (N, H) -> dh: (N, T, H)."""
        N, T, H = self._shape
        dout = np.where(self._any[:, None], dout, 0)          # empty rows pass no gradient
        if self.mode == "mean":
            return (self._mask[:, :, None] * (dout / self._count)[:, None, :]).astype(self._dtype)
        dh = np.zeros(self._shape, dtype=self._dtype)
        if self.mode == "max":
            np.put_along_axis(dh, self._arg[:, None, :], dout[:, None, :], axis=1)
        else:
            dh[np.arange(N), self._last_t] = dout
        return dh
