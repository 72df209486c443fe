"""Properties every recurrent layer shares (masks, NaN padding, states, dtypes), and the gradient-check helpers."""
import numpy as np
import pytest

from lm.layers.gradcheck import check_layer_gradients, eval_numerical_gradient_array, rel_error
from lm.layers.gru import GRU
from lm.layers.lstm import LSTM
from lm.layers.rnn import VanillaRNN

CELLS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU}


def has_c(layer):
    return "c" in getattr(layer, "state_names", ())


def run_forward(layer, x, h0=None, c0=None, mask=None):
    """The layer's forward with h0 (and c0 where it has a cell state)."""
    if has_c(layer):
        return layer.forward(x, h0, c0, mask=mask)
    return layer.forward(x, h0, mask=mask)


def run_backward(layer, dh):
    """(dx, dh0) or, with a cell state, (dx, dh0, dc0)."""
    dx, dh0 = layer.backward(dh)
    return (dx, dh0, layer.dc0) if has_c(layer) else (dx, dh0)


def numerical_gradient(f, x, df):
    """Gradient of sum(f(x) * df), Richardson-extrapolated: entries held to 1e-7 relative."""
    return eval_numerical_gradient_array(f, x, df, h=1e-3, extrapolate=True)


def gradient_errors(layer, forward, backward, inputs, seed=0):
    """{name: rel_error} of every float input (`input0`, ...) and every param of `layer`.

    forward(*inputs) -> out; backward(dout) -> one gradient per input (None to skip).
    The analytic gradient of a NaN input must be zero (and finite).
    """
    rng = np.random.default_rng(seed)
    out = forward(*inputs)
    dout = rng.standard_normal(out.shape)
    layer.zero_grad()
    forward(*inputs)
    dinputs = backward(dout)
    analytic = {name: g.copy() for name, g in layer.grads.items()}
    f = lambda _: forward(*inputs)
    errors = {}
    for i, (x, dx) in enumerate(zip(inputs, dinputs)):
        if x is None or dx is None:
            continue
        assert dx.shape == x.shape and np.isfinite(dx).all()
        assert np.all(dx[np.isnan(x)] == 0)
        errors[f"input{i}"] = rel_error(dx, numerical_gradient(f, x, dout))
    for name, p in layer.params.items():
        errors[name] = rel_error(analytic[name], numerical_gradient(f, p, dout))
    return errors


def lengths_mask(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def pad(x, lengths, nan):
    """Padding after each row's length, in place on x (N, T, D): all-NaN steps (returns
    mask None) or a mask (returned) with junk 100.0 in the padded steps."""
    if lengths is None:
        return None
    valid = lengths_mask(lengths, x.shape[1])
    x[~valid] = np.nan if nan else 100.0  # junk in masked padding must not matter
    return None if nan else valid


# Gradient-check cases: (N, T, D, H, initial state kind, lengths or None, NaN padding)
GRAD_CASES = {
    "full_h0": (2, 3, 4, 3, "batch", None, False),
    "N1_T1_H_ne_D": (1, 1, 3, 5, None, None, False),
    "mask_lengths": (3, 4, 2, 3, "batch", [4, 2, 1], False),
    "mask_with_empty_row": (2, 3, 3, 2, "batch", [3, 0], False),
    "shared_state": (3, 2, 3, 4, "shared", None, False),
    "nan_padding": (3, 4, 3, 2, "batch", [4, 3, 1], True),
    # D + 1 <= H / 2: the LSTM's narrow-input path (x inside each step's product)
    "narrow_input": (2, 3, 1, 4, "batch", None, False),
    "narrow_input_mask": (3, 4, 2, 6, "shared", [4, 2, 1], False),
}


def cell_gradient_errors(cls, case, seed=0):
    """Build a float64 layer of class `cls` and the inputs of GRAD_CASES[case]; check them all."""
    N, T, D, H, state, lengths, nan_pad = GRAD_CASES[case]
    rng = np.random.default_rng(seed)
    layer = cls(D, H, dtype=np.float64, rng=rng)
    x = rng.standard_normal((N, T, D))
    shape = {"batch": (N, H), "shared": (H,), None: None}[state]
    h0 = None if shape is None else rng.standard_normal(shape)
    c0 = None if shape is None else rng.standard_normal(shape)
    mask = pad(x, lengths, nan_pad)
    inputs = [x, h0, c0] if has_c(layer) else [x, h0]
    forward = lambda *a: run_forward(layer, *a, mask=mask)
    return gradient_errors(layer, forward, lambda d: run_backward(layer, d), inputs, seed)


def h_step_gradient_errors(cls, seed=0):
    """Relative errors of a one-state cell's step_backward: (dx, dprev_h, d<param>...)."""
    rng = np.random.default_rng(seed)
    N, D, H = 3, 4, 5
    layer = cls(D, H, dtype=np.float64, rng=rng)
    x, prev_h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    dnext_h = rng.standard_normal((N, H))
    _, cache = layer.step_forward(x, prev_h)
    grads = layer.step_backward(dnext_h, cache)
    assert all(np.all(g == 0) for g in layer.grads.values())  # step functions leave grads alone
    f = lambda _: layer.step_forward(x, prev_h)[0]
    wrt = [x, prev_h, *layer.params.values()]  # step_backward returns them in params order
    assert len(grads) == len(wrt)
    return [rel_error(analytic, numerical_gradient(f, v, dnext_h)) for analytic, v in zip(grads, wrt)]


@pytest.fixture(params=sorted(CELLS))
def cell(request):
    return CELLS[request.param]


def test_params_names_shapes_dtype_and_init(cell):
    D, H = 3, 5
    G = {VanillaRNN: 1, LSTM: 4, GRU: 3}[cell]
    layer = cell(D, H, dtype=np.float64, rng=np.random.default_rng(0))
    expected = {"Wx": (D, G * H), "Wh": (H, G * H)}
    expected.update({"bx": (G * H,), "bh": (G * H,)} if cell is GRU else {"b": (G * H,)})
    assert {k: p.shape for k, p in layer.params.items()} == expected
    assert set(layer.grads) == set(expected)
    k = 1 / np.sqrt(H)
    values = np.concatenate([p.ravel() for p in layer.params.values()])
    assert values.dtype == np.float64 and np.all(np.abs(values) <= k)
    assert values.max() > 0.8 * k and values.min() < -0.8 * k  # uniform(-k, k), not a narrower law
    assert cell(D, H).params["Wx"].dtype == np.float32
    assert layer.hidden_dim == layer.output_size == H
    same = cell(D, H, rng=np.random.default_rng(0)).params["Wh"]
    assert np.array_equal(same, cell(D, H, rng=np.random.default_rng(0)).params["Wh"])


def test_forward_equals_step_loop(cell):
    rng = np.random.default_rng(1)
    N, T, D, H = 2, 4, 3, 5
    layer = cell(D, H, dtype=np.float64, rng=rng)
    x, h0, c0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    out = run_forward(layer, x, h0, c0)
    h, c = h0, c0
    for t in range(T):
        if has_c(layer):
            h, c, _ = layer.step_forward(x[:, t], h, c)
        else:
            h, _ = layer.step_forward(x[:, t], h)
        assert np.allclose(out[:, t], h, rtol=0, atol=1e-13)
    assert np.allclose(layer.final_state[0], h, rtol=0, atol=1e-13)
    if has_c(layer):
        assert np.allclose(layer.final_state[1], c, rtol=0, atol=1e-13)


def test_state_carried_over_two_halves_equals_one_pass(cell):
    rng = np.random.default_rng(2)
    N, T, D, H = 3, 6, 2, 4
    layer = cell(D, H, dtype=np.float64, rng=rng)
    x = rng.standard_normal((N, T, D))
    whole = layer.forward(x)
    final = layer.final_state
    first = layer.forward(x[:, :2])
    second = layer.forward(x[:, 2:], *layer.final_state)
    assert np.allclose(np.concatenate([first, second], axis=1), whole, rtol=0, atol=1e-13)
    for a, b in zip(layer.final_state, final):
        assert np.allclose(a, b, rtol=0, atol=1e-13)


def test_masked_forward_and_backward_equal_each_row_alone(cell):
    rng = np.random.default_rng(3)
    N, T, D, H = 3, 5, 2, 3
    lengths = [5, 2, 3]
    layer = cell(D, H, dtype=np.float64, rng=rng)
    x, h0, c0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    dh = rng.standard_normal((N, T, H))
    mask = lengths_mask(lengths, T)
    layer.zero_grad()
    out = run_forward(layer, x, h0, c0, mask=mask)
    final = layer.final_state
    dx, dh0 = run_backward(layer, dh)[:2]
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    for n, L in enumerate(lengths):
        row = run_forward(layer, x[n:n + 1, :L], h0[n:n + 1], c0[n:n + 1])
        assert np.allclose(out[n, :L], row[0], rtol=0, atol=1e-13)
        assert np.all(out[n, L:] == 0)
        for a, b in zip(final, layer.final_state):
            assert np.allclose(a[n], b[0], rtol=0, atol=1e-13)
        dx_row, dh0_row = run_backward(layer, dh[n:n + 1, :L])[:2]
        assert np.allclose(dx[n, :L], dx_row[0], rtol=0, atol=1e-13)
        assert np.all(dx[n, L:] == 0)
        assert np.allclose(dh0[n], dh0_row[0], rtol=0, atol=1e-13)
    for k, g in layer.grads.items():  # rows alone, summed
        assert np.allclose(grads[k], g, rtol=0, atol=1e-12)


def test_nan_padding_acts_as_mask(cell):
    rng = np.random.default_rng(4)
    N, T, D, H = 3, 4, 3, 2
    mask = lengths_mask([4, 1, 0], T)
    layer = cell(D, H, dtype=np.float64, rng=rng)
    x = rng.standard_normal((N, T, D))
    dh = rng.standard_normal((N, T, H))
    x_nan = np.where(mask[:, :, None], x, np.nan)
    layer.zero_grad()
    out_mask = layer.forward(x, mask=mask)
    final_mask = layer.final_state
    dx_mask = layer.backward(dh)[0]
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    out_nan = layer.forward(x_nan)
    dx_nan = layer.backward(dh)[0]
    assert np.array_equal(out_nan, out_mask)
    for a, b in zip(layer.final_state, final_mask):
        assert np.array_equal(a, b)
    assert np.array_equal(dx_nan, dx_mask) and np.all(dx_nan[~mask] == 0)
    for k, g in layer.grads.items():
        assert np.array_equal(g, grads[k]) and np.isfinite(g).all()


def test_shared_initial_state_equals_broadcast(cell):
    rng = np.random.default_rng(5)
    N, T, D, H = 3, 3, 2, 4
    layer = cell(D, H, dtype=np.float64, rng=rng)
    x, h0, c0 = rng.standard_normal((N, T, D)), rng.standard_normal(H), rng.standard_normal(H)
    dh = rng.standard_normal((N, T, H))
    out = run_forward(layer, x, h0, c0)
    grads_shared = run_backward(layer, dh)[1:]
    tiled = run_forward(layer, x, np.tile(h0, (N, 1)), np.tile(c0, (N, 1)))
    grads_tiled = run_backward(layer, dh)[1:]
    assert np.array_equal(out, tiled)
    for gs, gt in zip(grads_shared, grads_tiled):
        assert gs.shape == (H,) and np.allclose(gs, gt.sum(axis=0), rtol=0, atol=1e-13)


def test_float32_forward_agrees_with_float64(cell):
    rng = np.random.default_rng(6)
    N, T, D, H = 4, 8, 5, 6
    l64 = cell(D, H, dtype=np.float64, rng=rng)
    l32 = cell(D, H, rng=rng)
    for k in l64.params:
        l32.params[k][...] = l64.params[k]
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    mask = lengths_mask([8, 3, 1, 5], T)
    out32 = l32.forward(x, h0, mask=mask)  # float64 inputs are cast to the params' dtype
    assert out32.dtype == np.float32
    assert np.allclose(out32, l64.forward(x, h0, mask=mask), rtol=0, atol=1e-5)
    dx32 = l32.backward(np.ones((N, T, H)))[0]
    dx64 = l64.backward(np.ones((N, T, H)))[0]
    assert dx32.dtype == np.float32 and np.allclose(dx32, dx64, rtol=0, atol=1e-5)
    for k in l64.grads:
        assert l32.grads[k].dtype == np.float32
        assert np.allclose(l32.grads[k], l64.grads[k], rtol=1e-4, atol=1e-4)


def test_backward_adds_into_grads(cell):
    rng = np.random.default_rng(7)
    layer = cell(2, 3, dtype=np.float64, rng=rng)
    x, dh = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 3))
    layer.forward(x)
    layer.backward(dh)
    once = {k: g.copy() for k, g in layer.grads.items()}
    layer.backward(dh)
    for k, g in layer.grads.items():
        assert np.abs(once[k]).max() > 0 and np.allclose(g, 2 * once[k], rtol=1e-14, atol=0)


def test_outputs_do_not_share_memory_with_work_buffers(cell):
    rng = np.random.default_rng(8)
    layer = cell(2, 3, dtype=np.float64, rng=rng)
    for N, T in ((1, 1), (1, 4), (3, 1)):
        x = rng.standard_normal((N, T, 2))
        out = layer.forward(x)
        kept, final = out.copy(), [s.copy() for s in layer.final_state]
        state = layer.final_state
        dx = layer.backward(np.ones_like(out))[0]
        dx_kept = dx.copy()
        layer.forward(rng.standard_normal((N, T, 2)))
        layer.backward(np.ones_like(out))
        assert np.array_equal(out, kept) and np.array_equal(dx, dx_kept)
        assert all(np.array_equal(a, b) for a, b in zip(state, final))


def test_bad_inputs_raise_clear_errors(cell):
    layer = cell(2, 3, dtype=np.float64)
    x = np.zeros((2, 3, 2))
    with pytest.raises(RuntimeError, match="before forward"):
        cell(2, 3).backward(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="prefix"):
        layer.forward(x, mask=np.array([[1, 0, 1], [1, 1, 1]], bool))
    with pytest.raises(ValueError, match="prefix"):
        layer.forward(np.where(np.array([1, 0, 1], bool)[None, :, None], x, np.nan))
    with pytest.raises(ValueError, match="mask must have shape"):
        layer.forward(x, mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match=r"x must have shape \(N, T, 2\)"):
        layer.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        layer.forward(x, np.zeros((3, 3)))
    layer.forward(x)
    with pytest.raises(ValueError, match="dh must have shape"):
        layer.backward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="hidden_dim"):
        cell(2, 0)


def test_project_gradient_checker_agrees(cell):
    """The shared lm.layers.gradcheck helper (plain centred differences) also accepts the layers."""
    rng = np.random.default_rng(9)
    layer = cell(3, 2, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 3, 3))
    x[1, 2:] = np.nan
    errors = check_layer_gradients(layer, lambda x: layer.forward(x),
                                   lambda d: layer.backward(d)[:1], [x], rng=rng, h=1e-5)
    assert max(errors.values()) < 1e-6, errors
