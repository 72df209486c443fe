"""LSTM: the long short-term memory layer (gates i, f, o, g), one step at a time and over sequences.

One step, x_t (N, D), h and c (N, H), gate blocks of width H in order i, f, o, g:

    (1) a_t = x_t Wx + h_{t-1} Wh + b                  pre-activations (N, 4H)
    (2) i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    (3) c_t = f * c_{t-1} + i * g
    (4) h_t = o * tanh(c_t)

`lstm_step_forward`/`lstm_step_backward` write these as they stand: the reference.
`LSTM.forward`/`LSTM.backward` compute the same for a whole sequence, with four tricks,
each a named helper (tests/test_step_chain.py checks them against the step chain):

- Feature-major arrays, (features, N), everything transposed: (1) becomes
  a_t^T = [Wh; Wx; b]^T [h_{t-1}; x_t; 1], a (4H, H + D + 1) @ (H + D + 1, N) product,
  which BLAS runs faster than (N, H) @ (H, 4H) at N = 32-64, and each gate block
  a[k*H:(k+1)*H] is contiguous.
- Stacked inputs (`_stacked_inputs`): column t of one (H + D + 1, T + 1, N) array holds
  [h_{t-1}; x_t; 1], so (1) is one product (the 1 adds b), and backward gets dWh, dWx
  and db from one product over all steps. A wide input (D + 1 > H/2) is instead
  projected for all steps before the loop, and each step adds Wh^T h_{t-1}.
- Scaled weights (`_scaled_weights`, `gate_scale`): the rows of [Wh; Wx; b]^T are
  multiplied by -1 (i, f, o) and by -2 (g; 1 in float64), exact in floating point, so
  the product gives -a_ifo and -2 a_g, the arguments the exp-based gates need, with no
  extra pass.
- Exp-based gates (`exp_gates`): sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) =
  2 / (1 + exp(-2a)) - 1, one exp over the whole (4H, N) block (see recurrent.py: numpy's
  float32 tanh is slow; float64 keeps np.tanh).

Backward, per step from the last, in the notation of (1)-(4); dh_t and dc_t are the whole
gradients at h_t and c_t: from above at step t plus what step t+1 sends back.

    (4) do = dh_t * tanh(c_t);  dc_t = (sent by step t+1) + dh_t * o * (1 - tanh(c_t)^2)
    (3) di = dc_t * g;  df = dc_t * c_{t-1};  dg = dc_t * i;  sent to c_{t-1}: dc_t * f
    (2) da_t = [di, df, do] * s (1 - s) for s = i, f, o, and dg * (1 - g^2)
        (`gates_backward`, from the cached gates)
    (1) sent to h_{t-1}: da_t Wh^T;  after the loop, one product each over all steps:
        [dWh; dWx; db] = sum_t [h_{t-1}; x_t; 1]^T da_t  and  dx_t = da_t Wx^T
"""
import numpy as np

from .recurrent import (Recurrent, exp_sigmoid, exp_tanh, scaled_tanh, scaled_transpose, sigmoid, tanh_,
                        tanh_input_scale)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One step, equations (1)-(4) above.

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


def gate_scale(H, dtype):
    """(4H,) factors of the scaled weights: -1 for i, f, o and tanh_input_scale (-2 in
    float32, 1 in float64) for g, so that the product gives what `exp_gates` takes."""
    scales = [-1, -1, -1, tanh_input_scale(dtype)]
    return np.repeat(np.array(scales, dtype=dtype), H)


def exp_gates(scaled_a, out):
    """(2): out = [i; f; o; g] from scaled_a = [-a_i; -a_f; -a_o; s a_g] (4H, N), s from
    `gate_scale`. Returns out (4H, N)."""
    H = out.shape[0] // 4
    ifo, g = out[:3 * H], out[3 * H:]
    if exp_tanh(out.dtype):
        # speed: one exp over the whole contiguous block, then cheap vectorised passes
        np.exp(scaled_a, out=out)
        out += 1
        np.divide(1, ifo, out=ifo)     # sigmoid(a) = 1 / (1 + exp(-a))
        np.divide(2, g, out=g)
        g -= 1                         # tanh(a) = 2 / (1 + exp(-2a)) - 1
    else:  # float64: the same sigmoid, and np.tanh (precise near 0)
        exp_sigmoid(scaled_a[:3 * H], out=ifo)
        scaled_tanh(scaled_a[3 * H:], out=g)
    return out


def gates_backward(dgates, gates, out):
    """(2) backward: out = dL/da (4H, N) from dgates = dL/d[i; f; o; g] and the gates
    [i; f; o; g] themselves (derivatives from cached outputs): dgates * s (1 - s) for
    s = i, f, o and dgates * (1 - g^2) for g. Returns out."""
    H = gates.shape[0] // 4
    s, g = gates[:3 * H], gates[3 * H:]
    da_ifo, da_g = out[:3 * H], out[3 * H:]
    np.subtract(1, s, out=da_ifo)
    da_ifo *= s
    da_ifo *= dgates[:3 * H]
    np.multiply(g, g, out=da_g)
    np.subtract(1, da_g, out=da_g)
    da_g *= dgates[3 * H:]
    return out


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
        self._gate_scale = gate_scale(H, self._dtype)

    def step_forward(self, x, prev_h, prev_c):
        """x: (N, D), prev_h, prev_c: (N, H) -> (next_h, next_c, cache)."""
        p, dt = self.params, self._dtype
        return lstm_step_forward(np.asarray(x, dt), np.asarray(prev_h, dt),
                                 np.asarray(prev_c, dt), p["Wx"], p["Wh"], p["b"])

    def step_backward(self, dnext_h, dnext_c, cache):
        """-> (dx, dprev_h, dprev_c, dWx, dWh, db); `grads` is left alone."""
        dt = self._dtype
        return lstm_step_backward(np.asarray(dnext_h, dt), np.asarray(dnext_c, dt), cache)

    def _stacked_inputs(self, x, mask):
        """x (N, T, D) -> (hx1, mask, lengths): hx1 (H + D + 1, T + 1, N), column t holding
        [h_{t-1}; x_t; 1] once the h rows are written (the x and 1 rows are written here;
        padded steps' x is zero; column T's x rows are unused)."""
        N, T, D = x.shape
        H = self.hidden_dim
        hx1 = self._buffer("hx1", (H + D + 1, T + 1, N))
        _, mask, lengths = self._prepare(x, mask, axes=(2, 1, 0), ones=True, out=hx1[H:, :T])
        return hx1, mask, lengths

    def _scaled_weights(self):
        """[Wh; Wx; b]^T (4H, H + D + 1) with row k times `gate_scale`[k], in a work array:
        W_scaled @ hx1[:, t] is [-a_i; -a_f; -a_o; s a_g] of step t."""
        H, D = self.hidden_dim, self.input_dim
        scale = self._gate_scale
        W = self._buffer("W_scaled", (4 * H, H + D + 1))
        scaled_transpose(self.params["Wh"], scale, W[:, :H])
        scaled_transpose(self.params["Wx"], scale, W[:, H:-1])
        np.multiply(self.params["b"], scale, out=W[:, -1])
        return W

    def forward(self, x, h0=None, c0=None, mask=None):
        """x: (N, T, D); h0, c0: None, (N, H) or (H,); mask: (N, T) bool or None.

        Returns h: (N, T, H), zero at padded steps; sets `final_state = (h_last, c_last)`.
        """
        x = self._check_x(x)
        N, T, D = x.shape
        H = self.hidden_dim
        hx1, mask, lengths = self._stacked_inputs(x, mask)
        hs = hx1[:H]                                   # hs[:, 0] = h0, hs[:, t+1] = h_t
        h_init, h_shared = self._initial(h0, N, "h0")
        c_init, c_shared = self._initial(c0, N, "c0")
        W = self._scaled_weights()
        gates = self._buffer("gates", (T, 4 * H, N))   # i, f, o, g of every step
        cs = self._buffer("cs", (T + 1, H, N))         # cs[0] = c0, cs[t+1] = c_t
        tanh_cs = self._buffer("tanh_cs", (T, H, N))   # tanh(c_t), for h_t and for backward
        scaled_a = self._buffer("scaled_a", (4 * H, N))  # (1), scaled, of the current step
        i_g = self._buffer("i_g", (H, N))              # i * g of the current step
        hs[:, 0], cs[0] = h_init.T, c_init.T
        # Speed: a narrow input (an embedding, D + 1 <= H/2) rides in each step's product
        # over all of [h; x; 1]; a wide one is projected for all steps at once before the
        # loop, each step then adds Wh^T h_{t-1}. That projection is one (4H, D+1) @
        # (D+1, T*N) product: the x rows of hx1[:, :T] are contiguous T*N runs, and one
        # GEMM is about 1.6x faster than T batched (4H, D+1) @ (D+1, N) ones.
        stacked = D + 1 <= H // 2
        if not stacked:
            x_proj = self._buffer("x_proj", (4 * H, T, N))  # scaled x_t Wx + b, every step
            np.matmul(W[:, H:], hx1[H:, :T].reshape(D + 1, T * N),
                      out=x_proj.reshape(4 * H, T * N))
        with np.errstate(over="ignore"):  # exp overflowing to inf gives the right limits
            for t in range(T):
                i, f, o, g = (gates[t, k * H:(k + 1) * H] for k in range(4))
                if stacked:                                       # (1)
                    np.matmul(W, hx1[:, t], out=scaled_a)
                else:
                    np.matmul(W[:, :H], hs[:, t], out=scaled_a)
                    scaled_a += x_proj[:, t]
                exp_gates(scaled_a, out=gates[t])                 # (2)
                np.multiply(f, cs[t], out=cs[t + 1])              # (3)
                cs[t + 1] += np.multiply(i, g, out=i_g)
                tanh_(cs[t + 1], out=tanh_cs[t])                  # (4)
                np.multiply(o, tanh_cs[t], out=hs[:, t + 1])
        self._cache = (hx1, gates, cs, tanh_cs, mask, h_shared, c_shared)
        hs_tnh = hs.transpose(1, 2, 0)                 # (T+1, N, H) views for the helpers
        self.final_state = (self._final(hs_tnh, lengths),
                            self._final(cs.transpose(0, 2, 1), lengths))
        return self._outputs(hs_tnh, mask)

    def _upstream_feature_major(self, dh, shape, mask):
        """dh (N, T, H) or None (zeros), checked and zeroed at padding -> a work array
        (T, H, N)."""
        N, T, H = shape
        dh = self._upstream(dh, shape, mask)
        dh_tnh = self._buffer("dh_tnh", (T, N, H))
        dh_tnh[...] = dh.transpose(1, 0, 2)
        dh_thn = self._buffer("dh_thn", (T, H, N))
        dh_thn[...] = dh_tnh.transpose(0, 2, 1)        # speed: two copies beat one 3-D transpose
        return dh_thn

    def backward(self, dh, dfinal=None):
        """dh: (N, T, H) or None (zeros) -> (dx (N, T, D), dh0); the gradient of c0 is
        left in `self.dc0`. dfinal: None or (dh_final, dc_final), each (N, H) or None, a
        gradient on `final_state`.

        dh0 and dc0 are (N, H), or (H,) where the initial state was shared. Adds dWx, dWh,
        db into `grads`.
        """
        hx1, gates, cs, tanh_cs, mask, h_shared, c_shared = self._check_cache()
        H = self.hidden_dim
        T, N = gates.shape[0], gates.shape[2]
        dh_up = self._upstream_feature_major(dh, (N, T, H), mask)  # (T, H, N): from above
        Wx, Wh = self.params["Wx"], self.params["Wh"]
        # the pre-activation gradients of all steps, (4H, T, N), so that the weight
        # gradients are one product each; each step's is built contiguous in `da`
        da_all = self._buffer("da_all", (4 * H, T, N))
        da = self._buffer("da", (4 * H, N))            # dL/da_t of the current step
        dgates = self._buffer("dgates", (4 * H, N))    # dL/d[i; f; o; g] of the current step
        dh_t = self._buffer("dh_t", (H, N))            # dL/dh_t, all paths
        dc_t = self._buffer("dc_t", (H, N))            # dL/dc_t, all paths
        dc_via_h = self._buffer("dc_via_h", (H, N))    # the part of dL/dc_t through h_t
        di, df, do, dg = (dgates[k * H:(k + 1) * H] for k in range(4))
        # the gradient flowing back along the recurrence: on entering step t it is what
        # reaches h_t (c_t) from step t+1, plus dfinal where it is a row's final state; step
        # t overwrites it with what reaches h_{t-1} (c_{t-1})
        dh_rec = np.zeros((H, N), dtype=self._dtype)
        dc_rec = np.zeros((H, N), dtype=self._dtype)
        final = self._final_grad(dfinal, N, T, mask, feature_major=True)
        for t in range(T - 1, -1, -1):
            if final:
                final.add(t, dh_rec, dc_rec)
            i, f, o, g = (gates[t, k * H:(k + 1) * H] for k in range(4))
            np.add(dh_up[t], dh_rec, out=dh_t)
            np.multiply(dh_t, tanh_cs[t], out=do)      # (4)
            np.multiply(tanh_cs[t], tanh_cs[t], out=dc_via_h)
            np.subtract(1, dc_via_h, out=dc_via_h)
            dc_via_h *= o
            dc_via_h *= dh_t                           # dh_t * o * (1 - tanh(c_t)^2)
            np.add(dc_rec, dc_via_h, out=dc_t)
            np.multiply(dc_t, g, out=di)               # (3)
            np.multiply(dc_t, cs[t], out=df)
            np.multiply(dc_t, i, out=dg)
            np.multiply(dc_t, f, out=dc_rec)
            gates_backward(dgates, gates[t], out=da)   # (2)
            np.matmul(Wh, da, out=dh_rec)              # (1)
            da_all[:, t] = da
        if final:
            final.add(-1, dh_rec, dc_rec)
        dA = da_all.reshape(4 * H, T * N)
        # (1) the weight gradients of all steps in one product: [dWh; dWx; db] = hx1 dA^T
        # (hx1's row of ones gives db)
        dW = hx1[:, :T].reshape(-1, T * N) @ dA.T
        self.grads["Wh"] += dW[:H]
        self.grads["Wx"] += dW[H:-1]
        self.grads["b"] += dW[-1]
        dX = (Wx @ dA).reshape(-1, T, N)
        dx = self._input_grad(dX.transpose(1, 2, 0))   # a (T, N, D) view
        self.dc0 = self._initial_grad(dc_rec.T, c_shared)
        return dx, self._initial_grad(dh_rec.T, h_shared)
