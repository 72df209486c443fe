"""Bidirectional: wiring against hand-reversed sequences, masks and NaN padding, states, gradient checks."""
import numpy as np
import pytest

from lm.layers.bidirectional import Bidirectional, reverse_valid
from lm.layers.gru import GRU
from lm.layers.lstm import LSTM
from lm.layers.rnn import VanillaRNN
from test_recurrent_common import gradient_errors, lengths_mask, pad, run_forward

CELLS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU}


def make(cell, D=3, Hf=2, Hb=3, seed=0):
    rng = np.random.default_rng(seed)
    return Bidirectional(CELLS[cell](D, Hf, dtype=np.float64, rng=rng),
                         CELLS[cell](D, Hb, dtype=np.float64, rng=rng))


def test_params_prefixed_and_sizes():
    layer = make("lstm")
    assert list(layer.params) == ["fwd.Wx", "fwd.Wh", "fwd.b", "bwd.Wx", "bwd.Wh", "bwd.b"]
    assert layer.params["bwd.Wh"] is layer.bwd.params["Wh"]
    assert layer.grads["fwd.Wx"] is layer.fwd.grads["Wx"]
    assert layer.hidden_dim == layer.output_size == 5 and layer.input_dim == 3


def test_reverse_valid_reverses_each_prefix():
    x = np.arange(8).reshape(2, 4)
    assert reverse_valid(x, np.array([4, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    assert reverse_valid(x, None).tolist() == [[3, 2, 1, 0], [7, 6, 5, 4]]


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_equals_inner_layers_on_hand_reversed_rows(cell):
    rng = np.random.default_rng(1)
    N, T, D = 3, 5, 3
    lengths = [5, 2, 0]
    layer = make(cell, D)
    x = rng.standard_normal((N, T, D))
    mask = lengths_mask(lengths, T)
    out = layer.forward(x, mask=mask)
    assert out.shape == (N, T, 5)
    finals = layer.final_state
    for n, L in enumerate(lengths):
        assert np.all(out[n, L:] == 0)
        if L == 0:
            continue
        row = x[n:n + 1, :L]
        hf = layer.fwd.forward(row)
        ff = layer.fwd.final_state
        hb = layer.bwd.forward(row[:, ::-1].copy())[:, ::-1]  # read from the row's last valid step
        fb = layer.bwd.final_state
        assert np.allclose(out[n, :L], np.concatenate([hf, hb], axis=2)[0], rtol=0, atol=1e-13)
        for a, sf, sb in zip(finals, ff, fb):
            assert a.shape == (N, 5)
            assert np.allclose(a[n], np.concatenate([sf[0], sb[0]]), rtol=0, atol=1e-13)


def test_nan_padding_equals_mask_and_gets_zero_gradient():
    rng = np.random.default_rng(2)
    N, T, D = 3, 4, 3
    mask = lengths_mask([4, 3, 1], T)
    layer = make("gru", D)
    x = rng.standard_normal((N, T, D))
    dh = rng.standard_normal((N, T, 5))
    layer.zero_grad()
    out = layer.forward(x, mask=mask)
    dx = layer.backward(dh)[0]
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    out_nan = layer.forward(np.where(mask[:, :, None], x, np.nan))
    dx_nan, dh0 = layer.backward(dh)
    assert dh0 is None
    assert np.array_equal(out, out_nan) and np.array_equal(dx, dx_nan) and np.all(dx_nan[~mask] == 0)
    assert all(np.array_equal(g, grads[k]) for k, g in layer.grads.items())


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("shape,lengths,nan", [
    ((1, 1, 2), None, False),
    ((3, 4, 3), [4, 2, 1], False),
    ((2, 3, 2), [3, 1], True),
])
def test_gradients(cell, shape, lengths, nan):
    N, T, D = shape
    rng = np.random.default_rng(3)
    layer = make(cell, D, Hf=3, Hb=2, seed=4)
    x = rng.standard_normal(shape)
    mask = pad(x, lengths, nan)
    errors = gradient_errors(layer, lambda x: layer.forward(x, mask=mask),
                             lambda d: layer.backward(d)[:1], [x])
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_initial_states_split_between_directions(cell):
    rng = np.random.default_rng(5)
    N, T, D = 2, 3, 3
    layer = make(cell, D)
    x = rng.standard_normal((N, T, D))
    h0, c0 = rng.standard_normal((N, 5)), rng.standard_normal(5)  # c0 shared by the batch
    out = run_forward(layer, x, h0, c0) if cell == "lstm" else layer.forward(x, h0)
    hf = run_forward(layer.fwd, x, h0[:, :2], c0[:2])
    hb = run_forward(layer.bwd, x[:, ::-1], h0[:, 2:], c0[2:])[:, ::-1]
    assert np.allclose(out, np.concatenate([hf, hb], axis=2), rtol=0, atol=1e-13)
    # gradients of the initial states, numerically
    inputs = [x, h0, c0] if cell == "lstm" else [x, h0]
    backward = (lambda d: (*layer.backward(d), layer.dc0)) if cell == "lstm" else layer.backward
    errors = gradient_errors(layer, lambda *a: run_forward(layer, *a), backward, inputs)
    assert max(errors.values()) < 1e-7, errors
    # final_state feeds back in: forward(x, *final_state) is accepted
    layer.forward(x, *layer.final_state)


def test_bad_construction_and_inputs():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="input sizes"):
        Bidirectional(GRU(2, 3, rng=rng), GRU(4, 3, rng=rng))
    with pytest.raises(ValueError, match="same states"):
        Bidirectional(GRU(2, 3, rng=rng), LSTM(2, 3, rng=rng))
    layer = make("gru", 3)
    with pytest.raises(ValueError, match="c0 is only for LSTM"):
        layer.forward(np.zeros((1, 2, 3)), None, np.zeros(5))
    with pytest.raises(ValueError, match="h0 must end in 5"):
        layer.forward(np.zeros((1, 2, 3)), np.zeros((1, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        make("rnn").backward(np.zeros((1, 2, 5)))
    layer.forward(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="dh must have shape"):
        layer.backward(np.zeros((1, 2, 4)))
