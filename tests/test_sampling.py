"""sample_from_logits: temperature, top-k, top-p, reproducibility, errors."""
import numpy as np
import pytest

from lm.models.sampling import filtered_probs, sample_from_logits


LOGITS = np.array([0.5, 2.0, -1.0, 1.5, 0.0, 3.0, -0.5])  # order: 5, 1, 3, 0, 4, 6, 2


def counts(draws, V):
    return np.bincount(np.asarray(draws), minlength=V)


def test_probabilities_are_a_stable_softmax():
    p = filtered_probs(LOGITS[None] + 1000.0)  # would overflow without the max shift
    expected = np.exp(LOGITS - LOGITS.max())
    np.testing.assert_allclose(p[0], expected / expected.sum(), rtol=1e-12)


def test_temperature_scales_logits():
    p = filtered_probs(LOGITS[None], temperature=0.5)
    q = filtered_probs(2 * LOGITS[None])
    np.testing.assert_allclose(p, q, rtol=1e-12)


def test_top_k_one_is_argmax():
    rng = np.random.default_rng(0)
    for _ in range(20):
        z = rng.standard_normal(11)
        assert sample_from_logits(z, top_k=1, rng=rng) == int(np.argmax(z))
    batch = rng.standard_normal((4, 9))
    np.testing.assert_array_equal(sample_from_logits(batch, top_k=1), batch.argmax(axis=1))


def test_top_k_never_leaves_the_k_most_likely():
    rng = np.random.default_rng(1)
    draws = [sample_from_logits(LOGITS, temperature=3.0, top_k=3, rng=rng) for _ in range(3000)]
    c = counts(draws, len(LOGITS))
    assert set(np.flatnonzero(c)) == {5, 1, 3}  # all three appear, nothing else
    batch = np.tile(LOGITS, (500, 1))
    drawn = sample_from_logits(batch, temperature=5.0, top_k=2, rng=rng)
    assert set(drawn.tolist()) == {5, 1}


def test_top_k_renormalises_the_kept_probabilities():
    p = filtered_probs(LOGITS[None], top_k=2)[0]
    e = np.exp([2.0, 3.0])
    np.testing.assert_allclose(p[[1, 5]], e / e.sum())
    assert p.sum() == pytest.approx(1.0)
    # k >= V or 0 means no filtering
    np.testing.assert_allclose(filtered_probs(LOGITS[None], top_k=99), filtered_probs(LOGITS[None]))
    np.testing.assert_allclose(filtered_probs(LOGITS[None], top_k=0), filtered_probs(LOGITS[None]))


def test_top_p_keeps_the_smallest_sufficient_set():
    z = np.log(np.array([0.1, 0.5, 0.15, 0.25]))[None]
    np.testing.assert_allclose(filtered_probs(z, top_p=0.5)[0], [0, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(filtered_probs(z, top_p=0.6)[0], [0, 2 / 3, 0, 1 / 3], atol=1e-12)
    np.testing.assert_allclose(filtered_probs(z, top_p=0.75)[0], [0, 2 / 3, 0, 1 / 3], atol=1e-9)
    np.testing.assert_allclose(filtered_probs(z, top_p=0.8)[0], [0, 0.5, 0.15, 0.25] / np.float64(0.9),
                               atol=1e-12)
    np.testing.assert_allclose(filtered_probs(z, top_p=1.0)[0], [0.1, 0.5, 0.15, 0.25], atol=1e-12)


def test_small_top_p_is_argmax():
    rng = np.random.default_rng(2)
    for _ in range(20):
        z = rng.standard_normal(13)
        assert sample_from_logits(z, top_p=1e-6, rng=rng) == int(np.argmax(z))


def test_sampling_follows_the_distribution():
    rng = np.random.default_rng(3)
    z = np.log(np.array([0.2, 0.5, 0.3]))
    draws = sample_from_logits(np.tile(z, (20000, 1)), rng=rng)
    freq = counts(draws, 3) / 20000
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.015)


def test_zero_probability_tokens_are_never_drawn():
    z = np.array([-np.inf, 0.0, -np.inf, 0.0, -np.inf])
    draws = sample_from_logits(np.tile(z, (2000, 1)), rng=4)
    assert set(draws.tolist()) == {1, 3}


def test_seeded_sampling_is_reproducible():
    a = [sample_from_logits(LOGITS, rng=np.random.default_rng(7)) for _ in range(3)]
    r1, r2 = np.random.default_rng(8), np.random.default_rng(8)
    s1 = [sample_from_logits(LOGITS, top_p=0.9, rng=r1) for _ in range(50)]
    s2 = [sample_from_logits(LOGITS, top_p=0.9, rng=r2) for _ in range(50)]
    assert a[0] == a[1] == a[2] and s1 == s2
    assert len(set(s1)) > 1


def test_return_types():
    assert isinstance(sample_from_logits(LOGITS, rng=0), int)
    out = sample_from_logits(np.tile(LOGITS, (3, 1)), rng=0)
    assert out.shape == (3,) and out.dtype == np.int64
    assert isinstance(sample_from_logits(LOGITS.astype(np.float32), top_k=1), int)


@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(temperature=-1.0),
                                    dict(temperature=float("nan")), dict(top_k=-1),
                                    dict(top_k=1.5), dict(top_p=0.0), dict(top_p=1.5)])
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError):
        sample_from_logits(LOGITS, rng=0, **kwargs)


def test_bad_logits_raise():
    with pytest.raises(ValueError, match="NaN"):
        sample_from_logits(np.array([0.0, np.nan]), rng=0)
    with pytest.raises(ValueError, match="shape"):
        sample_from_logits(np.zeros((2, 2, 2)), rng=0)
    with pytest.raises(ValueError, match="-inf"):
        sample_from_logits(np.full(3, -np.inf), rng=0)


def test_tiny_temperature_is_argmax_without_overflow():
    rng = np.random.default_rng(9)
    for _ in range(10):
        z = rng.standard_normal(6) * 50
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            assert sample_from_logits(z, temperature=1e-9, rng=rng) == int(np.argmax(z))
