"""Embedding: a lookup table from integer ids to vectors, with a scatter-add gradient."""
import numpy as np

from .base import Layer, as_rng


class Embedding(Layer):
    """out[..., :] = W[ids[...], :].

    Params: W (V, D), initialised N(0, 1) like PyTorch's nn.Embedding.
    forward(ids) takes integer ids of any shape, e.g. (N, T), and returns ids.shape + (D,).
    backward(dout) adds dW[v] = sum of dout over the positions where ids == v into
    grads['W'] and returns None (ids take no gradient).
    """

    def __init__(self, vocab_size, dim, dtype=np.float32, rng=None):
        super().__init__()
        if int(vocab_size) < 1 or int(dim) < 1:
            raise ValueError(f"Embedding needs vocab_size >= 1 and dim >= 1, got {vocab_size}, {dim}")
        rng = as_rng(rng)
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.add_param("W", rng.standard_normal((self.vocab_size, self.dim)).astype(dtype))
        self._ids = None

    def forward(self, ids):
        """ids: int array, any shape (N, T) -> out: ids.shape + (D,)."""
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"Embedding ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"Embedding ids must lie in [0, {self.vocab_size}), "
                             f"got min {ids.min()} max {ids.max()}")
        self._ids = ids
        return np.take(self.params["W"], ids, axis=0)  # take: faster than W[ids]

    def backward(self, dout):
        """dout: ids.shape + (D,) -> None; grads['W'] += scatter-add of dout by id."""
        if self._ids is None:
            raise ValueError("Embedding.backward called before forward")
        D = self.dim
        ids = self._ids.reshape(-1)
        dout = np.asarray(dout).reshape(ids.size, D)
        # Sum rows of dout sharing an id without np.add.at (slow): number the distinct
        # ids 0..U-1 and let one bincount sum every (distinct id, column) cell at once.
        # It accumulates in float64 and its output is (U, D), not (V, D).
        uniq, inv = np.unique(ids, return_inverse=True)
        cells = (inv.reshape(-1, 1) * D + np.arange(D)).reshape(-1)
        sums = np.bincount(cells, weights=dout.reshape(-1), minlength=uniq.size * D)
        self.grads["W"][uniq] += sums.reshape(uniq.size, D)
        return None
