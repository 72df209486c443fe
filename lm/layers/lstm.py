"""LSTM: the long short-term memory layer (gates i, f, o, g), one step at a time and over sequences."""
import numpy as np

from .recurrent import (Recurrent, exp_sigmoid_, exp_tanh, scaled_tanh_, scaled_transpose, sigmoid, tanh_,
                        tanh_input_scale)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One step. With a = x Wx + prev_h Wh + b split into blocks a_i, a_f, a_o, a_g:

        i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
        next_c = f * prev_c + i * g;  next_h = o * tanh(next_c)

    x: (N, D), prev_h, prev_c: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,).
    Returns next_h, next_c (N, H) and the cache for `lstm_step_backward`.
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dnext_h, dnext_c: (N, H) -> (dx, dprev_h, dprev_c, dWx, dWh, db)."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    # derivatives from cached outputs: sigmoid' = s (1 - s), tanh' = 1 - t^2
    da = np.concatenate([dc * g * i * (1 - i),
                         dc * prev_c * f * (1 - f),
                         dnext_h * tanh_c * o * (1 - o),
                         dc * i * (1 - g ** 2)], axis=1)
    return (da @ Wx.T, da @ Wh.T, dc * f,
            x.T @ da, prev_h.T @ da, da.sum(axis=0))


def gates_(a, H):
    """In place: a (4H, N) holding the scaled pre-activations of `LSTM.forward` becomes
    i, f, o = sigmoid(a_ifo) and g = tanh(a_g); returns a."""
    if exp_tanh(a.dtype):
        # speed: one exp over the whole contiguous block, which holds -a_ifo and -2 a_g
        np.exp(a, out=a)
        a += 1
        np.divide(1, a[:3 * H], out=a[:3 * H])          # 1 / (1 + exp(-a))
        g = np.divide(2, a[3 * H:], out=a[3 * H:])
        g -= 1                                          # 2 / (1 + exp(-2a)) - 1
    else:
        exp_sigmoid_(a[:3 * H])
        scaled_tanh_(a[3 * H:])
    return a


class LSTM(Recurrent):
    """LSTM layer. Params Wx (D, 4H), Wh (H, 4H), b (4H,), gate blocks in order i, f, o, g."""

    state_names = ("h", "c")

    def __init__(self, input_dim, hidden_dim, dtype=np.float32, rng=None):
        super().__init__(input_dim, hidden_dim, dtype, rng)
        D, H = self.input_dim, self.hidden_dim
        self._init_param("Wx", (D, 4 * H))
        self._init_param("Wh", (H, 4 * H))
        self._init_param("b", (4 * H,))
        self.dc0 = None
        # forward's weights scaled by -1 (i, f, o) and tanh_input_scale (g): see forward
        scales = [-1, -1, -1, tanh_input_scale(self._dtype)]
        self._gate_scale = np.repeat(np.array(scales, dtype=self._dtype), H)

    def step_forward(self, x, prev_h, prev_c):
        """x: (N, D), prev_h, prev_c: (N, H) -> (next_h, next_c, cache)."""
        p, dt = self.params, self._dtype
        return lstm_step_forward(np.asarray(x, dt), np.asarray(prev_h, dt),
                                 np.asarray(prev_c, dt), p["Wx"], p["Wh"], p["b"])

    def step_backward(self, dnext_h, dnext_c, cache):
        """-> (dx, dprev_h, dprev_c, dWx, dWh, db); `grads` is left alone."""
        dt = self._dtype
        return lstm_step_backward(np.asarray(dnext_h, dt), np.asarray(dnext_c, dt), cache)

    def forward(self, x, h0=None, c0=None, mask=None):
        """x: (N, T, D); h0, c0: None, (N, H) or (H,); mask: (N, T) bool or None.

        Returns h: (N, T, H), zero at padded steps; sets `final_state = (h_last, c_last)`.
        """
        # Speed: inside, arrays are feature-major, (features, N): a_t = Wh^T h_{t-1},
        # (4H, H) @ (H, N), runs ~1.5x faster than h_{t-1} Wh, (N, H) @ (H, 4H), on two
        # BLAS threads at N = 32 (and ~10% faster again with Wh^T stored row by row);
        # each gate block a[k*H:(k+1)*H] is contiguous.
        x = self._check_x(x)
        N, T, D1 = x.shape[0], x.shape[1], x.shape[2] + 1
        H = self.hidden_dim
        # column t of hx is [h_{t-1}; x_t; 1], so that W hx[:, t] is the (scaled) a_t and
        # backward gets dWh, dWx and db from one product; hs[:, 0] = h0, hs[:, t+1] = h_t
        hx = self._buffer("hx", (H + D1, T + 1, N))
        X, mask, lengths = self._prepare(x, mask, axes=(2, 1, 0), ones=True, out=hx[H:, :T])
        hs = hx[:H]
        h_init, h_shared = self._initial(h0, N, "h0")
        c_init, c_shared = self._initial(c0, N, "c0")
        # The weights are scaled (exactly: by -1 for i, f, o and by -2 or 1 for g, see
        # recurrent.py) so that each gate is one exp and a few cheap passes.
        scale = self._gate_scale
        W = self._buffer("W_scaled", (4 * H, H + D1))  # [Wh; Wx; b]^T, scaled
        scaled_transpose(self.params["Wh"], scale, W[:, :H])
        scaled_transpose(self.params["Wx"], scale, W[:, H:-1])
        np.multiply(self.params["b"], scale, out=W[:, -1])
        # Speed: a narrow input (an embedding, D + 1 <= H/2) rides in each step's product over
        # all of hx[:, t]; a wide one is projected for all steps at once before the loop
        # (one batched product), each step then adds Wh^T h_{t-1}.
        stacked = D1 <= H // 2
        gates = self._buffer("gates", (T, 4 * H, N))  # the scaled a_t, then i, f, o, g
        cs = self._buffer("cs", (T + 1, H, N))        # cs[0] = c0, cs[t+1] = c_t
        tanh_cs = self._buffer("tanh_cs", (T, H, N))  # tanh(c_t), for h_t and for backward
        hh = self._buffer("hh", (4 * H, N))           # Wh^T h_{t-1} (scaled), then i * g
        hs[:, 0], cs[0] = h_init.T, c_init.T
        if not stacked:  # the input projection of all steps, bias included
            np.matmul(W[:, H:], X.transpose(1, 0, 2), out=gates)
        with np.errstate(over="ignore"):  # exp overflowing to inf gives the right limits
            for t in range(T):
                a = gates[t]                           # the scaled a = Wx^T x_t + Wh^T h_{t-1} + b
                if stacked:
                    np.matmul(W, hx[:, t], out=a)
                else:
                    a += np.matmul(W[:, :H], hs[:, t], out=hh)
                gates_(a, H)                           # i, f, o, g
                i, f, o, g = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
                c = cs[t + 1]
                np.multiply(f, cs[t], out=c)
                c += np.multiply(i, g, out=hh[:H])     # c_t = f c_{t-1} + i g
                tanh_(c, out=tanh_cs[t])
                np.multiply(o, tanh_cs[t], out=hs[:, t + 1])  # h_t = o tanh(c_t)
        self._cache = (hx, gates, cs, tanh_cs, mask, h_shared, c_shared)
        hs_tnh = hs.transpose(1, 2, 0)                 # (T+1, N, H) views for the helpers
        self.final_state = (self._final(hs_tnh, lengths),
                            self._final(cs.transpose(0, 2, 1), lengths))
        return self._outputs(hs_tnh, mask)

    def backward(self, dh, dfinal=None):
        """dh: (N, T, H) or None (zeros) -> (dx (N, T, D), dh0); the gradient of c0 is
        left in `self.dc0`. dfinal: None or (dh_final, dc_final), each (N, H) or None, a
        gradient on `final_state`.

        dh0 and dc0 are (N, H), or (H,) where the initial state was shared. Adds dWx, dWh,
        db into `grads`.
        """
        hx, gates, cs, tanh_cs, mask, h_shared, c_shared = self._check_cache()
        H = self.hidden_dim
        T, N = gates.shape[0], gates.shape[2]
        dh = self._upstream(dh, (N, T, H), mask)
        dh_tnh = self._buffer("dh_tnh", (T, N, H))
        dh_tnh[...] = dh.transpose(1, 0, 2)
        dhs = self._buffer("dhs", (T, H, N))
        dhs[...] = dh_tnh.transpose(0, 2, 1)  # speed: two copies beat one 3-D transpose
        Wx, Wh = self.params["Wx"], self.params["Wh"]
        # the pre-activation gradients of all steps, (4H, T, N), so that the weight
        # gradients are one product each; each step's is built contiguous in `da`
        dgates = self._buffer("dgates", (4 * H, T, N))
        da = self._buffer("da", (4 * H, N))
        dht = self._buffer("dht", (H, N))
        tmp = self._buffer("tmp", (H, N))
        dsig = self._buffer("dsig", (3 * H, N))
        di, df, do, dg = da[:H], da[H:2 * H], da[2 * H:3 * H], da[3 * H:]
        dnext_h = np.zeros((H, N), dtype=self._dtype)  # reaches h_t from step t+1
        dnext_c = np.zeros((H, N), dtype=self._dtype)  # reaches c_t from step t+1
        fin = self._final_grad(dfinal, N, T, mask, feature_major=True)
        for t in range(T - 1, -1, -1):
            if fin:
                fin.add(t, dnext_h, dnext_c)
            ifo = gates[t, :3 * H]
            i, f, o, g = gates[t, :H], gates[t, H:2 * H], gates[t, 2 * H:3 * H], gates[t, 3 * H:]
            np.add(dhs[t], dnext_h, out=dht)
            np.multiply(dht, tanh_cs[t], out=do)
            # dc_t = dnext_c + dht * o * (1 - tanh(c_t)^2)
            np.multiply(tanh_cs[t], tanh_cs[t], out=tmp)
            np.subtract(1, tmp, out=tmp)
            tmp *= o
            tmp *= dht
            dc = np.add(dnext_c, tmp, out=dnext_c)
            np.multiply(dc, g, out=di)
            np.multiply(dc, cs[t], out=df)
            np.multiply(dc, i, out=dg)
            dc *= f                                    # now dc_{t-1}
            # through the nonlinearities, from cached outputs: s (1 - s) and 1 - g^2
            np.subtract(1, ifo, out=dsig)
            dsig *= ifo
            da[:3 * H] *= dsig
            np.multiply(g, g, out=tmp)
            np.subtract(1, tmp, out=tmp)
            dg *= tmp
            np.matmul(Wh, da, out=dnext_h)             # dh_{t-1} = Wh da_t
            dgates[:, t] = da
        if fin:
            fin.add(-1, dnext_h, dnext_c)
        dA = dgates.reshape(4 * H, T * N)
        # the weight gradients of all steps in one product, [dWh; dWx; db] = hx dA^T
        # (hx's row of ones gives db)
        dW = hx[:, :T].reshape(-1, T * N) @ dA.T
        self.grads["Wh"] += dW[:H]
        self.grads["Wx"] += dW[H:-1]
        self.grads["b"] += dW[-1]
        dX = (Wx @ dA).reshape(-1, T, N)
        dx = self._input_grad(dX.transpose(1, 2, 0))   # a (T, N, D) view
        self.dc0 = self._initial_grad(dnext_c.T, c_shared)
        return dx, self._initial_grad(dnext_h.T, h_shared)
