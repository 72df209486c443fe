"""LSTM: gradient checks of every input (x, h0, c0) and parameter, the step functions, and gate order by hand."""
import math

import numpy as np
import pytest

from lm.layers.gradcheck import rel_error
from lm.layers.lstm import LSTM
from test_recurrent_common import GRAD_CASES, cell_gradient_errors, numerical_gradient


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_sequence_gradients(case):
    errors = cell_gradient_errors(LSTM, case)
    assert max(errors.values()) < 1e-7, errors


def test_step_gradients():
    rng = np.random.default_rng(0)
    N, D, H = 3, 4, 5
    layer = LSTM(D, H, dtype=np.float64, rng=rng)
    x, prev_h, prev_c = (rng.standard_normal(s) for s in ((N, D), (N, H), (N, H)))
    dnext_h, dnext_c = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    _, _, cache = layer.step_forward(x, prev_h, prev_c)
    grads = layer.step_backward(dnext_h, dnext_c, cache)
    assert all(np.all(g == 0) for g in layer.grads.values())  # step functions leave grads alone

    def f(_):  # both outputs at once: sum(next_h * dnext_h + next_c * dnext_c)
        next_h, next_c, _ = layer.step_forward(x, prev_h, prev_c)
        return np.stack([next_h, next_c])

    df = np.stack([dnext_h, dnext_c])
    wrt = [x, prev_h, prev_c, layer.params["Wx"], layer.params["Wh"], layer.params["b"]]
    for analytic, v in zip(grads, wrt):
        assert rel_error(analytic, numerical_gradient(f, v, df)) < 1e-7


def test_gate_order_by_hand():
    """D = H = 1, Wx = Wh = 0, b = (ln 3, -ln 3, 0, atanh 0.5) for blocks i, f, o, g, c0 = 2:

    i = sigmoid(ln 3) = 3/4, f = sigmoid(-ln 3) = 1/4, o = sigmoid(0) = 1/2, g = 1/2
    c_1 = f c0 + i g = 1/2 + 3/8 = 7/8;  h_1 = o tanh(c_1) = tanh(7/8) / 2
    step 2 (h_1 has no effect as Wh = 0): c_2 = 7/32 + 3/8 = 19/32;  h_2 = tanh(19/32) / 2
    Any other order of the blocks gives other numbers (i <-> f: c_1 = 13/8).
    """
    layer = LSTM(1, 1, dtype=np.float64)
    layer.params["Wx"].fill(0)
    layer.params["Wh"].fill(0)
    layer.params["b"][:] = [math.log(3), -math.log(3), 0.0, math.atanh(0.5)]
    h = layer.forward(np.ones((1, 2, 1)), h0=np.zeros(1), c0=np.array([2.0]))
    assert np.allclose(h[0, :, 0], [math.tanh(7 / 8) / 2, math.tanh(19 / 32) / 2], rtol=0, atol=1e-15)
    h_last, c_last = layer.final_state
    assert np.allclose(c_last, [[19 / 32]], rtol=0, atol=1e-15)
    assert np.allclose(h_last, [[math.tanh(19 / 32) / 2]], rtol=0, atol=1e-15)


def test_dc0_is_left_on_the_layer():
    rng = np.random.default_rng(1)
    layer = LSTM(2, 3, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 4, 2))
    layer.forward(x, c0=np.zeros(3))
    layer.backward(np.ones((2, 4, 3)))
    assert layer.dc0.shape == (3,) and np.abs(layer.dc0).max() > 0
    layer.forward(x)
    layer.backward(np.ones((2, 4, 3)))
    assert layer.dc0.shape == (2, 3)


@pytest.mark.parametrize("D,H", [(7, 16), (9, 16)])  # D + 1 <= H / 2 (x inside the step product) and not
def test_input_paths_in_float32_match_float64(D, H):
    """Both ways forward brings in x (inside each step's product for narrow inputs, one
    projection of all steps up front for wide ones) give the float64 numbers in float32,
    forward and backward."""
    rng = np.random.default_rng(7)
    N, T = 3, 5
    x, dh = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    results = []
    for dtype in (np.float64, np.float32):
        layer = LSTM(D, H, dtype=dtype, rng=np.random.default_rng(0))
        out = layer.forward(x, h0, c0)
        dx, dh0 = layer.backward(dh)
        results.append([out, *layer.final_state, dx, dh0, layer.dc0, *layer.grads.values()])
    for exact, fast in zip(*results):
        assert fast.dtype == np.float32
        np.testing.assert_allclose(fast, exact, rtol=0, atol=2e-5 * max(1.0, np.abs(exact).max()))
    # and float64 agrees with the step-by-step cell
    layer = LSTM(D, H, dtype=np.float64, rng=np.random.default_rng(0))
    h, c = h0, c0
    for t in range(T):
        h, c, _ = layer.step_forward(x[:, t], h, c)
        np.testing.assert_allclose(results[0][0][:, t], h, rtol=0, atol=1e-13)
