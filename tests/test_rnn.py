"""VanillaRNN: gradient checks of every input and parameter, the step functions, and a case worked by hand."""
import math

import numpy as np
import pytest

from lm.layers.rnn import VanillaRNN
from test_recurrent_common import GRAD_CASES, cell_gradient_errors, h_step_gradient_errors


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_sequence_gradients(case):
    errors = cell_gradient_errors(VanillaRNN, case)
    assert max(errors.values()) < 1e-7, errors


def test_step_gradients():
    assert max(h_step_gradient_errors(VanillaRNN)) < 1e-7


def test_two_steps_by_hand():
    """D = H = 2, every weight and bias 0.1, h0 = 0, x_1 = (1, 2), x_2 = (0.5, -1).

    step 1: a = 0.1*1 + 0.1*2 + 0.1 = 0.4 in both units;          h_1 = tanh(0.4)
    step 2: a = 0.1*(0.5 - 1) + 0.1*(2 tanh(0.4)) + 0.1 = 0.05 + 0.2 tanh(0.4)
                                                                    h_2 = tanh(that)
    With dh = 1 on unit 0 of h_2 only:
      da_2 = (1 - h_2^2, 0);  dh_1 = da_2 Wh^T = 0.1 (1 - h_2^2) in both units
      da_1 = dh_1 (1 - h_1^2);  db = da_1 + da_2;  dx_2 = da_2 Wx^T = 0.1 (1 - h_2^2) (1, 1)
      dx_1 = da_1 Wx^T = 2 * 0.1 * da_1 in both features (both units feed both features)
    """
    layer = VanillaRNN(2, 2, dtype=np.float64)
    for p in layer.params.values():
        p.fill(0.1)
    x = np.array([[[1.0, 2.0], [0.5, -1.0]]])
    h = layer.forward(x)
    h1 = math.tanh(0.4)                     # 0.3799489622552249
    h2 = math.tanh(0.05 + 0.2 * h1)         # tanh(0.12598979245104497) = 0.12532736815297565
    assert np.allclose(h[0], [[h1, h1], [h2, h2]], rtol=0, atol=1e-15)
    assert abs(h1 - 0.3799489622552249) < 1e-15 and abs(h2 - 0.12532736815297565) < 1e-15
    dh = np.zeros((1, 2, 2))
    dh[0, 1, 0] = 1.0
    dx, dh0 = layer.backward(dh)
    da2 = 1 - h2 ** 2                       # 0.9842930507918485
    da1 = 0.1 * da2 * (1 - h1 ** 2)         # 0.08421993111276763, both units
    assert np.allclose(layer.grads["b"], [da1 + da2, da1], rtol=0, atol=1e-15)
    assert np.allclose(dx[0], [[0.2 * da1, 0.2 * da1], [0.1 * da2, 0.1 * da2]], rtol=0, atol=1e-15)
    assert np.allclose(dh0[0], [0.2 * da1, 0.2 * da1], rtol=0, atol=1e-15)
    # dWh[j, k] = sum_t h_{t-1}[j] da_t[k]: only step 2 has h_{t-1} != 0
    assert np.allclose(layer.grads["Wh"], [[h1 * da2, 0], [h1 * da2, 0]], rtol=0, atol=1e-15)
