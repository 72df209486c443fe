"""GRU: gradient checks of every input and parameter, the step functions, and PyTorch's equations by hand."""
import math

import numpy as np
import pytest

from lm.layers.gru import GRU
from test_recurrent_common import GRAD_CASES, cell_gradient_errors, h_step_gradient_errors


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_sequence_gradients(case):
    errors = cell_gradient_errors(GRU, case)
    assert max(errors.values()) < 1e-7, errors


def test_step_gradients():
    assert max(h_step_gradient_errors(GRU)) < 1e-7


def test_pytorch_equations_by_hand():
    """D = H = 1, x = 1, h0 = 2, Wx = 0, Wh = (0, 0, 1/2), bx = (ln 3, -ln 3, atanh 1/2),
    bh = (0, 0, 1), blocks r, z, n:

    r = sigmoid(ln 3) = 3/4, z = sigmoid(-ln 3) = 1/4
    n = tanh(xw_n + r * (h0 Wh_n + bh_n)) = tanh(atanh(1/2) + 3/4 * (1 + 1))   [r scales bh_n too]
    h_1 = (1 - z) n + z h0 = 3/4 n + 1/2
    """
    layer = GRU(1, 1, dtype=np.float64)
    layer.params["Wx"].fill(0)
    layer.params["Wh"][:] = [[0.0, 0.0, 0.5]]
    layer.params["bx"][:] = [math.log(3), -math.log(3), math.atanh(0.5)]
    layer.params["bh"][:] = [0.0, 0.0, 1.0]
    h = layer.forward(np.ones((1, 1, 1)), h0=np.array([[2.0]]))
    n = math.tanh(math.atanh(0.5) + 1.5)
    assert abs(h[0, 0, 0] - (0.75 * n + 0.5)) < 1e-15
