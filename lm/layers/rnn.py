"""VanillaRNN: the tanh recurrent layer, one step at a time and over whole sequences.

One step: a_t = x_t Wx + h_{t-1} Wh + b;  h_t = tanh(a_t). `rnn_step_forward` and
`rnn_step_backward` are the reference; `VanillaRNN.forward` projects the inputs of all
steps before the loop (one product) and, in float32, takes tanh through one exp: the
weights are scaled by -2 (`_scaled_weights`, exact) so the products give -2 a_t, what
`scaled_tanh` takes (see recurrent.py). Backward: da_t = dh_t (1 - h_t^2), dh_{t-1} +=
da_t Wh^T; the weight gradients are one product each over all steps after the loop.
"""
import numpy as np

from .recurrent import Recurrent, scaled_tanh, tanh_input_scale


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step: next_h = tanh(x Wx + prev_h Wh + b).

    x: (N, D), prev_h: (N, H), Wx: (D, H), Wh: (H, H), b: (H,).
    Returns next_h (N, H) and the cache for `rnn_step_backward`.
    """
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """dnext_h: (N, H) -> (dx (N, D), dprev_h (N, H), dWx, dWh, db)."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)  # tanh' from the cached output
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


class VanillaRNN(Recurrent):
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b). Params Wx (D, H), Wh (H, H), b (H,)."""

    def __init__(self, input_dim, hidden_dim, dtype=np.float32, rng=None):
        super().__init__(input_dim, hidden_dim, dtype, rng)
        D, H = self.input_dim, self.hidden_dim
        self._init_param("Wx", (D, H))
        self._init_param("Wh", (H, H))
        self._init_param("b", (H,))

    def step_forward(self, x, prev_h):
        """x: (N, D), prev_h: (N, H) -> (next_h (N, H), cache)."""
        p, dt = self.params, self._dtype
        return rnn_step_forward(np.asarray(x, dt), np.asarray(prev_h, dt), p["Wx"], p["Wh"], p["b"])

    def step_backward(self, dnext_h, cache):
        """dnext_h: (N, H) -> (dx, dprev_h, dWx, dWh, db); `grads` is left alone."""
        return rnn_step_backward(np.asarray(dnext_h, self._dtype), cache)

    def _scaled_weights(self):
        """Wx, Wh times tanh_input_scale (exactly: -2 in float32, 1 in float64) in work
        arrays, so that the products give what `scaled_tanh` takes (see recurrent.py)."""
        scale = tanh_input_scale(self._dtype)
        return (self._scaled("Wx_scaled", self.params["Wx"], scale),
                self._scaled("Wh_scaled", self.params["Wh"], scale))

    def forward(self, x, h0=None, mask=None):
        """x: (N, T, D); h0: None, (N, H) or (H,); mask: (N, T) bool or None.

        Returns h: (N, T, H), zero at padded steps; sets `final_state = (h_last,)`.
        """
        xt, mask, lengths = self._prepare(x, mask)
        T, N, D = xt.shape
        H = self.hidden_dim
        h_init, shared = self._initial(h0, N, "h0")
        Wx, Wh = self._scaled_weights()
        x_proj = self._buffer("x_proj", (T, N, H))   # scaled x_t Wx + b, every step
        hs = self._buffer("hs", (T + 1, N, H))       # hs[0] = h0, hs[t+1] = h_t
        a = self._buffer("a", (N, H))                # scaled pre-activation of the current step
        hs[0] = h_init
        # the input projection of all steps in one product, before the loop
        np.matmul(xt.reshape(T * N, D), Wx, out=x_proj.reshape(T * N, H))
        x_proj += self.params["b"] * tanh_input_scale(self._dtype)
        with np.errstate(over="ignore"):  # exp overflowing to inf gives the right limit -1
            for t in range(T):
                np.matmul(hs[t], Wh, out=a)
                a += x_proj[t]
                scaled_tanh(a, out=hs[t + 1])   # h_t = tanh(x_t Wx + h_{t-1} Wh + b)
        self._cache = (xt, hs, mask, shared)
        self.final_state = (self._final(hs, lengths),)
        return self._outputs(hs, mask)

    def backward(self, dh, dfinal=None):
        """dh: (N, T, H) or None (zeros) -> (dx (N, T, D), dh0 ((N, H), or (H,) if h0
        was shared)). dfinal: None or (dh_final (N, H),), a gradient on `final_state`.

        Adds dWx, dWh, db into `grads`.
        """
        xt, hs, mask, shared = self._check_cache()
        T, N, D = xt.shape
        H = self.hidden_dim
        dh = self._upstream(dh, (N, T, H), mask)
        Wx, Wh = self.params["Wx"], self.params["Wh"]
        da = self._buffer("da", (T, N, H))      # dL/da_t of every step (a_t: the pre-activation)
        dh_t = self._buffer("dh_t", (N, H))     # dL/dh_t, all paths
        dtanh = self._buffer("dtanh", (N, H))   # tanh'(a_t) = 1 - h_t^2, from the cached output
        # the gradient flowing back along the recurrence: on entering step t it is what
        # reaches h_t from step t+1 (plus dfinal where h_t is a row's final state); step t
        # overwrites it with what reaches h_{t-1}
        dh_rec = np.zeros((N, H), dtype=self._dtype)
        final = self._final_grad(dfinal, N, T, mask)
        for t in range(T - 1, -1, -1):
            if final:
                final.add(t, dh_rec)
            np.add(dh[:, t], dh_rec, out=dh_t)
            np.multiply(hs[t + 1], hs[t + 1], out=dtanh)
            np.subtract(1, dtanh, out=dtanh)
            np.multiply(dh_t, dtanh, out=da[t])
            np.matmul(da[t], Wh.T, out=dh_rec)
        if final:
            final.add(-1, dh_rec)
        dA = da.reshape(T * N, H)
        # weight gradients: one product each over all steps
        self.grads["Wx"] += xt.reshape(T * N, D).T @ dA
        self.grads["Wh"] += hs[:-1].reshape(T * N, H).T @ dA
        self.grads["b"] += dA.sum(axis=0)
        dx = self._input_grad((dA @ Wx.T).reshape(T, N, D))
        return dx, self._initial_grad(dh_rec, shared)
