"""GRU: the gated recurrent unit (gates r, z, n, PyTorch's equations), one step at a time and over sequences."""
import numpy as np

from .recurrent import Recurrent, exp_sigmoid_, sigmoid, tanh_


def gru_step_forward(x, prev_h, Wx, Wh, bx, bh):
    """One step, PyTorch's equations, blocks r, z, n of xw = x Wx + bx and hw = prev_h Wh + bh:

        r = sigmoid(xw_r + hw_r);  z = sigmoid(xw_z + hw_z)
        n = tanh(xw_n + r * hw_n);  next_h = (1 - z) * n + z * prev_h

    x: (N, D), prev_h: (N, H), Wx: (D, 3H), Wh: (H, 3H), bx, bh: (3H,).
    Returns next_h (N, H) and the cache for `gru_step_backward`.
    """
    H = prev_h.shape[1]
    xw = x @ Wx + bx
    hw = prev_h @ Wh + bh
    r = sigmoid(xw[:, :H] + hw[:, :H])
    z = sigmoid(xw[:, H:2 * H] + hw[:, H:2 * H])
    n = np.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])
    next_h = (1 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, r, z, n, hw[:, 2 * H:])


def gru_step_backward(dnext_h, cache):
    """dnext_h: (N, H) -> (dx, dprev_h, dWx, dWh, dbx, dbh)."""
    x, prev_h, Wx, Wh, r, z, n, hw_n = cache
    dan = dnext_h * (1 - z) * (1 - n ** 2)     # at n's pre-activation
    dar = dan * hw_n * r * (1 - r)
    daz = dnext_h * (prev_h - n) * z * (1 - z)
    dax = np.concatenate([dar, daz, dan], axis=1)        # at xw
    dah = np.concatenate([dar, daz, dan * r], axis=1)    # at hw
    return (dax @ Wx.T, dnext_h * z + dah @ Wh.T,
            x.T @ dax, prev_h.T @ dah, dax.sum(axis=0), dah.sum(axis=0))


class GRU(Recurrent):
    """GRU layer. Params Wx (D, 3H), Wh (H, 3H), bx (3H,), bh (3H,), blocks r, z, n."""

    def __init__(self, input_dim, hidden_dim, dtype=np.float32, rng=None):
        super().__init__(input_dim, hidden_dim, dtype, rng)
        D, H = self.input_dim, self.hidden_dim
        self._init_param("Wx", (D, 3 * H))
        self._init_param("Wh", (H, 3 * H))
        self._init_param("bx", (3 * H,))
        self._init_param("bh", (3 * H,))
        # forward's weights scaled by -1 for r, z (and 1 for n): see forward
        self._gate_scale = np.repeat(np.array([-1, -1, 1], dtype=self._dtype), H)

    def step_forward(self, x, prev_h):
        """x: (N, D), prev_h: (N, H) -> (next_h (N, H), cache)."""
        p, dt = self.params, self._dtype
        return gru_step_forward(np.asarray(x, dt), np.asarray(prev_h, dt),
                                p["Wx"], p["Wh"], p["bx"], p["bh"])

    def step_backward(self, dnext_h, cache):
        """-> (dx, dprev_h, dWx, dWh, dbx, dbh); `grads` is left alone."""
        return gru_step_backward(np.asarray(dnext_h, self._dtype), cache)

    def forward(self, x, h0=None, mask=None):
        """x: (N, T, D); h0: None, (N, H) or (H,); mask: (N, T) bool or None.

        Returns h: (N, T, H), zero at padded steps; sets `final_state = (h_last,)`.
        """
        xt, mask, lengths = self._prepare(x, mask)
        T, N, D = xt.shape
        H = self.hidden_dim
        bx, bh = self.params["bx"], self.params["bh"]
        h_init, shared = self._initial(h0, N, "h0")
        # Speed: sigmoid and tanh through exp (numpy's float32 tanh is slow). The r, z
        # columns of the weights are scaled by -1 (exact) so that their block holds -a_rz.
        scale = self._gate_scale
        Wx = self._scaled("Wx_scaled", self.params["Wx"], scale)
        Wh = self._scaled("Wh_scaled", self.params["Wh"], scale)
        gates = self._buffer("gates", (T, N, 3 * H))  # -(x_t Wx + bx + bh)_rz, (x_t Wx + bx)_n; then r, z, n
        hw_n = self._buffer("hw_n", (T, N, H))        # h_{t-1} Wh_n + bh_n, for n and backward
        hs = self._buffer("hs", (T + 1, N, H))        # hs[0] = h0, hs[t+1] = h_t
        hw = self._buffer("hw", (N, 3 * H))           # h_{t-1} Wh (scaled) of the current step
        tmp = self._buffer("tmp", (N, H))
        hs[0] = h_init
        # the input projection of all steps in one product; bh_r, bh_z folded in here
        np.matmul(xt.reshape(T * N, D), Wx, out=gates.reshape(T * N, 3 * H))
        b = bx * scale
        b[:2 * H] -= bh[:2 * H]
        gates += b
        with np.errstate(over="ignore"):  # exp overflowing to inf gives the right limits
            for t in range(T):
                a = gates[t]
                np.matmul(hs[t], Wh, out=hw)
                rz = a[:, :2 * H]
                rz += hw[:, :2 * H]
                exp_sigmoid_(rz)                        # r, z: one sigmoid over the block
                r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
                np.add(hw[:, 2 * H:], bh[2 * H:], out=hw_n[t])
                n += np.multiply(r, hw_n[t], out=tmp)
                tanh_(n, out=n)                         # n = tanh(xw_n + r * hw_n)
                np.subtract(hs[t], n, out=tmp)
                tmp *= z
                np.add(n, tmp, out=hs[t + 1])           # h_t = n + z * (h_{t-1} - n)
        self._cache = (xt, gates, hw_n, hs, mask, shared)
        self.final_state = (self._final(hs, lengths),)
        return self._outputs(hs, mask)

    def backward(self, dh, dfinal=None):
        """dh: (N, T, H) or None (zeros) -> (dx (N, T, D), dh0 ((N, H), or (H,) if h0
        was shared)). dfinal: None or (dh_final (N, H),), a gradient on `final_state`.

        Adds dWx, dWh, dbx, dbh into `grads`.
        """
        xt, gates, hw_n, hs, mask, shared = self._check_cache()
        T, N, D = xt.shape
        H = self.hidden_dim
        dh = self._upstream(dh, (N, T, H), mask)
        Wx, Wh = self.params["Wx"], self.params["Wh"]
        dah = self._buffer("dah", (T, N, 3 * H))  # gradient at hw = h Wh + bh: r, z, n blocks
        dan = self._buffer("dan", (T, N, H))      # gradient at n's pre-activation (x side of n)
        dht = self._buffer("dht", (N, H))
        tmp = self._buffer("tmp", (N, H))
        dsig = self._buffer("dsig", (N, 2 * H))
        dnext = np.zeros((N, H), dtype=self._dtype)  # reaches h_t from step t+1
        fin = self._final_grad(dfinal, N, T, mask)
        for t in range(T - 1, -1, -1):
            if fin:
                fin.add(t, dnext)
            rz = gates[t, :, :2 * H]
            r, z, n = (gates[t, :, k * H:(k + 1) * H] for k in range(3))
            da = dah[t]
            dar, daz, dhn = (da[:, k * H:(k + 1) * H] for k in range(3))
            np.add(dh[:, t], dnext, out=dht)
            # dan = dht * (1 - z) * (1 - n^2)
            np.subtract(1, z, out=tmp)
            np.multiply(dht, tmp, out=dan[t])
            np.multiply(n, n, out=tmp)
            np.subtract(1, tmp, out=tmp)
            dan[t] *= tmp
            np.multiply(dan[t], hw_n[t], out=dar)       # dr
            np.multiply(dan[t], r, out=dhn)
            np.subtract(hs[t], n, out=daz)              # dz = dht * (h_{t-1} - n)
            daz *= dht
            np.subtract(1, rz, out=dsig)                # sigmoid' = s (1 - s), cached s
            dsig *= rz
            da[:, :2 * H] *= dsig
            np.matmul(da, Wh.T, out=dnext)
            dnext += np.multiply(dht, z, out=tmp)       # dh_{t-1} = dht z + da Wh^T
        if fin:
            fin.add(-1, dnext)
        dAh = dah.reshape(T * N, 3 * H)
        dAn = dan.reshape(T * N, H)
        X = xt.reshape(T * N, D)
        self.grads["Wh"] += hs[:-1].reshape(T * N, H).T @ dAh  # one product over all steps
        self.grads["bh"] += dAh.sum(axis=0)
        # the x side shares the r, z gradients and has its own n block: one product per block
        self.grads["Wx"][:, :2 * H] += X.T @ dAh[:, :2 * H]
        self.grads["Wx"][:, 2 * H:] += X.T @ dAn
        self.grads["bx"][:2 * H] += dAh[:, :2 * H].sum(axis=0)
        self.grads["bx"][2 * H:] += dAn.sum(axis=0)
        dX = dAh[:, :2 * H] @ Wx[:, :2 * H].T
        dX += dAn @ Wx[:, 2 * H:].T
        dx = self._input_grad(dX.reshape(T, N, D))
        return dx, self._initial_grad(dnext, shared)
