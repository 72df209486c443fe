"""AdaptiveSoftmax: gradient checks, exact normalisation, masking, and PyTorch's module via fixtures."""
import os

import numpy as np
import pytest

from lm.layers import AdaptiveSoftmax, default_cutoffs
from lm.layers.gradcheck import eval_numerical_gradient_array, rel_error

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
H, V, CUTOFFS, DIV = 8, 13, [4, 9], 2.0      # head 4 words + 2 clusters of 5 and 4 words


def make(head_bias=True, dtype=np.float64, seed=0):
    return AdaptiveSoftmax(H, V, CUTOFFS, div_value=DIV, head_bias=head_bias, dtype=dtype,
                           rng=np.random.default_rng(seed))


def data(shape, seed=1):
    """h (*shape, H) float64 and targets (*shape,) that hit the head and both clusters."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(shape + (H,))
    y = rng.integers(0, V, shape)
    flat = y.reshape(-1)
    flat[:3] = [0, 5, 12][:flat.size]
    return h, y


def prefix_mask(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def target_log_prob(layer, h, y):
    return np.take_along_axis(layer.log_prob(h), y[..., None], axis=-1)[..., 0]


def test_params_match_pytorch_layout():
    layer = make()
    shapes = {k: v.shape for k, v in layer.params.items()}
    # h_i = H // DIV ** (i + 1): 4 and 2
    assert shapes == {"W": (8, 6), "b": (6,), "proj0": (8, 4), "out0": (4, 5),
                      "proj1": (8, 2), "out1": (2, 4)}
    assert "b" not in make(head_bias=False).params
    assert all(g.shape == layer.params[k].shape for k, g in layer.grads.items())


# ---- gradient checks (float64) ------------------------------------------------------

def check_gradients(layer, h, y, mask, per_token):
    layer.zero_grad()
    _, dh = layer.loss(h, y, mask, per_token=per_token)
    f = lambda _: layer.loss(h, y, mask, per_token=per_token, grad=False)[0]
    # Richardson-extrapolated differences: accurate enough to hold tiny entries to 1e-8
    num = lambda x: eval_numerical_gradient_array(f, x, 1.0, h=1e-3, extrapolate=True)
    errors = {"h": rel_error(dh, num(h))}
    for name, p in layer.params.items():
        errors[name] = rel_error(layer.grads[name], num(p))
    assert set(errors) == {"h"} | set(layer.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-8, errors


@pytest.mark.parametrize("head_bias", [True, False])
@pytest.mark.parametrize("per_token", [True, False])
def test_gradients_sequences_with_mask(head_bias, per_token):
    h, y = data((3, 5))
    mask = prefix_mask([5, 1, 3], 5)
    check_gradients(make(head_bias), h, y, mask, per_token)


def test_gradients_rows_without_mask_and_an_unused_cluster():
    h, _ = data((6,), seed=2)
    y = np.array([0, 3, 2, 9, 12, 10])           # nothing in cluster 0: it is skipped
    check_gradients(make(), h, y, None, True)


def test_gradients_single_row():
    h, _ = data((1, 1), seed=3)
    check_gradients(make(), h, np.array([[7]]), None, True)


# ---- exactness ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_prob_is_normalised(dtype):
    layer = make(dtype=dtype)
    h, _ = data((3, 5))
    h = 4 * h.astype(dtype)                      # sharp distributions
    lp = layer.log_prob(h)
    assert lp.shape == (3, 5, V) and lp.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(np.exp(lp.astype(np.float64)).sum(-1), 1.0, atol=tol)
    np.testing.assert_array_equal(layer.forward(h), lp)
    one = layer.log_prob(h[1, 2])                # one row, (H,) -> (V,)
    np.testing.assert_allclose(one, lp[1, 2], rtol=10 * tol, atol=10 * tol)


def test_log_prob_matches_the_formula():
    """log p(w) = log softmax(head)[cluster of w] + log softmax(tail)[w], written naively."""
    layer = make()
    h, _ = data((4,))
    P = layer.params
    lsm = lambda s: s - np.log(np.exp(s).sum(-1, keepdims=True))
    head = lsm(h @ P["W"] + P["b"])
    want = np.concatenate([head[:, :4],
                           head[:, 4:5] + lsm(h @ P["proj0"] @ P["out0"]),
                           head[:, 5:6] + lsm(h @ P["proj1"] @ P["out1"])], axis=1)
    np.testing.assert_allclose(layer.log_prob(h), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (7,)])
def test_loss_is_mean_negative_log_prob(shape):
    layer = make()
    h, y = data(shape)
    loss, dh = layer.loss(h, y)
    assert dh.shape == h.shape
    assert loss == pytest.approx(-target_log_prob(layer, h, y).mean(), rel=1e-12)


def test_per_token_false_divides_by_the_batch():
    layer = make()
    h, y = data((3, 5))
    mask = prefix_mask([5, 1, 3], 5)
    nll = -target_log_prob(layer, h, y)[mask]
    assert layer.loss(h, y, mask)[0] == pytest.approx(nll.mean(), rel=1e-12)
    assert layer.loss(h, y, mask, per_token=False)[0] == pytest.approx(nll.sum() / 3, rel=1e-12)


def test_masked_targets_are_ignored():
    layer = make()
    h, y = data((3, 5))
    mask = prefix_mask([5, 1, 3], 5)
    loss, dh = layer.loss(h, y, mask)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    h2, y2 = h.copy(), y.copy()
    h2[~mask], y2[~mask] = np.nan, -1            # garbage where masked: never read
    layer.zero_grad()
    loss2, dh2 = layer.loss(h2, y2, mask)
    assert loss2 == loss
    np.testing.assert_array_equal(dh2, dh)
    assert np.all(dh2[~mask] == 0)
    for k in grads:
        np.testing.assert_array_equal(layer.grads[k], grads[k])
    # the valid rows alone, as a flat batch, give the same loss and gradients
    layer.zero_grad()
    loss3, dh3 = layer.loss(h[mask], y[mask])
    assert loss3 == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(dh3, dh[mask], rtol=1e-12, atol=1e-15)


def test_grads_accumulate_and_grad_false_leaves_them():
    layer = make()
    h, y = data((3, 5))
    layer.loss(h, y)
    once = {k: g.copy() for k, g in layer.grads.items()}
    loss, dh = layer.loss(h, y, grad=False)
    assert dh is None
    for k in once:
        np.testing.assert_array_equal(layer.grads[k], once[k])
    layer.loss(h, y)
    for k in once:
        np.testing.assert_allclose(layer.grads[k], 2 * once[k], rtol=1e-12)


def test_float32_by_default_and_close_to_float64():
    l32, l64 = make(dtype=np.float32), make(dtype=np.float64)
    assert all(p.dtype == np.float32 for p in l32.params.values())
    h, y = data((3, 5))
    loss32, dh32 = l32.loss(h.astype(np.float32), y)
    loss64, dh64 = l64.loss(h, y)
    assert dh32.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(dh32, dh64, rtol=1e-3, atol=1e-6)


def test_sampling_probabilities_are_exact():
    from lm.models.sampling import filtered_probs
    layer = make()
    h, _ = data((2,))
    lp = layer.forward(h)
    np.testing.assert_allclose(filtered_probs(lp), np.exp(lp), rtol=1e-12)


# ---- argument checks ------------------------------------------------------------------

@pytest.mark.parametrize("cutoffs", [[], [9, 4], [4, 4], [0, 4], [4, 13], [4.5]])
def test_bad_cutoffs(cutoffs):
    with pytest.raises(ValueError, match="cutoffs"):
        AdaptiveSoftmax(H, V, cutoffs)


def test_bad_inputs():
    layer = make()
    h, y = data((3, 5))
    with pytest.raises(ValueError, match="width"):
        AdaptiveSoftmax(8, 13, [4, 9], div_value=4.0)       # 8 // 16 = 0
    with pytest.raises(ValueError, match="expects"):
        layer.loss(h[..., :4], y)
    with pytest.raises(ValueError, match="labels"):
        layer.loss(h, y + V)
    with pytest.raises(ValueError, match="mask"):
        layer.loss(h, y, np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="at least one"):
        layer.loss(h, y, np.zeros((3, 5), bool))


@pytest.mark.parametrize("V_", [2, 3, 10, 50, 1000, 10000, 33278, 267735])
def test_default_cutoffs_are_valid(V_):
    cutoffs = default_cutoffs(V_)
    layer = AdaptiveSoftmax(16, V_, cutoffs, div_value=2.0, dtype=np.float64)
    assert layer.cutoffs[-1] == V_
    h = np.random.default_rng(0).standard_normal((2, 16))
    np.testing.assert_allclose(np.exp(layer.log_prob(h)).sum(-1), 1.0, atol=1e-12)


# ---- PyTorch's nn.AdaptiveLogSoftmaxWithLoss (fixtures: scripts/make_torch_fixtures.py) --

TOL = 1e-6


def load(name):
    with np.load(os.path.join(FIXTURES, f"torch_adaptive_softmax{name}.npz"),
                 allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", ["", "_bias"])
@pytest.mark.parametrize("shape", [(10,), (2, 5)])
def test_matches_torch(name, shape):
    fx = load(name)
    layer = make(head_bias=name == "_bias", seed=7)
    assert set(layer.params) == {k.split(".", 1)[1] for k in fx if k.startswith("param.")}
    for k in layer.params:
        layer.params[k][...] = fx[f"param.{k}"]      # in place, as the contract says
    x, y = fx["x"].reshape(shape + (H,)), fx["y"].reshape(shape)
    layer.zero_grad()
    loss, dx = layer.loss(x, y)
    assert rel_error(loss, fx["loss"]) < TOL
    assert rel_error(dx.reshape(fx["dx"].shape), fx["dx"]) < TOL
    for k in layer.params:
        assert rel_error(layer.grads[k], fx[f"grad.{k}"]) < TOL, k
    lp = layer.log_prob(fx["x"])
    assert rel_error(lp, fx["log_prob"]) < TOL
    assert rel_error(target_log_prob(layer, fx["x"], fx["y"]), fx["output"]) < TOL
