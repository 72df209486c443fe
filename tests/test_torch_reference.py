"""Our recurrent layers against PyTorch's nn.RNN / nn.LSTM / nn.GRU (fixtures, no torch needed).

The fixtures are written by scripts/make_torch_fixtures.py; see its docstring for the keys.
"""
import importlib
import os

import numpy as np
import pytest

from lm.layers.gradcheck import rel_error

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CELLS = {"rnn": ("lm.layers.rnn", "VanillaRNN"), "lstm": ("lm.layers.lstm", "LSTM"),
         "gru": ("lm.layers.gru", "GRU")}
UNI = ["full_h0", "packed_h0", "packed_shared_h0", "packed_no_h0"]
BI = ["bi_full", "bi_packed", "bi_packed_h0"]
TOL = 1e-6


def load(cell, case):
    path = os.path.join(FIXTURES, f"torch_{cell}_{case}.npz")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def make_layer(cell, fx, prefix=""):
    """Our layer for `cell` with the fixture's weights (float64)."""
    module, name = CELLS[cell]
    cls = getattr(importlib.import_module(module), name)
    D = fx["x"].shape[2]
    H = fx[f"param.{prefix}Wh"].shape[0]
    layer = cls(D, H, dtype=np.float64, rng=np.random.default_rng(0))
    for key in layer.params:
        layer.params[key][...] = fx[f"param.{prefix}{key}"]   # in place, as the contract says
    return layer


def assert_close(name, ours, ref):
    assert ours is not None, f"{name}: missing"
    assert np.shape(ours) == ref.shape, f"{name}: shape {np.shape(ours)} != {ref.shape}"
    err = rel_error(ours, ref)
    assert err < TOL, f"{name}: rel error {err:.2e}"


# ---- the fixtures themselves, against a plain numpy forward pass in our layout -----

def reference_forward(cell, x, mask, h0, c0, Wx, Wh, b=None, bx=None, bh=None):
    """Deliberately naive forward in our layout; (out (N, T, H), h_last, c_last)."""
    N, T, _ = x.shape
    H = Wh.shape[0]
    h = np.zeros((N, H)) if h0 is None else np.broadcast_to(h0, (N, H)).copy()
    c = np.zeros((N, H)) if c0 is None else np.broadcast_to(c0, (N, H)).copy()
    sig = lambda a: 1 / (1 + np.exp(-a))
    out = np.zeros((N, T, H))
    for t in range(T):
        if cell == "rnn":
            hn, cn = np.tanh(x[:, t] @ Wx + h @ Wh + b), c
        elif cell == "lstm":
            a = x[:, t] @ Wx + h @ Wh + b
            i, f, o, g = sig(a[:, :H]), sig(a[:, H:2 * H]), sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
            cn = f * c + i * g
            hn = o * np.tanh(cn)
        else:
            ax, ah = x[:, t] @ Wx + bx, h @ Wh + bh
            r, z = sig(ax[:, :H] + ah[:, :H]), sig(ax[:, H:2 * H] + ah[:, H:2 * H])
            n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
            hn, cn = (1 - z) * n + z * h, c
        m = mask[:, t:t + 1]
        h, c = np.where(m, hn, h), np.where(m, cn, c)
        out[:, t] = np.where(m, hn, 0)
    return out, h, c


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("case", UNI)
def test_fixture_layout_matches_naive_numpy(cell, case):
    """Guards the weight mapping in the fixture script (gate order, bias sums)."""
    fx = load(cell, case)
    params = {k.split(".", 1)[1]: v for k, v in fx.items() if k.startswith("param.")}
    out, h, c = reference_forward(cell, fx["x"], fx["mask"], fx.get("h0"), fx.get("c0"), **params)
    assert_close("out", out, fx["out"])
    assert_close("hN", h, fx["hN"])
    if cell == "lstm":
        assert_close("cN", c, fx["cN"])


def reverse_valid(a, lengths):
    """Reverse each row's first lengths[n] steps in time, leaving the padding in place."""
    r = a.copy()
    for n, L in enumerate(lengths):
        r[n, :L] = a[n, :L][::-1]
    return r


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("case", BI)
def test_bidirectional_fixture_layout_matches_naive_numpy(cell, case):
    fx = load(cell, case)
    x, mask, lengths = fx["x"], fx["mask"], fx["lengths"]
    H = fx["param.fwd.Wh"].shape[0]
    outs, finals, cells_ = [], [], []
    for half, prefix, xd in ((0, "fwd.", x), (1, "bwd.", reverse_valid(x, lengths))):
        params = {k.split(".", 2)[2]: v for k, v in fx.items() if k.startswith("param." + prefix)}
        h0, c0 = (fx[k][:, half * H:(half + 1) * H] if k in fx else None for k in ("h0", "c0"))
        out, h, c = reference_forward(cell, xd, mask, h0, c0, **params)
        outs.append(out if prefix == "fwd." else reverse_valid(out, lengths))
        finals.append(h)
        cells_.append(c)
    assert_close("out", np.concatenate(outs, axis=2), fx["out"])
    assert_close("hN", np.stack(finals), fx["hN"])
    if cell == "lstm":
        assert_close("cN", np.stack(cells_), fx["cN"])
    assert fx["out"].shape[2] == 2 * H


# ---- our layers -----------------------------------------------------------------

def assert_matches(fx, layer, out, dx, dh0, hN, cN):
    """Outputs, final states (cN None without a cell state), and every gradient of
    `layer` against the fixture `fx`."""
    assert_close("out", out, fx["out"])
    assert_close("final h", layer.final_state[0], hN)
    if cN is not None:
        assert_close("final c", layer.final_state[1], cN)
    assert_close("dx", dx, fx["dx"])
    for key in layer.params:
        assert_close(f"grad {key}", layer.grads[key], fx[f"grad.{key}"])
    if "h0" in fx:
        assert_close("dh0", dh0, fx["dh0"])
    if "c0" in fx:
        assert_close("dc0", layer.dc0, fx["dc0"])


def run_ours(layer, cell, fx, x, mask):
    if cell == "lstm":
        out = layer.forward(x, h0=fx.get("h0"), c0=fx.get("c0"), mask=mask)
    else:
        out = layer.forward(x, h0=fx.get("h0"), mask=mask)
    layer.zero_grad()
    dx, dh0 = layer.backward(fx["dout"])
    return out, dx, dh0


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("case", UNI)
@pytest.mark.parametrize("padding", ["mask", "nan"])
def test_unidirectional_matches_torch(cell, case, padding):
    fx = load(cell, case)
    layer = make_layer(cell, fx)
    x, mask = fx["x"].copy(), fx["mask"]
    if padding == "nan":                   # the same padding given as all-NaN steps
        x[~mask] = np.nan
        mask = None
    out, dx, dh0 = run_ours(layer, cell, fx, x, mask)
    assert_matches(fx, layer, out, dx, dh0, fx["hN"], fx.get("cN"))


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("case", BI)
def test_bidirectional_matches_torch(cell, case):
    from lm.layers.bidirectional import Bidirectional
    fx = load(cell, case)
    bi = Bidirectional(make_layer(cell, fx, "fwd."), make_layer(cell, fx, "bwd."))
    assert set(bi.params) == {k.split(".", 1)[1] for k in fx if k.startswith("param.")}
    states = {k: fx[k] for k in ("h0", "c0") if k in fx}
    out = bi.forward(fx["x"], mask=fx["mask"], **states)
    bi.zero_grad()
    dx, dh0 = bi.backward(fx["dout"])
    # final states: PyTorch's (2, N, H) is ours (N, 2H), the two directions side by side
    side_by_side = lambda k: np.concatenate(list(fx[k]), axis=1) if k in fx else None
    assert_matches(fx, bi, out, dx, dh0, side_by_side("hN"), side_by_side("cN"))
