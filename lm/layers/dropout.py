"""Dropout: inverted dropout in training, the identity at evaluation."""
import numpy as np

from .base import Layer, as_rng


class Dropout(Layer):
    """out = x * m / (1 - p), m ~ Bernoulli(1 - p) per element, drawn from `rng`.

    The 1/(1-p) scaling at training time keeps E[out] = x, so evaluation is the identity.
    Identity also when p == 0. forward(x) -> same shape; backward(dout) -> dx.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"dropout p must be a number in [0, 1), got {p!r}") from None
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.rng = as_rng(rng)
        self._scale = None

    def forward(self, x):
        """x: any shape -> same shape."""
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        u = self.rng.random(x.shape, dtype=dtype)
        # the kept-and-scaled mask, in x's dtype: 1/(1-p) where kept, 0 where dropped
        self._scale = (u >= self.p).astype(x.dtype)
        self._scale *= 1.0 / (1.0 - self.p)
        return x * self._scale

    def backward(self, dout):
        """dout: same shape as x -> dx."""
        if self._scale is None:
            return dout
        return dout * self._scale
