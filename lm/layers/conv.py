"""Conv1D and MaxPool1D: convolution and max pooling over time, masks respected."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import Layer, as_rng
from .recurrent import resolve_mask


def _same_pads(K):
    """(left, right) zero steps keeping T' = T; an even kernel gets the extra step on the
    right, as PyTorch's padding='same' does."""
    return (K - 1) // 2, K - 1 - (K - 1) // 2


PADDINGS = {"same": _same_pads, "valid": lambda K: (0, 0)}


class Conv1D(Layer):
    """Temporal convolution (cross-correlation, as in PyTorch):

        out[n, t, f] = b[f] + sum_k sum_d x[n, t + k - pad_left, d] W[k, d, f]

    with x read as zero outside [0, T). Params: W (K, D, F), b (F,), both
    U(-1/sqrt(D*K), 1/sqrt(D*K)) like PyTorch's nn.Conv1d, whose weight (F, D, K) is
    W.transpose(2, 1, 0). W.reshape(K*D, F) is the matrix of the unfolded windows below.
    padding "same": pad_left = (K-1)//2, pad_right = K-1-pad_left, T' = T.
    padding "valid": no padding, T' = T - K + 1 (an error when T < K).

    forward(x (N, T, D), mask (N, T) bool or None) -> out (N, T', F);
    backward(dout (N, T', F)) -> dx (N, T, D).
    Masks: padded input steps read as zeros (even NaN), so a valid output is what the row
    cut to its length would give. `out_mask` (after forward; `output_mask(mask)` computes
    it) is the input mask for "same", and for "valid" True where the whole window lies on
    valid steps; None when there is no padding. Invalid outputs are zero and pass back no
    gradient; padded input steps get zero gradient. With no mask, all-NaN steps are padding.

    Speed: the windows are unfolded into one (N*T', K*D) matrix, so forward is one matrix
    product and backward two (dW = cols^T dout, dcols = dout W^T, folded back over K).
    """

    def __init__(self, input_dim, filters, kernel_size, padding="same", dtype=np.float32,
                 rng=None):
        super().__init__()
        rng = as_rng(rng)
        D, F, K = int(input_dim), int(filters), int(kernel_size)
        if D < 1 or F < 1 or K < 1:
            raise ValueError("Conv1D needs input_dim, filters, kernel_size >= 1, "
                             f"got {D}, {F}, {K}")
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}")
        self.padding = padding
        self.pads = PADDINGS[padding](K)                      # (left, right) zero steps
        k = 1.0 / np.sqrt(D * K)
        self.add_param("W", rng.uniform(-k, k, (K, D, F)).astype(dtype))
        self.add_param("b", rng.uniform(-k, k, (F,)).astype(dtype))
        self.out_mask = None
        self._cols = None

    def output_mask(self, mask):
        """The (N, T') mask of the outputs for an input mask (N, T) (None: None)."""
        if mask is None:
            return None
        mask = np.asarray(mask, dtype=bool)
        if self.padding == "same":
            return mask
        K = self.params["W"].shape[0]
        if mask.shape[1] < K:
            raise ValueError(f"Conv1D(padding='valid') needs T >= kernel_size = {K}, "
                             f"got T = {mask.shape[1]}")
        return sliding_window_view(mask, K, axis=1).all(axis=2)

    def forward(self, x, mask=None):
        """x: (N, T, D), mask: (N, T) bool or None -> (N, T', F)."""
        W, b = self.params["W"], self.params["b"]
        K, D, F = W.shape
        if x.ndim != 3 or x.shape[2] != D:
            raise ValueError(f"Conv1D expects x of shape (N, T, {D}), got {x.shape}")
        N, T, _ = x.shape
        mask, _ = resolve_mask(x, mask)
        left, right = self.pads
        Tp = T + left + right                                   # padded length
        if Tp < K:
            raise ValueError(f"Conv1D(padding='valid') needs T >= kernel_size = {K}, got T = {T}")
        To = Tp - K + 1                                         # output length T'
        xp = np.zeros((N, Tp, D), dtype=W.dtype)                # zero-padded copy of x
        # padded steps (NaN or junk) stay zero, so they add nothing to any window
        np.copyto(xp[:, left:left + T], x, where=True if mask is None else mask[:, :, None])
        windows = sliding_window_view(xp, K, axis=1)            # (N, To, D, K), a view
        self._cols = windows.transpose(0, 1, 3, 2).reshape(N * To, K * D)  # the one copy
        out = self._cols @ W.reshape(K * D, F)                  # (N*To, F)
        out += b
        out = out.reshape(N, To, F)
        self.out_mask = self.output_mask(mask)
        if self.out_mask is not None:
            out[~self.out_mask] = 0
        self._mask, self._shape = mask, (N, T, D, Tp, To)
        return out

    def backward(self, dout):
        """dout: (N, T', F) -> dx (N, T, D); grads W += cols^T dout, b += sum of dout."""
        if self._cols is None:
            raise ValueError("Conv1D.backward called before forward")
        W = self.params["W"]
        K, D, F = W.shape
        N, T, _, Tp, To = self._shape
        if dout.shape != (N, To, F):
            raise ValueError(f"Conv1D.backward expects dout of shape {(N, To, F)}, "
                             f"got {dout.shape}")
        dout = dout.astype(W.dtype, copy=False)
        if self.out_mask is not None:                           # invalid outputs are constant 0
            dout = np.where(self.out_mask[:, :, None], dout, 0)
        d2 = dout.reshape(N * To, F)
        self.grads["W"] += (self._cols.T @ d2).reshape(K, D, F)
        self.grads["b"] += d2.sum(axis=0)
        dcols = (d2 @ W.reshape(K * D, F).T).reshape(N, To, K, D)
        dxp = np.zeros((N, Tp, D), dtype=W.dtype)
        for k in range(K):                                      # fold: offset k read xp[t + k]
            dxp[:, k:k + To] += dcols[:, :, k]
        left = self.pads[0]
        dx = dxp[:, left:left + T]
        if self._mask is not None:
            dx[~self._mask] = 0
        return dx


class MaxPool1D(Layer):
    """Max over windows of time, per channel, like PyTorch's nn.MaxPool1d (no padding):

        out[n, j, c] = max over p < P of x[n, j*S + p, c],   T_out = (T - P) // S + 1

    P = pool_size, S = stride (default P). forward(x (N, T, C), mask (N, T) bool or None)
    -> (N, T_out, C); backward(dout) -> dx (N, T, C), each window's gradient routed to its
    max (ties: the first, as PyTorch does; overlapping windows add up).
    Masks: padded steps never win the max; a window holding a valid step is valid (its
    max is over its valid steps), one with none outputs 0, passes back no gradient and
    is False in `out_mask` (None when there is no padding). With no mask, all-NaN steps
    are padding.
    """

    def __init__(self, pool_size, stride=None):
        super().__init__()
        P = int(pool_size)
        S = P if stride is None else int(stride)
        if P < 1 or S < 1:
            raise ValueError(f"MaxPool1D needs pool_size, stride >= 1, got {P}, {S}")
        self.pool_size, self.stride = P, S
        self.out_mask = None
        self._arg = None

    def output_mask(self, mask):
        """The (N, T_out) mask of the outputs for an input mask (N, T) (None: None)."""
        if mask is None:
            return None
        return self._windows(np.asarray(mask, dtype=bool)).any(axis=2)

    def _windows(self, a):
        """(N, T, ...) -> (N, T_out, ..., P), a view."""
        P, S = self.pool_size, self.stride
        if a.shape[1] < P:
            raise ValueError(f"MaxPool1D needs T >= pool_size = {P}, got T = {a.shape[1]}")
        return sliding_window_view(a, P, axis=1)[:, ::S]

    def forward(self, x, mask=None):
        """x: (N, T, C), mask: (N, T) bool or None -> (N, T_out, C)."""
        if x.ndim != 3:
            raise ValueError(f"MaxPool1D expects x of shape (N, T, C), got {x.shape}")
        mask, _ = resolve_mask(x, mask)
        self._mask = mask
        if mask is not None:                                    # padding never wins
            x = np.where(mask[:, :, None], x, -np.inf).astype(x.dtype, copy=False)
        windows = self._windows(x)                              # (N, T_out, C, P)
        self._arg = windows.argmax(axis=3)                      # (N, T_out, C) offset of the max
        out = np.take_along_axis(windows, self._arg[..., None], axis=3)[..., 0]
        self.out_mask = self.output_mask(mask)
        if self.out_mask is not None:
            out[~self.out_mask] = 0                             # no valid step: 0, not -inf
        self._shape, self._dtype = x.shape, x.dtype
        return out

    def backward(self, dout):
        """dout: (N, T_out, C) -> dx: (N, T, C)."""
        if self._arg is None:
            raise ValueError("MaxPool1D.backward called before forward")
        if dout.shape != self._arg.shape:
            raise ValueError(f"MaxPool1D.backward expects dout of shape {self._arg.shape}, "
                             f"got {dout.shape}")
        if self.out_mask is not None:
            dout = np.where(self.out_mask[:, :, None], dout, 0)
        P, S = self.pool_size, self.stride
        To = self._arg.shape[1]
        dx = np.zeros(self._shape, dtype=self._dtype)
        for p in range(P):                  # offset p of window j is step j*S + p, distinct over j
            dx[:, p:p + (To - 1) * S + 1:S] += np.where(self._arg == p, dout, 0)
        return dx
