"""temporal_softmax_loss and softmax_cross_entropy: sanity values, gradients, stability."""
import numpy as np
import pytest

from lm.layers.gradcheck import eval_numerical_gradient, rel_error
from lm.layers.losses import softmax_cross_entropy, temporal_softmax_loss


def reference_temporal(scores, y, mask):
    """Plain, obviously-correct version in float64."""
    s = scores.astype(np.float64)
    logp = s - s.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    return float((nll * mask).sum() / s.shape[0])


def test_temporal_sanity_values():
    rng = np.random.default_rng(0)
    N, T, V = 100, 10, 10
    y = rng.integers(0, V, (N, T))
    scores = 0.001 * rng.standard_normal((N, T, V))
    loss, _ = temporal_softmax_loss(scores, y, np.ones((N, T), bool))
    assert abs(loss - T * np.log(V)) < 0.01            # ~23.03
    loss_none, _ = temporal_softmax_loss(scores, y)
    assert loss_none == pytest.approx(loss, rel=1e-12)
    mask = rng.random((N, T)) < 0.1
    loss_masked, _ = temporal_softmax_loss(scores, y, mask)
    assert abs(loss_masked - mask.sum() / N * np.log(V)) < 0.01
    assert 1.5 < loss_masked < 3.1                     # about 2.3


@pytest.mark.parametrize("N, T, V, masked", [(3, 4, 5, True), (1, 1, 3, False), (2, 3, 4, False)])
def test_temporal_gradient(N, T, V, masked):
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((N, T, V))
    y = rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) < 0.6 if masked else None
    if masked:
        mask[0, 0] = True
    loss, dscores = temporal_softmax_loss(scores, y, mask)
    num = eval_numerical_gradient(lambda s: temporal_softmax_loss(s, y, mask)[0], scores)
    assert rel_error(dscores, num) < 1e-7
    assert loss == pytest.approx(reference_temporal(scores, y, np.ones((N, T)) if mask is None else mask))


def test_temporal_mask_correctness():
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((2, 3, 4))
    y = np.array([[0, 1, -1], [3, 99, 7]])            # labels at padded steps are ignored
    mask = np.array([[True, True, False], [True, False, False]])
    scores[1, 2] = np.nan                              # so are the scores there
    loss, d = temporal_softmax_loss(scores, y, mask)
    assert np.all(d[~mask] == 0)
    assert np.all(np.isfinite(d))
    y_ok = np.where(mask, y, 0)
    clean = np.where(mask[..., None], scores, 0)
    assert loss == pytest.approx(reference_temporal(clean, y_ok, mask), rel=1e-12)
    # a masked step is the same as deleting it: compare with the valid steps alone
    n0, _ = temporal_softmax_loss(scores[:1, :2], y[:1, :2])
    n1, _ = temporal_softmax_loss(scores[1:, :1], y[1:, :1])
    assert loss == pytest.approx((n0 + n1) / 2, rel=1e-12)
    # gradient rows at valid steps sum to zero (softmax minus one-hot), scaled by 1/N
    np.testing.assert_allclose(d[mask].sum(-1), 0, atol=1e-12)
    assert d[0, 0, 0] == pytest.approx((np.exp(scores[0, 0]) / np.exp(scores[0, 0]).sum())[0] / 2 - 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_scores_and_large_scores_are_stable(dtype):
    rng = np.random.default_rng(3)
    scores = (1e4 * rng.standard_normal((2, 3, 6))).astype(dtype)
    y = rng.integers(0, 6, (2, 3))
    loss, d = temporal_softmax_loss(scores, y)
    assert d.dtype == dtype and np.isfinite(loss) and np.all(np.isfinite(d))
    assert loss == pytest.approx(reference_temporal(scores, y, np.ones((2, 3))), rel=1e-5)
    s2 = scores[:, 0]
    loss2, d2 = softmax_cross_entropy(s2, y[:, 0])
    assert d2.dtype == dtype and np.isfinite(loss2) and np.all(np.isfinite(d2))
    assert loss2 == pytest.approx(reference_temporal(s2[:, None], y[:, :1], np.ones((2, 1))), rel=1e-5)


def test_float32_matches_float64():
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((4, 5, 50))
    y = rng.integers(0, 50, (4, 5))
    l64, d64 = temporal_softmax_loss(scores, y)
    l32, d32 = temporal_softmax_loss(scores.astype(np.float32), y)
    assert l32 == pytest.approx(l64, rel=1e-6)
    np.testing.assert_allclose(d32, d64, atol=1e-7)


def test_overwrite_scores_reuses_buffer_and_default_does_not():
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((2, 3, 4))
    y = rng.integers(0, 4, (2, 3))
    keep = scores.copy()
    loss, d = temporal_softmax_loss(scores, y)
    np.testing.assert_array_equal(scores, keep)       # input untouched by default
    loss2, d2 = temporal_softmax_loss(scores, y, overwrite_scores=True)
    assert d2 is not None and np.shares_memory(d2, scores)
    assert loss2 == loss
    np.testing.assert_array_equal(d2, d)


def test_chunked_rows_agree_with_reference():
    # V large enough that rows are processed in several chunks
    rng = np.random.default_rng(6)
    N, T, V = 3, 50, 3000
    scores = rng.standard_normal((N, T, V))
    y = rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) < 0.7
    loss, d = temporal_softmax_loss(scores, y, mask)
    assert loss == pytest.approx(reference_temporal(scores, y, mask), rel=1e-12)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.put_along_axis(p, y[..., None], np.take_along_axis(p, y[..., None], -1) - 1, -1)
    np.testing.assert_allclose(d, p * mask[..., None] / N, atol=1e-15)


@pytest.mark.parametrize("N, C", [(3, 5), (1, 2)])
def test_softmax_cross_entropy_gradient_and_value(N, C):
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((N, C))
    y = rng.integers(0, C, N)
    loss, d = softmax_cross_entropy(scores, y)
    num = eval_numerical_gradient(lambda s: softmax_cross_entropy(s, y)[0], scores)
    assert rel_error(d, num) < 1e-7
    assert loss == pytest.approx(reference_temporal(scores[:, None], y[:, None], np.ones((N, 1))))


def test_softmax_cross_entropy_sanity_and_extremes():
    rng = np.random.default_rng(8)
    loss, _ = softmax_cross_entropy(1e-3 * rng.standard_normal((500, 10)), rng.integers(0, 10, 500))
    assert abs(loss - np.log(10)) < 0.01
    loss, d = softmax_cross_entropy(np.array([[1e4, 0.0], [0.0, 1e4]]), np.array([0, 0]))
    assert loss == pytest.approx(1e4 / 2)               # right, then wrong by a margin of 1e4
    np.testing.assert_allclose(d, [[0, 0], [-0.5, 0.5]], atol=1e-12)


def test_validation_errors():
    s3 = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="labels shape"):
        temporal_softmax_loss(s3, np.zeros((2, 4), int))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        temporal_softmax_loss(s3, np.full((2, 3), 4))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        temporal_softmax_loss(s3, np.full((2, 3), -1))
    with pytest.raises(ValueError, match="mask shape"):
        temporal_softmax_loss(s3, np.zeros((2, 3), int), np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="integers"):
        temporal_softmax_loss(s3, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(N, T, V\)"):
        temporal_softmax_loss(np.zeros((2, 3)), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        softmax_cross_entropy(s3, np.zeros(2, int))
    with pytest.raises(ValueError, match="labels shape"):
        softmax_cross_entropy(np.zeros((2, 3)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
