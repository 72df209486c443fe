"""GRU: the gated recurrent unit (gates r, z, n, PyTorch's equations), one step at a time and over sequences.

One step, blocks r, z, n of xw = x_t Wx + bx and hw = h_{t-1} Wh + bh:

    r = sigmoid(xw_r + hw_r);  z = sigmoid(xw_z + hw_z)
    n = tanh(xw_n + r * hw_n);  h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)

`gru_step_forward`/`gru_step_backward` are the reference. `GRU.forward` projects the
inputs of all steps before the loop (one product, bh_r and bh_z folded in) and builds
the sigmoids from one exp: the r, z columns of the weights are scaled by -1
(`_scaled_weights`, exact) so those blocks hold -a_r, -a_z, what `exp_sigmoid_` takes; in
float32 tanh goes through exp too (see recurrent.py). Backward keeps the gradients at
hw (r, z, n blocks) and at n's x side for all steps, so the weight gradients are one
product per block after the loop.
"""
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

    def _scaled_weights(self):
        """Wx, Wh with their r, z columns times -1 (exact) in work arrays, so that those
        blocks of the products are -a_r, -a_z, what `exp_sigmoid_` takes."""
        scale = self._gate_scale
        return (self._scaled("Wx_scaled", self.params["Wx"], scale),
                self._scaled("Wh_scaled", self.params["Wh"], scale))

    def forward(self, x, h0=None, mask=None):
        """x: (N, T, D); h0: None, (N, H) or (H,); mask: (N, T) bool or None.

        Returns h: (N, T, H), zero at padded steps; sets `final_state = (h_last,)`.
        """
        xt, mask, lengths = self._prepare(x, mask)
        T, N, D = xt.shape
        H = self.hidden_dim
        bx, bh = self.params["bx"], self.params["bh"]
        h_init, shared = self._initial(h0, N, "h0")
        Wx, Wh = self._scaled_weights()
        # Speed: the input projection of all steps is written into `gates`, and step t turns
        # its row into r, z, n in place, which saves a second (T, N, 3H) array and its
        # memory traffic.
        gates = self._buffer("gates", (T, N, 3 * H))   # scaled x_t Wx + bx (+ bh_rz) -> r, z, n
        hw_n = self._buffer("hw_n", (T, N, H))         # h_{t-1} Wh_n + bh_n, for n and backward
        hs = self._buffer("hs", (T + 1, N, H))         # hs[0] = h0, hs[t+1] = h_t
        hw = self._buffer("hw", (N, 3 * H))            # scaled h_{t-1} Wh of the current step
        r_hw_n = self._buffer("r_hw_n", (N, H))        # r * hw_n
        z_h_n = self._buffer("z_h_n", (N, H))          # z * (h_{t-1} - n)
        hs[0] = h_init
        # the input projection of all steps in one product; bh_r, bh_z folded in here
        np.matmul(xt.reshape(T * N, D), Wx, out=gates.reshape(T * N, 3 * H))
        scale = self._gate_scale
        b = bx * scale
        b[:2 * H] -= bh[:2 * H]
        gates += b
        with np.errstate(over="ignore"):  # exp overflowing to inf gives the right limits
            for t in range(T):
                rz = gates[t, :, :2 * H]
                r, z, n = (gates[t, :, k * H:(k + 1) * H] for k in range(3))
                np.matmul(hs[t], Wh, out=hw)
                rz += hw[:, :2 * H]                             # -(a_r, a_z)
                exp_sigmoid_(rz)                                # r, z: one sigmoid over the block
                np.add(hw[:, 2 * H:], bh[2 * H:], out=hw_n[t])
                n += np.multiply(r, hw_n[t], out=r_hw_n)        # xw_n + r * hw_n
                tanh_(n, out=n)                                 # n = tanh(xw_n + r * hw_n)
                np.subtract(hs[t], n, out=z_h_n)
                z_h_n *= z
                np.add(n, z_h_n, out=hs[t + 1])                 # h_t = n + z * (h_{t-1} - n)
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
        dah = self._buffer("dah", (T, N, 3 * H))  # dL/d(h_{t-1} Wh + bh) of every step: r, z, n blocks
        dan = self._buffer("dan", (T, N, H))      # dL/d(n's pre-activation) of every step (x side of n)
        dh_t = self._buffer("dh_t", (N, H))       # dL/dh_t, all paths
        dn = self._buffer("dn", (N, H))           # dL/dn = dh_t (1 - z)
        dtanh_n = self._buffer("dtanh_n", (N, H))  # tanh' at n's pre-activation: 1 - n^2
        drz = self._buffer("drz", (N, 2 * H))     # dL/d[r, z]
        dsig = self._buffer("dsig", (N, 2 * H))   # sigmoid' of r, z: s (1 - s)
        dh_direct = self._buffer("dh_direct", (N, H))  # dh_t z: the part of dL/dh_{t-1} past the gates
        # the gradient flowing back along the recurrence: on entering step t it is what
        # reaches h_t from step t+1 (plus dfinal where h_t is a row's final state); step t
        # overwrites it with what reaches h_{t-1}
        dh_rec = np.zeros((N, H), dtype=self._dtype)
        final = self._final_grad(dfinal, N, T, mask)
        for t in range(T - 1, -1, -1):
            if final:
                final.add(t, dh_rec)
            rz = gates[t, :, :2 * H]
            r, z, n = (gates[t, :, k * H:(k + 1) * H] for k in range(3))
            da = dah[t]
            np.add(dh[:, t], dh_rec, out=dh_t)
            np.subtract(1, z, out=dn)
            dn *= dh_t
            np.multiply(n, n, out=dtanh_n)
            np.subtract(1, dtanh_n, out=dtanh_n)
            np.multiply(dn, dtanh_n, out=dan[t])
            np.multiply(dan[t], hw_n[t], out=drz[:, :H])   # dL/dr
            np.subtract(hs[t], n, out=drz[:, H:])          # dL/dz = (h_{t-1} - n) dh_t
            drz[:, H:] *= dh_t
            np.subtract(1, rz, out=dsig)                   # from the cached outputs
            dsig *= rz
            np.multiply(drz, dsig, out=da[:, :2 * H])
            np.multiply(dan[t], r, out=da[:, 2 * H:])      # at hw_n
            np.matmul(da, Wh.T, out=dh_rec)
            dh_rec += np.multiply(dh_t, z, out=dh_direct)  # dh_{t-1} = da Wh^T + dh_t z
        if final:
            final.add(-1, dh_rec)
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
        return dx, self._initial_grad(dh_rec, shared)
