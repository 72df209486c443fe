"""Embedding, TemporalLinear, TemporalPooling, Dropout: gradient checks and hand values."""
import numpy as np
import pytest

from lm.layers.gradcheck import check_layer_gradients
from lm.layers.dropout import Dropout
from lm.layers.embedding import Embedding
from lm.layers.linear import TemporalLinear
from lm.layers.pooling import TemporalPooling

TOL = 1e-7


def assert_grads(errors):
    assert errors, "no gradient was checked"
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"gradient check failed: {bad}"


# ---- Embedding ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3), (1, 1), (4,)])
def test_embedding_forward_and_gradient(shape):
    rng = np.random.default_rng(0)
    emb = Embedding(5, 3, dtype=np.float64, rng=rng)
    ids = rng.integers(0, 5, shape)
    out = emb.forward(ids)
    assert out.shape == shape + (3,) and out.dtype == np.float64
    np.testing.assert_array_equal(out, emb.params["W"][ids])
    errors = check_layer_gradients(emb, emb.forward, emb.backward, [ids], rng=rng)
    assert set(errors) == {"W"}
    assert_grads(errors)


def test_embedding_repeated_ids_accumulate():
    emb = Embedding(4, 2, dtype=np.float64)
    ids = np.array([[1, 3, 1], [1, 0, 3]])
    emb.forward(ids)
    dout = np.arange(12, dtype=np.float64).reshape(2, 3, 2)
    assert emb.backward(dout) is None
    expected = np.zeros((4, 2))
    for n in range(2):
        for t in range(3):
            expected[ids[n, t]] += dout[n, t]
    np.testing.assert_allclose(emb.grads["W"], expected)
    assert emb.grads["W"][2].tolist() == [0.0, 0.0]     # unused id gets nothing
    emb.forward(ids)
    emb.backward(dout)                                  # backward adds, it does not overwrite
    np.testing.assert_allclose(emb.grads["W"], 2 * expected)


def test_embedding_float32_default_and_validation():
    emb = Embedding(10, 4)
    assert emb.params["W"].dtype == np.float32
    assert emb.forward(np.array([[9, 0]])).dtype == np.float32
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        emb.forward(np.array([[10]]))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        emb.forward(np.array([-1]))
    with pytest.raises(ValueError, match="integers"):
        emb.forward(np.array([1.0]))


def test_embedding_gradient_large_vocab_matches_dense_sum():
    rng = np.random.default_rng(3)
    emb = Embedding(1000, 8, dtype=np.float32, rng=rng)
    ids = rng.zipf(1.3, (16, 20)) % 1000
    emb.forward(ids)
    dout = rng.standard_normal((16, 20, 8)).astype(np.float32)
    emb.backward(dout)
    expected = np.zeros((1000, 8))
    np.add.at(expected, ids.reshape(-1), dout.reshape(-1, 8).astype(np.float64))
    np.testing.assert_allclose(emb.grads["W"], expected, rtol=1e-5, atol=1e-5)


# ---- TemporalLinear -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 1, 4), (3, 4)])
def test_linear_gradients(shape):
    rng = np.random.default_rng(1)
    lin = TemporalLinear(4, 5, dtype=np.float64, rng=rng)
    x = rng.standard_normal(shape)
    out = lin.forward(x)
    assert out.shape == shape[:-1] + (5,)
    np.testing.assert_allclose(out, x @ lin.params["W"] + lin.params["b"])
    errors = check_layer_gradients(lin, lin.forward, lin.backward, [x], rng=rng)
    assert set(errors) == {"input0", "W", "b"}
    assert_grads(errors)


def test_linear_float32_and_bad_shape():
    lin = TemporalLinear(3, 2)
    assert lin.forward(np.ones((2, 4, 3), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="TemporalLinear expects"):
        lin.forward(np.ones((2, 4, 5), np.float32))


# ---- TemporalPooling ------------------------------------------------------------

H_HAND = np.array([[[1.0, -1.0], [3.0, 5.0], [2.0, 0.0]],
                   [[4.0, 2.0], [9.0, 9.0], [-7.0, 8.0]]])          # (2, 3, 2)
MASK_HAND = np.array([[True, True, True], [True, False, False]])


@pytest.mark.parametrize("mode, expected", [
    ("mean", [[2.0, 4.0 / 3.0], [4.0, 2.0]]),
    ("max", [[3.0, 5.0], [4.0, 2.0]]),
    ("last", [[2.0, 0.0], [4.0, 2.0]]),
])
def test_pooling_values_by_hand(mode, expected):
    pool = TemporalPooling(mode)
    np.testing.assert_allclose(pool.forward(H_HAND, MASK_HAND), expected)


def test_pooling_without_mask_uses_all_steps():
    np.testing.assert_allclose(TemporalPooling("mean").forward(H_HAND),
                               [[2.0, 4.0 / 3.0], [2.0, 19.0 / 3.0]])
    np.testing.assert_allclose(TemporalPooling("max").forward(H_HAND), [[3.0, 5.0], [9.0, 9.0]])
    np.testing.assert_allclose(TemporalPooling("last").forward(H_HAND), [[2.0, 0.0], [-7.0, 8.0]])


@pytest.mark.parametrize("mode", ["mean", "max", "last"])
def test_pooling_ignores_padded_values_and_gives_them_no_gradient(mode):
    h = H_HAND.copy()
    h[1, 1:] = np.nan                                       # garbage in the padding
    pool = TemporalPooling(mode)
    out = pool.forward(h, MASK_HAND)
    np.testing.assert_allclose(out, TemporalPooling(mode).forward(H_HAND, MASK_HAND))
    dh = pool.backward(np.ones((2, 2)))
    assert np.all(dh[1, 1:] == 0) and np.all(np.isfinite(dh))


@pytest.mark.parametrize("mode", ["mean", "max", "last"])
@pytest.mark.parametrize("N, T, lengths", [(3, 4, [4, 2, 1]), (1, 1, [1]), (2, 3, None)])
def test_pooling_gradients(mode, N, T, lengths):
    rng = np.random.default_rng(2)
    h = rng.standard_normal((N, T, 5))
    mask = None if lengths is None else np.arange(T)[None, :] < np.array(lengths)[:, None]
    pool = TemporalPooling(mode)
    errors = check_layer_gradients(pool, pool.forward, pool.backward, [h, mask], rng=rng)
    assert set(errors) == {"input0"}
    assert_grads(errors)


def test_pooling_empty_row_gives_zeros_and_mode_validation():
    pool = TemporalPooling("mean")
    out = pool.forward(np.ones((2, 2, 3)), np.array([[True, False], [False, False]]))
    np.testing.assert_array_equal(out, [[1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(pool.backward(np.ones((2, 3)))[1], 0)
    with pytest.raises(ValueError, match="mean, max, last"):
        TemporalPooling("sum")
    with pytest.raises(ValueError, match="mask shape"):
        pool.forward(np.ones((2, 2, 3)), np.ones((2, 3), bool))


# ---- Dropout --------------------------------------------------------------------

def test_dropout_scaling_and_mask_reuse():
    drop = Dropout(0.25, rng=np.random.default_rng(0))
    x = np.ones((200, 500), np.float32)
    out = drop.forward(x)
    assert out.dtype == np.float32
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.01
    assert abs(out.mean() - 1.0) < 0.02                      # inverted dropout keeps E[out] = x
    dx = drop.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx, 2 * out)              # same mask, same scale


def test_dropout_gradient():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4))
    drop = Dropout(0.5, rng=np.random.default_rng(5))
    out = drop.forward(x)
    mask = out / x
    # freeze the mask so the numerical check sees the same function
    errors = check_layer_gradients(drop, lambda z: z * mask, lambda d: drop.backward(d), [x], rng=rng)
    assert_grads(errors)


def test_dropout_identity_at_eval_and_p0():
    x = np.random.default_rng(0).standard_normal((3, 4))
    drop = Dropout(0.9).eval()
    assert not drop.training
    assert drop.forward(x) is x and drop.backward(x) is x
    drop.train()
    assert not np.array_equal(drop.forward(x), x)
    assert Dropout(0.0).forward(x) is x


def test_dropout_is_reproducible_from_rng():
    x = np.ones((4, 5))
    a = Dropout(0.5, rng=np.random.default_rng(7)).forward(x)
    b = Dropout(0.5, rng=np.random.default_rng(7)).forward(x)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan"), "half"])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(p)
