"""TemporalLinear: one affine map applied at every time step, as a single matrix product."""
import numpy as np

from .base import Layer, as_rng


class TemporalLinear(Layer):
    """out[n, t] = x[n, t] @ W + b.

    Params: W (D, M), b (M,), both U(-1/sqrt(D), 1/sqrt(D)) like PyTorch's nn.Linear.
    forward(x (N, T, D) or (N, D)) -> (N, T, M) or (N, M); backward(dout) -> dx.
    (N, T, D) is viewed as (N*T, D) so each pass is one matrix product.
    """

    def __init__(self, input_dim, output_dim, dtype=np.float32, rng=None):
        super().__init__()
        rng = as_rng(rng)
        D, M = int(input_dim), int(output_dim)
        if D < 1 or M < 1:
            raise ValueError(f"TemporalLinear needs input_dim, output_dim >= 1, got {D}, {M}")
        k = 1.0 / np.sqrt(D)
        self.add_param("W", rng.uniform(-k, k, (D, M)).astype(dtype))
        self.add_param("b", rng.uniform(-k, k, (M,)).astype(dtype))
        self._x2 = None

    def forward(self, x):
        """x: (..., D) -> (..., M)."""
        W, b = self.params["W"], self.params["b"]
        if x.ndim not in (2, 3) or x.shape[-1] != W.shape[0]:
            raise ValueError(f"TemporalLinear expects (N, T, {W.shape[0]}) or (N, {W.shape[0]}), "
                             f"got {x.shape}")
        self._shape = x.shape
        self._x2 = x.reshape(-1, W.shape[0])           # (N*T, D), a view when contiguous
        out = self._x2 @ W                             # (N*T, M)
        out += b
        return out.reshape(x.shape[:-1] + (W.shape[1],))

    def backward(self, dout):
        """dout: (..., M) -> dx (..., D); grads W += x^T dout, b += sum of dout."""
        if self._x2 is None:
            raise ValueError("TemporalLinear.backward called before forward")
        W = self.params["W"]
        d2 = dout.reshape(-1, W.shape[1])              # (N*T, M)
        self.grads["W"] += self._x2.T @ d2
        self.grads["b"] += d2.sum(axis=0)
        return (d2 @ W.T).reshape(self._shape)
