"""Conv1D and MaxPool1D against PyTorch's nn.Conv1d / nn.MaxPool1d (fixtures, no torch needed).

The fixtures are written by scripts/make_torch_fixtures.py; see its docstring for the keys.
"""
import os

import numpy as np
import pytest

from lm.layers import Conv1D, MaxPool1D
from lm.layers.gradcheck import rel_error
from test_conv import reference_conv1d

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")

CONV_CASES = ["conv1d_same_k3", "conv1d_same_k4", "conv1d_valid_k4", "conv1d_valid_k2_full"]
POOL_CASES = ["maxpool1d_p2", "maxpool1d_p3_s2"]


def load(case):
    with np.load(os.path.join(FIXTURES, f"torch_{case}.npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def assert_close(name, ours, ref, tol):
    assert np.shape(ours) == ref.shape, f"{name}: shape {np.shape(ours)} != {ref.shape}"
    if tol < 1e-5:
        err = rel_error(ours, ref)
        assert err < tol, f"{name}: rel error {err:.2e}"
    else:                                   # float32: relative error is meaningless near 0
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_fixture_layout_matches_reference(case):
    """Guards the weight mapping in the fixture script ((F, D, K) -> (K, D, F))."""
    fx = load(case)
    out = reference_conv1d(fx["x"], fx["param.W"], fx["param.b"], str(fx["padding"]), fx["mask"])
    assert_close("out", out, fx["out"], 1e-6)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-6), (np.float32, 1e-5)])
@pytest.mark.parametrize("padding_as", ["mask", "nan"])
def test_conv_matches_torch(case, dtype, tol, padding_as):
    fx = load(case)
    K, D, F = fx["param.W"].shape
    conv = Conv1D(D, F, K, padding=str(fx["padding"]), dtype=dtype)
    for key in conv.params:
        conv.params[key][...] = fx[f"param.{key}"]
    x, mask = fx["x"].copy(), fx["mask"]
    if padding_as == "nan":
        x[~mask] = np.nan
        mask = None
    out = conv.forward(x.astype(dtype), mask)
    out_mask = fx["out_mask"] if conv.out_mask is None else conv.out_mask
    np.testing.assert_array_equal(out_mask, fx["out_mask"])
    conv.zero_grad()
    dx = conv.backward(fx["dout"].astype(dtype))
    assert_close("out", out, fx["out"], tol)
    assert_close("dx", dx, fx["dx"], tol)
    for key in conv.params:
        assert_close(f"grad {key}", conv.grads[key], fx[f"grad.{key}"], tol)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_maxpool_matches_torch(case, dtype, tol):
    fx = load(case)
    pool = MaxPool1D(int(fx["pool_size"]), int(fx["stride"]))
    out = pool.forward(fx["x"].astype(dtype), fx["mask"])
    out_mask = fx["out_mask"] if pool.out_mask is None else pool.out_mask
    np.testing.assert_array_equal(out_mask, fx["out_mask"])
    assert_close("out", out, fx["out"], tol)
    assert_close("dx", pool.backward(fx["dout"].astype(dtype)), fx["dx"], tol)
