"""Numerical gradient checks (centred differences), for layers, losses and whole models."""
import numpy as np


def rel_error(x, y):
    """max |x - y| / max(1e-8, |x| + |y|), elementwise; NaN in the same places counts as equal."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    nx, ny = np.isnan(x), np.isnan(y)
    if np.any(nx != ny):
        return float("inf")
    x, y = x[~nx], y[~ny]
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def eval_numerical_gradient(f, x, h=1e-5):
    """Gradient of the scalar f(x) at x: df/dx, same shape as x (x is perturbed in place)."""
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = float(f(x))
        x[ix] = old - h
        fxmh = float(f(x))
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5, extrapolate=False):
    """Gradient of sum(f(x) * df) with respect to x, for an array-valued f.

    extrapolate: Richardson extrapolation, (4 g(h) - g(2h)) / 3, which cancels the h^2
    error term of the centred difference g and leaves O(h^4): with h = 1e-3 in float64
    about 1e-12 absolute, so even tiny gradient entries can be held to a relative error
    below 1e-7 (plain centred differences reach 1e-6..1e-7 on them). Costs twice the calls.
    """
    if extrapolate:
        fine = _centred_differences(f, x, df, h)
        return (4 * fine - _centred_differences(f, x, df, 2 * h)) / 3
    return _centred_differences(f, x, df, h)


def _centred_differences(f, x, df, h):
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old
        # NaN outputs (padding) carry no gradient
        grad[ix] = np.nansum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def check_layer_gradients(layer, forward, backward, inputs, rng=None, h=1e-6,
                          extrapolate=False):
    """Compare every analytic input and parameter gradient of `layer` with numerical ones.

    forward(*inputs) -> out (array); backward(dout) -> gradient(s) of the inputs, one per
    entry of `inputs` in order (None where an input takes no gradient, e.g. a mask or
    integer ids). A random upstream gradient dout is drawn with `rng`. Only float inputs
    are checked. Returns {name: rel_error}, names `input0`, `input1`, ... and the param
    names. Use float64 layers and inputs; `extrapolate` (with h = 1e-3) as in
    `eval_numerical_gradient_array`.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    inputs = list(inputs)
    out = np.asarray(forward(*inputs))
    dout = rng.standard_normal(out.shape)
    dout = np.where(np.isnan(out), 0.0, dout).astype(out.dtype)
    layer.zero_grad()
    forward(*inputs)
    dinputs = backward(dout)
    if not isinstance(dinputs, tuple):
        dinputs = (dinputs,)
    analytic = {name: g.copy() for name, g in layer.grads.items()}
    errors = {}
    for i, (x, dx) in enumerate(zip(inputs, dinputs)):
        if dx is None or not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
            continue
        num = eval_numerical_gradient_array(lambda _: forward(*inputs), x, dout, h, extrapolate)
        # the analytic gradient of a NaN input is defined as zero
        errors[f"input{i}"] = rel_error(np.where(np.isnan(x), 0.0, dx), num)
    for name, p in layer.params.items():
        num = eval_numerical_gradient_array(lambda _: forward(*inputs), p, dout, h, extrapolate)
        errors[name] = rel_error(analytic[name], num)
    return errors
