"""The continuous cache (lm.models.cache): the mixture against a token-by-token reference,
scoring and sampling agreeing on one distribution, state carried across windows, the
per-target log-probabilities it mixes, config and flags, and the CLIs."""
import json

import numpy as np
import pytest

from conftest import assert_clean_error, corpus_text, run_module
from lm.config.training import TrainConfig
from lm.layers.adaptive_softmax import AdaptiveSoftmax
from lm.layers.losses import log_softmax_at
from lm.models.cache import ContinuousCache
from lm.models.language_model import LanguageModelRNN

V = 11


def reference_log_p(log_p_model, H, targets, size, theta, lam):
    """One stream, token by token, straight from the equation: (T,) log p(targets)."""
    out = []
    for t in range(len(targets)):
        lo = max(0, t - size)
        if t == lo:
            out.append(log_p_model[t])           # nothing remembered yet: the model alone
            continue
        s = theta * np.array([H[t] @ H[i] for i in range(lo, t)])
        a = np.exp(s - s.max())
        a /= a.sum()
        p_cache = sum(a[i - lo] for i in range(lo, t) if targets[i] == targets[t])
        out.append(np.log((1 - lam) * np.exp(log_p_model[t]) + lam * p_cache))
    return np.array(out)


def make(softmax="full", cache_size=6, theta=0.7, lam=0.3, num_layers=1, seed=0):
    return LanguageModelRNN(V, 5, 16, num_layers=num_layers, softmax=softmax,
                            cutoffs=[4, 8] if softmax == "adaptive" else None,
                            cache_size=cache_size, cache_theta=theta, cache_lambda=lam,
                            dtype=np.float64, rng=np.random.default_rng(seed)).eval()


@pytest.mark.parametrize("size", [1, 4, 100])
def test_mixture_equals_the_token_by_token_reference_across_windows(size):
    rng = np.random.default_rng(size)
    N, T, H = 2, 23, 6
    h = rng.normal(size=(N, T, H))
    targets = rng.integers(0, 4, (N, T))         # few values: the cache hits often
    log_p_model = np.log(rng.uniform(0.01, 0.5, (N, T)))
    cache = ContinuousCache(size, theta=0.8, lam=0.25)
    memory, parts = None, []
    for a, b in [(0, 5), (5, 6), (6, 17), (17, 23)]:  # windows of 5, 1, 11, 6: memory carried
        log_p, memory = cache.mix_targets(log_p_model[:, a:b], h[:, a:b], targets[:, a:b],
                                          memory)
        parts.append(log_p)
        assert memory.keys.shape[1] == min(size, b)
    got = np.concatenate(parts, axis=1)
    for n in range(N):
        want = reference_log_p(log_p_model[n], h[n], targets[n], size, 0.8, 0.25)
        np.testing.assert_allclose(got[n], want, rtol=1e-12)


def test_masked_positions_are_neither_scored_nor_remembered():
    rng = np.random.default_rng(3)
    T, H = 9, 4
    h = rng.normal(size=(1, T, H))
    targets = rng.integers(0, 3, (1, T))
    log_p_model = np.log(rng.uniform(0.05, 0.5, (1, T)))
    mask = np.ones((1, T), dtype=bool)
    mask[0, 2] = mask[0, 5] = False
    cache = ContinuousCache(50, theta=1.0, lam=0.4)
    got, memory = cache.mix_targets(log_p_model, h, targets, None, mask)
    keep = np.flatnonzero(mask[0])               # the same stream without the masked steps
    want = reference_log_p(log_p_model[0, keep], h[0, keep], targets[0, keep], 50, 1.0, 0.4)
    np.testing.assert_allclose(got[0, keep], want, rtol=1e-12)
    assert memory.valid.sum() == len(keep)


def test_lambda_zero_or_no_memory_is_the_model_alone():
    model = make(cache_size=10, lam=0.0)
    ids = np.random.default_rng(0).integers(0, V, (2, 7))
    targets = np.roll(ids, -1, axis=1)
    with_cache = model.nll(ids, targets)[0]
    model.set_cache(0)
    assert model.cache is None
    np.testing.assert_allclose(with_cache, model.nll(ids, targets)[0], rtol=1e-12)
    cache = ContinuousCache(5, 1.0, 0.5)         # the first position has nothing to recall
    log_p, _ = cache.mix_targets(np.array([[-1.5, -2.0]]), np.ones((1, 2, 3)),
                                 np.array([[1, 2]]), None)
    assert log_p[0, 0] == -1.5 and log_p[0, 1] != -2.0


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_scoring_and_sampling_use_one_normalised_distribution(softmax):
    """nll over windows (state carried) == the sum of -log p at the targets of the
    distribution `generate` draws from, built one step at a time."""
    model = make(softmax, cache_size=5, num_layers=2)
    rng = np.random.default_rng(1)
    stream = rng.integers(0, V, 30)
    ids, targets = stream[None, :-1], stream[None, 1:]
    total, state = 0.0, None
    for a in range(0, 29, 8):
        nats, count, state = model.nll(ids[:, a:a + 8], targets[:, a:a + 8], state)
        total += nats
    want, memory, rnn_state = 0.0, None, None
    x = np.empty(1, dtype=np.int64)
    for t in range(29):
        x[0] = ids[0, t]
        h, rnn_state = model.encoder.step(x, rnn_state)
        log_p = model.cache.mix_distribution(model.log_prob(h), h, memory)
        np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, rtol=1e-12)
        want -= log_p[0, targets[0, t]]
        memory = model.cache.append(memory, h, targets[0, t:t + 1])
    np.testing.assert_allclose(total, want, rtol=1e-10)


def test_generate_draws_from_the_mixture():
    """With lambda near 1 and a flat cache (theta 0), greedy decoding repeats what the
    prompt repeats; the network alone would pick its own most likely token."""
    model = make(cache_size=50, theta=0.0, lam=0.99)
    model.set_cache(0)
    repeated = next(v for v in range(V) if model.sample([3] + [v] * 4, 1, top_k=1) != [v])
    model.set_cache(50, 0.0, 0.99)
    assert model.sample([3] + [repeated] * 4, 3, top_k=1) == [repeated] * 3


def test_target_log_probs_of_both_heads_equal_the_whole_distribution():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 4, 16))
    targets = rng.integers(0, 10, (3, 4))
    head = AdaptiveSoftmax(16, 10, [3, 6], dtype=np.float64, rng=rng)
    want = np.take_along_axis(head.log_prob(h), targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(head.target_log_prob(h, targets), want, rtol=1e-12)
    scores = rng.normal(size=(3, 4, 10)) * 30    # large scores: must stay stable
    ls = scores - scores.max(-1, keepdims=True)
    ls -= np.log(np.exp(ls).sum(-1, keepdims=True))
    np.testing.assert_allclose(log_softmax_at(scores, targets),
                               np.take_along_axis(ls, targets[..., None], -1)[..., 0],
                               rtol=1e-12)
    with pytest.raises(ValueError, match="labels"):
        log_softmax_at(scores, targets + 10)


def test_config_round_trip_and_runs_saved_before_the_cache():
    model = make(cache_size=7, theta=0.5, lam=0.1)
    cfg = model.config()
    assert (cfg["cache_size"], cfg["cache_theta"], cfg["cache_lambda"]) == (7, 0.5, 0.1)
    again = LanguageModelRNN.from_config(cfg)
    assert (again.cache.size, again.cache.theta, again.cache.lam) == (7, 0.5, 0.1)
    old = {k: v for k, v in cfg.items() if not k.startswith("cache")}
    assert LanguageModelRNN.from_config(old).cache is None
    assert "cache_size" not in LanguageModelRNN.from_config(old).config()


@pytest.mark.parametrize("size, theta, lam, fragment", [
    (-1, 1.0, 0.2, "cache_size"), (1.5, 1.0, 0.2, "cache_size"), (True, 1.0, 0.2, "cache_size"),
    (5, float("nan"), 0.2, "cache_theta"), (5, -1.0, 0.2, "cache_theta"),
    (5, 1.0, 1.0, "cache_lambda"), (5, 1.0, -0.1, "cache_lambda"), (5, "x", 0.2, "cache_theta"),
])
def test_bad_cache_values_are_refused(size, theta, lam, fragment):
    with pytest.raises(ValueError, match=fragment):
        make(cache_size=size, theta=theta, lam=lam)


def test_level_defaults_and_saved_configs():
    assert TrainConfig(level="word").validate().cache_size == 1000
    assert TrainConfig(level="char").validate().cache_size == 0
    assert TrainConfig(level="word", cache_size=0).validate().cache_size == 0
    saved = TrainConfig(level="word").validate().to_dict()
    for k in ("cache_size", "cache_theta", "cache_lambda"):
        del saved[k]
    assert TrainConfig.from_dict(saved).cache_size == 0   # a run from before the cache
    with pytest.raises(ValueError, match="--cache_lambda"):
        TrainConfig(level="word", cache_lambda=1).validate()


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache_run")
    (d / "c.txt").write_text(corpus_text(600), encoding="utf-8")
    proc = run_module("lm.train", ["c.txt", "--level", "word", "--max_steps", "4",
                                   "--eval_every", "2", "--hidden_size", "16",
                                   "--cache_size", "50", "--threads", "1",
                                   "--out_dir", "run"], d)
    assert proc.returncode == 0, proc.stderr
    return d


def test_the_run_keeps_its_cache_and_the_clis_can_turn_it_off(word_run):
    cfg = json.loads((word_run / "run" / "config.json").read_text(encoding="utf-8"))
    assert cfg["model"]["cache_size"] == cfg["train"]["cache_size"] == 50
    on = run_module("lm.evaluate", ["--checkpoint", "run", "c.txt"], word_run)
    off = run_module("lm.evaluate", ["--checkpoint", "run", "c.txt", "--cache_size", "0"],
                     word_run)
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert "cache      the last 50 tokens of each stream" in on.stdout
    assert "cache      off" in off.stdout
    loss = [next(x for x in p.stdout.splitlines() if x.startswith("loss")) for p in (on, off)]
    assert loss[0] != loss[1]
    sample = run_module("lm.sample", ["--checkpoint", "run", "--start", "the", "--length", "5",
                                      "--seed", "1"], word_run)
    assert sample.returncode == 0, sample.stderr


@pytest.mark.parametrize("module, args", [
    ("lm.evaluate", ["--checkpoint", "run", "c.txt", "--cache_size", "-2"]),
    ("lm.sample", ["--checkpoint", "run", "--cache_size", "x"]),
    ("lm.train", ["c.txt", "--level", "word", "--cache_lambda", "1", "--out_dir", "other"]),
    ("lm.train", ["--resume", "--out_dir", "run", "--cache_size", "9"]),
])
def test_bad_cache_flags_are_one_line_exit_2(word_run, module, args):
    before = (word_run / "run" / "config.json").read_bytes()
    assert_clean_error(run_module(module, args, word_run), "--cache")
    assert (word_run / "run" / "config.json").read_bytes() == before


def test_a_cache_too_large_for_memory_is_refused_before_scoring(word_run):
    proc = run_module("lm.evaluate", ["--checkpoint", "run", "c.txt", "--cache_size", "1000000",
                                      "--batch_size", "1000", "--seq_length", "1000"], word_run)
    assert_clean_error(proc, "needs about")
