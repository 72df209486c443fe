"""Gradients on a recurrent layer's final state (dfinal): the fast backward against the
step functions unrolled by hand, a numerical check in float64 (masks, an empty row,
bidirectional), and no change when dfinal is absent."""
import numpy as np
import pytest

from lm.layers.bidirectional import Bidirectional
from lm.layers.gru import GRU
from lm.layers.lstm import LSTM
from lm.layers.rnn import VanillaRNN
from test_recurrent_common import lengths_mask, numerical_gradient

from lm.layers.gradcheck import rel_error

CELLS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU}


def setup(cell, N=3, T=4, D=2, H=3, lengths=(4, 2, 1), seed=0):
    rng = np.random.default_rng(seed)
    layer = CELLS[cell](D, H, dtype=np.float64, rng=rng)
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    mask = None if lengths is None else lengths_mask(lengths, T)
    dh = rng.standard_normal((N, T, H))
    dfin = tuple(rng.standard_normal((N, H)) for _ in layer.state_names)
    return layer, x, h0, mask, dh, dfin


def forward(layer, x, h0, mask):
    if len(layer.state_names) == 2:
        return layer.forward(x, h0, np.zeros_like(h0), mask=mask)
    return layer.forward(x, h0, mask=mask)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("lengths", [None, (4, 2, 1), (3, 0, 4)])
def test_final_state_gradient_matches_unrolled_step_functions(cell, lengths):
    layer, x, h0, mask, dh, dfin = setup(cell, lengths=lengths)
    forward(layer, x, h0, mask)
    layer.zero_grad()
    dx, dh0 = layer.backward(dh, dfin)
    N, T = x.shape[:2]
    L = np.full(N, T) if lengths is None else np.asarray(lengths)
    ref_dW = {k: np.zeros_like(v) for k, v in layer.params.items()}
    lstm = cell == "lstm"
    for n in range(N):  # each row alone through step_forward / step_backward
        h, c, caches = h0[n:n + 1], np.zeros((1, 3)), []
        for t in range(L[n]):
            out = layer.step_forward(x[n:n + 1, t], h, c) if lstm else \
                layer.step_forward(x[n:n + 1, t], h)
            h, c = (out[0], out[1]) if lstm else (out[0], c)
            caches.append(out[-1])
        dnh = dfin[0][n:n + 1].copy()
        dnc = dfin[1][n:n + 1].copy() if lstm else None
        dxn = np.zeros((T, x.shape[2]))
        for t in range(L[n] - 1, -1, -1):
            if lstm:
                g = layer.step_backward(dh[n:n + 1, t] + dnh, dnc, caches[t])
                dxn[t], dnh, dnc, grads = g[0][0], g[1], g[2], g[3:]
            else:
                g = layer.step_backward(dh[n:n + 1, t] + dnh, caches[t])
                dxn[t], dnh, grads = g[0][0], g[1], g[2:]
            for k, gk in zip(layer.params, grads):
                ref_dW[k] += gk
        assert np.allclose(dx[n], dxn, atol=1e-12)
        assert np.allclose(dh0[n], dnh[0], atol=1e-12)
        if lstm:
            assert np.allclose(layer.dc0[n], dnc[0], atol=1e-12)
    for k in layer.params:
        assert np.allclose(layer.grads[k], ref_dW[k], atol=1e-12), k


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_final_state_gradient_numerically(cell, bidirectional):
    rng = np.random.default_rng(3)
    N, T, D, H = 3, 4, 2, 2
    if bidirectional:
        layer = Bidirectional(CELLS[cell](D, H, dtype=np.float64, rng=rng),
                              CELLS[cell](D, H, dtype=np.float64, rng=rng))
    else:
        layer = CELLS[cell](D, H, dtype=np.float64, rng=rng)
    Hs = layer.hidden_dim
    x = rng.standard_normal((N, T, D))
    mask = lengths_mask([4, 1, 2], T)
    dh = rng.standard_normal((N, T, Hs))
    dfin = tuple(rng.standard_normal((N, Hs)) for _ in layer.state_names)

    def loss(_):
        out = layer.forward(x, mask=mask)
        return np.sum(out * dh) + sum(np.sum(s * d) for s, d in zip(layer.final_state, dfin))

    loss(None)
    layer.zero_grad()
    dx, _ = layer.backward(dh, dfin)
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    assert rel_error(dx, numerical_gradient(loss, x, 1.0)) < 1e-7
    for k, p in layer.params.items():
        assert rel_error(analytic[k], numerical_gradient(loss, p, 1.0)) < 1e-7, k


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_no_dfinal_and_none_dh(cell):
    layer, x, h0, mask, dh, dfin = setup(cell)
    forward(layer, x, h0, mask)
    layer.zero_grad()
    dx_a, dh0_a = layer.backward(dh)
    ga = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    dx_b, dh0_b = layer.backward(dh, tuple(None for _ in dfin))
    assert np.array_equal(dx_a, dx_b) and np.array_equal(dh0_a, dh0_b)
    assert all(np.array_equal(ga[k], layer.grads[k]) for k in ga)
    layer.zero_grad()
    dx_c, _ = layer.backward(None, dfin)   # only the final state: dh = 0
    layer.zero_grad()
    dx_d, _ = layer.backward(np.zeros_like(dh), dfin)
    assert np.array_equal(dx_c, dx_d)
    with pytest.raises(ValueError, match="final"):
        layer.backward(dh, tuple(np.zeros((2, 2)) for _ in dfin))
