"""Conv1D and MaxPool1D: gradient checks, a plain reference, masks (PyTorch: test_conv_torch.py)."""
import numpy as np
import pytest

from lm.layers import Conv1D, MaxPool1D
from lm.layers.gradcheck import check_layer_gradients

TOL = 1e-7


def assert_grads(errors, expected):
    assert set(errors) == expected
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"gradient check failed: {bad}"


def prefix_mask(T, lengths):
    return None if lengths is None else np.arange(T)[None, :] < np.array(lengths)[:, None]


def conv_layer(D, F, K, padding, dtype=np.float64, seed=0):
    return Conv1D(D, F, K, padding=padding, dtype=dtype, rng=np.random.default_rng(seed))


def reference_conv1d(x, W, b, padding, mask=None):
    """Deliberately plain: zero the padding, pad, and add up one shifted product per k."""
    K = W.shape[0]
    left = (K - 1) // 2 if padding == "same" else 0
    right = K - 1 - left if padding == "same" else 0
    if mask is not None:
        x = np.where(mask[:, :, None], x, 0)
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
    To = xp.shape[1] - K + 1
    out = b + sum(xp[:, k:k + To] @ W[k] for k in range(K))
    if mask is not None:
        out_mask = mask if padding == "same" else np.array(
            [[mask[n, t:t + K].all() for t in range(To)] for n in range(len(mask))])
        out = np.where(out_mask[:, :, None], out, 0)
    return out


# ---- Conv1D ---------------------------------------------------------------------

def test_conv_equation_by_hand():
    """out[n, t, f] = b[f] + sum_k sum_d x[n, t + k - pad_left, d] W[k, d, f], by loops."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    for padding, K in [("same", 3), ("same", 4), ("valid", 2)]:
        conv = conv_layer(3, 2, K, padding)
        W, b = conv.params["W"], conv.params["b"]
        left = (K - 1) // 2 if padding == "same" else 0
        out = conv.forward(x)
        To = out.shape[1]
        assert To == (5 if padding == "same" else 5 - K + 1)
        expected = np.zeros((2, To, 2))
        for n, t, f in np.ndindex(2, To, 2):
            expected[n, t, f] = b[f] + sum(x[n, t + k - left, d] * W[k, d, f]
                                           for k in range(K) for d in range(3)
                                           if 0 <= t + k - left < 5)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("N, T, lengths", [(2, 5, [5, 3]), (3, 6, [6, 4, 1]), (1, 1, None),
                                           (2, 4, None)])
def test_conv_gradients(padding, K, N, T, lengths):
    rng = np.random.default_rng(K)
    conv = conv_layer(3, 2, K, padding, seed=K)                 # D != F
    if padding == "valid" and T < K:
        with pytest.raises(ValueError, match="T >= kernel_size"):
            conv.forward(np.ones((N, T, 3)))
        return
    conv.params["b"][...] = rng.standard_normal(2)              # non-trivial bias
    x = rng.standard_normal((N, T, 3))
    mask = prefix_mask(T, lengths)
    errors = check_layer_gradients(conv, conv.forward, conv.backward, [x, mask], rng=rng,
                                   h=1e-3, extrapolate=True)
    assert_grads(errors, {"input0", "W", "b"})


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("K", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("lengths", [None, [9, 6, 3, 1]])
def test_conv_float32_fast_path_matches_float64_reference(padding, K, lengths):
    rng = np.random.default_rng(10 + K)
    x = rng.standard_normal((4, 9, 5))
    mask = prefix_mask(9, lengths)
    c32, c64 = conv_layer(5, 6, K, padding, np.float32), conv_layer(5, 6, K, padding)
    c64.params["W"][...] = c32.params["W"]
    c64.params["b"][...] = c32.params["b"]
    out32 = c32.forward(x.astype(np.float32), mask)
    assert out32.dtype == np.float32
    ref = reference_conv1d(x, c64.params["W"], c64.params["b"], padding, mask)
    np.testing.assert_allclose(out32, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c64.forward(x, mask), ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(ref.shape)
    dx32, dx64 = c32.backward(dout.astype(np.float32)), c64.backward(dout)
    assert dx32.dtype == np.float32 and dx32.shape == x.shape
    np.testing.assert_allclose(dx32, dx64, rtol=1e-5, atol=1e-5)
    for key in ("W", "b"):
        assert c32.grads[key].dtype == np.float32
        np.testing.assert_allclose(c32.grads[key], c64.grads[key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("K", [2, 3])
def test_conv_padding_changes_nothing_valid(padding, K):
    """Junk (or NaN) at padded steps changes no output; a valid output is what the row
    alone, cut to its length, gives; padded steps get zero gradient."""
    rng = np.random.default_rng(3)
    lengths = [7, 5, 2]
    x = rng.standard_normal((3, 7, 4))
    mask = prefix_mask(7, lengths)
    conv = conv_layer(4, 3, K, padding)
    out = conv.forward(x, mask)
    out_mask = conv.out_mask
    junk = np.where(mask[:, :, None], x, 1e6 * rng.standard_normal(x.shape))
    np.testing.assert_array_equal(conv.forward(junk, mask), out)
    nan = np.where(mask[:, :, None], x, np.nan)
    np.testing.assert_array_equal(conv.forward(nan), out)      # NaN steps are padding
    np.testing.assert_array_equal(conv.out_mask, out_mask)
    assert np.all(out[~out_mask] == 0)
    for n, L in enumerate(lengths):
        if L < K and padding == "valid":
            assert not out_mask[n].any()
            continue
        alone = conv.forward(x[n:n + 1, :L])[0]
        assert out_mask[n].sum() == len(alone)
        np.testing.assert_allclose(out[n, out_mask[n]], alone, rtol=1e-12, atol=1e-12)
    conv.forward(nan)
    dx = conv.backward(np.ones_like(out))
    assert np.all(dx[~mask] == 0) and np.all(np.isfinite(dx))


def test_conv_output_mask():
    mask = prefix_mask(6, [6, 4, 2])
    same, valid = conv_layer(2, 2, 3, "same"), conv_layer(2, 2, 3, "valid")
    np.testing.assert_array_equal(same.output_mask(mask), mask)
    np.testing.assert_array_equal(valid.output_mask(mask), prefix_mask(4, [4, 2, 0]))
    assert valid.output_mask(None) is None
    valid.forward(np.ones((3, 6, 2)), mask)
    np.testing.assert_array_equal(valid.out_mask, prefix_mask(4, [4, 2, 0]))
    valid.forward(np.ones((3, 6, 2)))
    assert valid.out_mask is None                               # no padding


def test_conv_init_dtype_and_accumulation():
    conv = Conv1D(5, 7, 3, rng=np.random.default_rng(1))
    assert conv.params["W"].shape == (3, 5, 7) and conv.params["b"].shape == (7,)
    assert conv.params["W"].dtype == np.float32 and conv.padding == "same"
    bound = 1 / np.sqrt(5 * 3)
    for p in conv.params.values():
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound
    again = Conv1D(5, 7, 3, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(conv.params["W"], again.params["W"])
    x = np.random.default_rng(2).standard_normal((2, 4, 5))    # float64 in, float32 out
    out = conv.forward(x)
    assert out.dtype == np.float32
    conv.backward(np.ones_like(out))
    first = {k: g.copy() for k, g in conv.grads.items()}
    conv.backward(np.ones_like(out))                            # backward adds
    for k in first:
        np.testing.assert_allclose(conv.grads[k], 2 * first[k], rtol=1e-6)


def test_conv_validation():
    with pytest.raises(ValueError, match="same, valid"):
        Conv1D(3, 2, 3, padding="full")
    with pytest.raises(ValueError, match=">= 1"):
        Conv1D(3, 2, 0)
    conv = Conv1D(3, 2, 4, padding="valid")
    with pytest.raises(ValueError, match="T >= kernel_size = 4"):
        conv.forward(np.ones((1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, T, 3\)"):
        conv.forward(np.ones((1, 5, 2), np.float32))
    with pytest.raises(ValueError, match="prefix"):
        conv.forward(np.ones((1, 5, 3), np.float32), np.array([[True, False, True, True, True]]))
    with pytest.raises(ValueError, match="before forward"):
        Conv1D(3, 2, 3).backward(np.ones((1, 5, 2), np.float32))


# ---- MaxPool1D ------------------------------------------------------------------

def distinct(rng, shape):
    """Values 0.1 apart in random order: no ties, even under a 1e-3 perturbation."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 - 1.0


def test_maxpool_values_by_hand():
    x = np.array([[[1.0, 9.0], [3.0, 2.0], [2.0, 5.0], [7.0, 0.0], [4.0, 8.0]]])   # (1, 5, 2)
    np.testing.assert_array_equal(MaxPool1D(2).forward(x), [[[3, 9], [7, 5]]])    # step 4 dropped
    np.testing.assert_array_equal(MaxPool1D(3, 1).forward(x), [[[3, 9], [7, 5], [7, 8]]])
    pool = MaxPool1D(2, 1)
    pool.forward(x)
    dx = pool.backward(np.ones((1, 4, 2)))                      # overlapping windows add up
    np.testing.assert_array_equal(dx[0], [[0, 1], [2, 0], [0, 2], [2, 0], [0, 1]])


@pytest.mark.parametrize("P, S, N, T, lengths", [
    (2, None, 2, 5, [5, 3]), (3, 2, 3, 7, [7, 4, 1]), (1, 1, 1, 1, None), (3, 1, 2, 4, None),
    (2, 3, 2, 7, [7, 2]),                                       # stride > pool: steps in no window
])
def test_maxpool_gradients(P, S, N, T, lengths):
    rng = np.random.default_rng(P)
    x = distinct(rng, (N, T, 3))
    pool = MaxPool1D(P, S)
    out = pool.forward(x, prefix_mask(T, lengths))
    assert out.shape == (N, (T - P) // (S or P) + 1, 3)
    errors = check_layer_gradients(pool, pool.forward, pool.backward,
                                   [x, prefix_mask(T, lengths)], rng=rng, h=1e-3, extrapolate=True)
    assert_grads(errors, {"input0"})


def test_maxpool_ties_go_to_the_first():
    pool = MaxPool1D(3)
    pool.forward(np.ones((1, 6, 1)))
    np.testing.assert_array_equal(pool.backward(np.ones((1, 2, 1)))[0, :, 0], [1, 0, 0, 1, 0, 0])


def test_maxpool_masks():
    """Padding never wins; a window of padding only outputs 0, is invalid and passes no
    gradient; NaN steps without a mask are padding too."""
    rng = np.random.default_rng(5)
    x = distinct(rng, (3, 7, 2))
    mask = prefix_mask(7, [7, 3, 1])
    junk = np.where(mask[:, :, None], x, 100.0)
    pool = MaxPool1D(2)
    out = pool.forward(junk, mask)
    np.testing.assert_array_equal(pool.out_mask, prefix_mask(3, [3, 2, 1]))
    np.testing.assert_array_equal(pool.output_mask(mask), pool.out_mask)
    np.testing.assert_array_equal(out[1, 1], x[1, 2])           # window {2, 3}: only step 2 valid
    np.testing.assert_array_equal(out[2, 1:], 0)
    np.testing.assert_array_equal(out[0], MaxPool1D(2).forward(x[:1])[0])
    dx = pool.backward(np.ones_like(out))
    assert np.all(dx[~mask] == 0) and dx.sum() == pool.out_mask.sum() * 2
    np.testing.assert_array_equal(pool.forward(np.where(mask[:, :, None], x, np.nan)), out)
    assert MaxPool1D(2).forward(x).shape == (3, 3, 2) and MaxPool1D(2).output_mask(None) is None


def test_maxpool_validation():
    with pytest.raises(ValueError, match=">= 1"):
        MaxPool1D(0)
    with pytest.raises(ValueError, match="T >= pool_size = 4"):
        MaxPool1D(4).forward(np.ones((1, 3, 2)))
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        MaxPool1D(2).forward(np.ones((3, 2)))
