"""Machinery shared by the recurrent layers: inputs, masks and NaN padding, initial and final states, buffers."""
import math

import numpy as np

from .base import Layer, as_rng


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), written as 0.5 * tanh(0.5 x) + 0.5 (no overflow)."""
    return 0.5 * np.tanh(0.5 * x) + 0.5


# Speed: numpy's float32 tanh is scalar code on CPUs without AVX-512 (about 2.5 ns a value
# here) while its exp is vectorised (about 1.3 ns), so in float32 the sequence loops build
# sigmoid and tanh from one exp each. An exp overflowing to inf gives the right limits (0
# and -1); callers run these under np.errstate(over="ignore"). tanh(x) = 2 / (1 + exp(-2x))
# - 1 is only absolutely (not relatively) accurate near 0, about 1e-7 in float32, which is
# float32's resolution anyway; float64, the dtype of the gradient checks, keeps np.tanh.

def exp_tanh(dtype):
    """Whether tanh goes through exp for this dtype (float32 and narrower)."""
    return np.dtype(dtype).itemsize <= 4


def tanh_input_scale(dtype):
    """The factor `scaled_tanh_` expects its input to carry: -2 (through exp) or 1."""
    return -2 if exp_tanh(dtype) else 1


def exp_sigmoid(neg_a, out):
    """out = sigmoid(a) = 1 / (1 + exp(-a)) from neg_a = -a (out may be neg_a); returns out."""
    np.exp(neg_a, out=out)
    out += 1
    return np.divide(1, out, out=out)  # speed: numpy's divide is vectorised, its reciprocal is not


def exp_sigmoid_(neg_a):
    """In place: neg_a holding -a becomes sigmoid(a); returns it."""
    return exp_sigmoid(neg_a, out=neg_a)


def scaled_tanh(a, out):
    """out = tanh(x) from a = tanh_input_scale(dtype) * x (out may be a); returns out."""
    if not exp_tanh(out.dtype):
        return np.tanh(a, out=out)
    np.exp(a, out=out)
    out += 1
    np.divide(2, out, out=out)
    out -= 1                   # 2 / (1 + exp(-2x)) - 1
    return out


def scaled_tanh_(a):
    """In place: a holding tanh_input_scale(dtype) * x becomes tanh(x); returns it."""
    return scaled_tanh(a, out=a)


def tanh_(x, out):
    """out = tanh(x), through exp in float32 (see above); out may be x. Returns out."""
    if not exp_tanh(out.dtype):
        return np.tanh(x, out=out)
    np.multiply(x, -2, out=out)
    return scaled_tanh_(out)


def scaled_transpose(w, scale, out):
    """out = (w * scale).T; w: (R, C), scale: (C,), out: (C, R) (rows may be strided). Returns out."""
    # speed: numpy's transposing copy walks w down its columns (one cache line per
    # element); a band of 16 rows (one line of out) at a time is about 1.6x faster
    for k in range(0, w.shape[0], 16):
        np.multiply(w[k:k + 16].T, scale[:, None], out=out[:, k:k + 16])
    return out


def resolve_mask(x, mask=None):
    """The padding of x (N, T, D) as (mask (N, T) bool or None, lengths (N,) int or None).

    A given mask is checked: shape (N, T) and valid steps a prefix of each row. With no
    mask, steps whose features are all NaN are padding. (None, None) means "no padding":
    every step of every row is valid, and callers skip all mask work.
    """
    N, T = x.shape[:2]
    if mask is None:
        # cheap test first: an all-NaN step has a NaN in feature 0
        if x.shape[2] == 0 or not np.isnan(x[:, :, 0]).any():
            return None, None
        mask = ~np.isnan(x).all(axis=2)
        what = "the NaN padding of x (all-NaN steps)"
    else:
        mask = np.asarray(mask)
        if mask.shape != (N, T):
            raise ValueError(f"mask must have shape {(N, T)} like x's first two axes, got {mask.shape}")
        mask = mask.astype(bool, copy=False)
        what = "mask"
    if np.any(mask[:, 1:] & ~mask[:, :-1]):
        raise ValueError(f"{what} must mark a prefix of each row: valid steps first, then padding")
    if mask.all():
        return None, None
    return mask, mask.sum(axis=1)


class Recurrent(Layer):
    """Base of VanillaRNN, LSTM and GRU: parameter init and the sequence plumbing.

    Internally sequences are time-major, (T, N, .), so that each step reads and writes
    contiguous (N, .) blocks and the states h_{t-1} of all steps stack into one (T*N, H)
    matrix for the weight gradients. The LSTM keeps them feature-major instead, (., T, N)
    (`_prepare(..., axes=(2, 1, 0))`): its step product is then (4H, H) @ (H, N), which
    two BLAS threads run faster; the helpers below take (T, N, .) views of either layout.
    Subclasses set `state_names` (("h",) or ("h", "c")).

    Masks: valid steps are a prefix of each row, so every row is run for all T steps and
    only at the edges does the mask act: padded inputs are zeroed, padded outputs and
    their upstream gradients are zeroed, and the final state is gathered at each row's
    last valid step. Steps after a row's end then influence nothing, get exactly zero
    gradient, and the time loop needs no per-step mask work.
    """

    state_names = ("h",)

    def __init__(self, input_dim, hidden_dim, dtype=np.float32, rng=None):
        super().__init__()
        for name, value in (("input_dim", input_dim), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.input_dim = int(input_dim)
        self.hidden_dim = self.output_size = int(hidden_dim)
        self._dtype = np.dtype(dtype)
        if self._dtype.kind != "f":
            raise ValueError(f"dtype must be a floating type, got {self._dtype}")
        self._rng = as_rng(rng)
        self.final_state = None
        self._cache = None
        self._work = {}

    def _init_param(self, name, shape):
        """Register a parameter drawn from uniform(-1/sqrt(H), 1/sqrt(H)), as PyTorch does."""
        k = 1.0 / np.sqrt(self.hidden_dim)
        return self.add_param(name, self._rng.uniform(-k, k, shape).astype(self._dtype))

    def _buffer(self, name, shape):
        """A work array of `shape`, reused across calls (no fresh pages every batch).

        Never returned to the caller: outputs, final states and gradients are new arrays.
        """
        size = math.prod(shape)  # not np.prod: this runs on every call, also per sampled token
        buf = self._work.get(name)
        if buf is None or buf.size < size:
            buf = self._work[name] = np.empty(size, dtype=self._dtype)
        return buf[:size].reshape(shape)

    def _scaled(self, name, w, scale):
        """A work array holding w * scale (scale broadcasts along w's last axis)."""
        return np.multiply(w, scale, out=self._buffer(name, w.shape))

    def _check_x(self, x):
        """x as an array, checked to be (N, T, input_dim) with N, T >= 1."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.input_dim:
            raise ValueError(f"x must have shape (N, T, {self.input_dim}), got {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have at least one row and one step, got shape {x.shape}")
        return x

    def _prepare(self, x, mask, axes=(1, 0, 2), ones=False, out=None):
        """x (N, T, D) -> (a copy in the layer's dtype laid out as x.transpose(axes),
        padded steps zeroed; mask (N, T) or None; lengths (N,) or None).

        axes (1, 0, 2): time-major (T, N, D); (2, 1, 0): feature-major (D, T, N).
        ones: the copy gets a last feature that is 1 everywhere (D + 1 features), so that
        a product with [W; b] adds the bias b too.
        out: the array to write the copy into (that shape; may be a view into a larger
        work array), else a reused buffer.
        """
        x = self._check_x(x)
        N, T, D = x.shape
        mask, lengths = resolve_mask(x, mask)
        feature_axis = axes.index(2)
        shape = [x.shape[a] for a in axes]
        shape[feature_axis] += bool(ones)
        xt = self._buffer("xt", tuple(shape)) if out is None else out
        features = [slice(None)] * 3
        features[feature_axis] = slice(0, D)
        xs = xt[tuple(features)]
        xs[...] = x.transpose(axes)  # casts to the params' dtype
        if mask is not None:  # NaN or junk in padding must not reach the products
            np.copyto(xs, 0, where=~mask[:, :, None].transpose(axes))
        if ones:
            features[feature_axis] = D
            xt[tuple(features)] = 1
        return xt, mask, lengths

    def _initial(self, s0, N, name):
        """s0 None, (N, H) or (H,) -> ((N, H) array, shared flag)."""
        H = self.hidden_dim
        if s0 is None:
            return np.zeros((N, H), dtype=self._dtype), False
        s0 = np.asarray(s0, dtype=self._dtype)
        if s0.shape == (H,):
            return np.broadcast_to(s0, (N, H)), True
        if s0.shape != (N, H):
            raise ValueError(f"{name} must have shape ({N}, {H}) or ({H},), got {s0.shape}")
        return s0, False

    def _outputs(self, hs, mask):
        """hs (T+1, N, H) with hs[0] = h0 (a view of any layout) -> new (N, T, H) array,
        zero at padding."""
        T, N, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        out = np.empty((N, T, H), dtype=hs.dtype)  # always new: hs is a reused buffer
        for t in range(T):  # speed: one small copy per step beats numpy's 3-D transpose
            out[:, t] = hs[t + 1]
        if mask is not None:
            out[~mask] = 0
        return out

    @staticmethod
    def _final(states, lengths):
        """states (T+1, N, H) -> a new (N, H) array: each row's state after its last valid step."""
        if lengths is None:
            return states[-1].copy()
        return states[lengths, np.arange(states.shape[1])]

    def _upstream(self, dh, shape, mask):
        """Check dh (N, T, H) and zero it at padded steps (their outputs are constant zero).

        dh None: no gradient on the outputs (only on the final state), zeros.
        """
        if dh is None:
            return np.zeros(shape, dtype=self._dtype)
        dh = np.asarray(dh)
        if dh.shape != shape:
            raise ValueError(f"dh must have shape {shape} like the forward output, got {dh.shape}")
        if mask is not None:
            dh = np.where(mask[:, :, None], dh, 0)
        return dh.astype(self._dtype, copy=False)

    def _final_grad(self, dfinal, N, T, mask, feature_major=False):
        """A FinalStateGrad for `dfinal` (None when there is no gradient on the final state)."""
        if dfinal is None or all(g is None for g in dfinal):
            return None
        return FinalStateGrad(dfinal, self.state_names, N, T, self.hidden_dim, mask,
                              self._dtype, feature_major)

    @staticmethod
    def _input_grad(dxt):
        """dxt (T, N, D) time-major -> new (N, T, D) array."""
        return np.array(dxt.transpose(1, 0, 2), order="C")  # a copy, even when N or T is 1

    @staticmethod
    def _initial_grad(ds, shared):
        """Gradient of an initial state: (N, H), or summed to (H,) when it was shared."""
        return ds.sum(axis=0) if shared else ds.copy()

    def _check_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


class FinalStateGrad:
    """Gradients on a layer's `final_state`, added to the backward pass where each row's
    final state was taken: at its last valid step (step T-1 with no mask; before step 0,
    i.e. onto the initial state, for a row with no valid step).

    dfinal: a tuple like `final_state`, (dh_T,) or (dh_T, dc_T), each (N, H) or None.
    In the backward loop, `add(t, dnext_h[, dnext_c])` before step t adds the gradients of
    the rows that end at step t into the gradients flowing into h_t (and c_t); after the
    loop, `add(-1, ...)` handles rows with no valid step. The dnext arrays are (N, H), or
    (H, N) when `feature_major` (the LSTM's layout).
    """

    def __init__(self, dfinal, names, N, T, H, mask, dtype, feature_major=False):
        dfinal = tuple(dfinal)
        if len(dfinal) != len(names):
            raise ValueError(f"dfinal must hold {len(names)} gradients ({', '.join(names)}), "
                             f"got {len(dfinal)}")
        self.grads = []
        for name, g in zip(names, dfinal):
            if g is not None:
                g = np.asarray(g)
                if g.shape != (N, H):
                    raise ValueError(f"the gradient of the final {name} must have shape "
                                     f"{(N, H)}, got {g.shape}")
                g = g.astype(dtype, copy=False)
            self.grads.append(g)
        self.feature_major = feature_major
        if mask is None:
            self.rows = {T - 1: slice(None)}
        else:
            last = mask.sum(axis=1) - 1
            self.rows = {int(t): np.flatnonzero(last == t) for t in np.unique(last)}

    def add(self, t, *dnext):
        rows = self.rows.get(t)
        if rows is None:
            return
        for g, d in zip(self.grads, dnext):
            if g is None:
                continue
            if self.feature_major:
                d[:, rows] += g[rows].T
            else:
                d[rows] += g[rows]
