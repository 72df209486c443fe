"""LanguageModelRNN: whole-model gradient checks, state carrying, sampling, config, overfitting."""
import json
import math

import numpy as np
import pytest

from lm.layers.gradcheck import eval_numerical_gradient
from lm.models.language_model import LanguageModelRNN
from lm.training.optim import Adam
from lm.models.sampling import sample_from_logits
from lm.data.batch import Batch

CELLS = ["rnn", "lstm", "gru"]


def make(cell="lstm", V=5, E=4, H=3, seed=0, **kw):
    return LanguageModelRNN(V, E, H, cell=cell, dtype=np.float64, rng=np.random.default_rng(seed), **kw)


def batch(N=2, T=4, V=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def check_model_gradients(model, ids, targets, mask=None, state=None, rng=None):
    """Analytic grads of model.loss against centred differences, for every parameter.

    rng: the Generator the model's dropout draws from; its state is restored before every
    loss evaluation so that all evaluations use the same dropout masks.
    """
    saved = rng.bit_generator.state if rng is not None else None

    def f():
        if rng is not None:
            rng.bit_generator.state = saved
        return model.loss(Batch(ids, targets, mask), state=state)[0]

    f()
    analytic = {k: g.copy() for k, g in model.grads.items()}
    assert analytic, "model has no parameters"
    for name, p in model.params.items():
        num = eval_numerical_gradient(lambda _: f(), p, h=1e-6)
        np.testing.assert_allclose(analytic[name], num, rtol=1e-5, atol=1e-8, err_msg=name)
        assert np.abs(num).max() > 0 or name == "embed.W", f"{name}: zero gradient"
    return analytic


@pytest.mark.parametrize("cell", CELLS)
def test_param_names(cell):
    model = make(cell, num_layers=2)
    names = list(model.params)
    assert names[0] == "embed.W" and names[-2:] == ["head.W", "head.b"]
    assert {n.split(".")[0] for n in names} == {"embed", "rnn0", "rnn1", "head"}
    assert all(n.count(".") == 1 for n in names)
    assert model.params["head.W"].shape == (3, 5) and model.params["embed.W"].shape == (5, 4)
    assert set(model.grads) == set(model.params)
    assert all(model.grads[n].shape == model.params[n].shape for n in names)
    tied = make(cell, E=3, tie_weights=True)
    assert "head.W" not in tied.params and "head.b" in tied.params


def test_tied_embedding_starts_at_the_output_layers_scale():
    """Tied rows start U(-1/sqrt(H), 1/sqrt(H)) (first scores of order 1, as an untied
    output layer's), untied ones N(0, 1) as PyTorch's nn.Embedding."""
    H = 64
    tied = LanguageModelRNN(500, H, H, tie_weights=True, rng=0).params["embed.W"]
    untied = LanguageModelRNN(500, H, H, rng=0).params["embed.W"]
    assert np.abs(tied).max() <= 1 / np.sqrt(H) and tied.std() > 0.5 / np.sqrt(3 * H)
    assert 0.9 < untied.std() < 1.1


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_whole_model_with_mask(cell):
    model = make(cell)
    ids, targets = batch(N=3, T=4)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    check_model_gradients(model, ids, targets, mask)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_tied_weights(cell):
    model = make(cell, E=3, H=3, tie_weights=True)
    ids, targets = batch(N=2, T=3)
    check_model_gradients(model, ids, targets)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_two_layers_with_dropout_and_incoming_state(cell):
    rng = np.random.default_rng(5)
    model = LanguageModelRNN(5, 4, 3, cell=cell, num_layers=2, dropout=0.3, dtype=np.float64,
                             rng=rng)
    ids, targets = batch(N=2, T=3)
    _, state = model.forward(ids)  # a non-zero carried state; it must take no gradient
    check_model_gradients(model, ids, targets, state=state, rng=rng)
    # dropout is really active in training mode
    model.train()
    assert not np.allclose(model.forward(ids)[0], model.forward(ids)[0])


def test_loss_is_mean_nll_per_valid_token():
    model = make("gru")
    ids, targets = batch(N=3, T=4)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    scores, _ = model.forward(ids)
    logp = scores - scores.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    loss, _ = model.loss(Batch(ids, targets, mask))
    assert loss == pytest.approx(nll[mask].mean(), rel=1e-12)
    loss, _ = model.loss(Batch(ids, targets))
    assert loss == pytest.approx(nll.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="valid"):
        model.loss(Batch(ids, targets, np.zeros_like(mask)))
    with pytest.raises(ValueError, match="shape"):
        model.loss(Batch(ids, targets[:, :2]))


def test_loss_zeroes_grads_first():
    model = make("lstm")
    ids, targets = batch()
    model.loss(Batch(ids, targets))
    once = {k: g.copy() for k, g in model.grads.items()}
    model.loss(Batch(ids, targets))
    for k in once:
        np.testing.assert_array_equal(model.grads[k], once[k])


@pytest.mark.parametrize("cell", CELLS)
def test_state_carried_over_two_halves_equals_whole(cell):
    model = make(cell, num_layers=2)
    ids, _ = batch(N=2, T=6)
    whole, s_whole = model.forward(ids)
    first, s = model.forward(ids[:, :2])
    second, s = model.forward(ids[:, 2:], s)
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, rtol=1e-12, atol=1e-12)
    for a, b in zip(s, s_whole):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    # and the state really matters
    fresh, _ = model.forward(ids[:, 2:])
    assert not np.allclose(fresh, second)


def test_returned_state_is_not_aliased_by_later_calls():
    model = make("lstm")
    ids, _ = batch(N=2, T=3)
    _, s = model.forward(ids)
    kept = [tuple(a.copy() for a in t) for t in s]
    model.forward(ids[:, ::-1].copy())
    for a, b in zip(s, kept):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def reference_sample(model, prompt, length, rng, **kw):
    """Sampling by re-running the whole sequence for every token (slow, obviously right)."""
    model.eval()
    seq = list(prompt)
    for _ in range(length):
        scores, _ = model.forward(np.array([seq]))
        seq.append(sample_from_logits(scores[0, -1], rng=rng, **kw))
    model.train()
    return seq[len(prompt):]


@pytest.mark.parametrize("cell", CELLS)
def test_top_k_one_sample_equals_greedy_recomputation(cell):
    model = LanguageModelRNN(7, 6, 8, cell=cell, num_layers=2, dropout=0.5, rng=1)
    model.train()
    out = model.sample([1, 2, 3], 12, top_k=1)
    assert out == reference_sample(model, [1, 2, 3], 12, None, top_k=1)
    assert model.training  # mode restored


@pytest.mark.parametrize("cell", CELLS)
def test_incremental_sampling_equals_full_recomputation(cell):
    model = LanguageModelRNN(7, 6, 8, cell=cell, num_layers=2, dropout=0.5, dtype=np.float64,
                             rng=2)
    for p in model.params.values():
        p *= 3  # larger weights: the carried state then changes what is sampled
    out = model.sample([1, 2], 20, temperature=1.3, rng=np.random.default_rng(5))
    ref = reference_sample(model, [1, 2], 20, np.random.default_rng(5), temperature=1.3)
    assert out == ref and len(set(out)) >= 3


def test_sampling_reproducible_and_stops():
    model = LanguageModelRNN(7, 6, 8, cell="lstm", rng=1)
    a = model.sample([0], 30, temperature=1.5, rng=np.random.default_rng(3))
    b = model.sample([0], 30, temperature=1.5, rng=np.random.default_rng(3))
    c = model.sample([0], 30, temperature=1.5, rng=np.random.default_rng(4))
    assert a == b and a != c and len(a) == 30
    assert all(isinstance(t, int) and 0 <= t < 7 for t in a)
    stop = a[5]
    cut = model.sample([0], 30, temperature=1.5, rng=np.random.default_rng(3), stop_id=stop)
    assert cut == a[:a.index(stop)]
    gen = model.generate([0], 30, temperature=1.5, rng=np.random.default_rng(3))
    assert [next(gen) for _ in range(3)] == a[:3]
    assert model.sample([0], 0) == []


def test_sampling_top_k_stays_within_k_most_likely():
    model = LanguageModelRNN(9, 5, 6, cell="gru", rng=2)
    rng = np.random.default_rng(0)
    model.eval()
    scores, _ = model.forward(np.array([[4, 2]]))
    allowed = set(np.argsort(-scores[0, -1])[:3].tolist())
    firsts = {model.sample([4, 2], 1, temperature=2.0, top_k=3, rng=rng)[0] for _ in range(300)}
    assert firsts <= allowed and len(firsts) == 3


def test_sample_errors():
    model = make("rnn")
    with pytest.raises(ValueError, match="prompt"):
        model.sample([], 5)
    with pytest.raises(ValueError, match="temperature"):
        model.sample([1], 5, temperature=0)
    with pytest.raises(ValueError):
        model.sample([99], 5)  # id outside the vocabulary


def test_config_round_trip_and_errors():
    model = make("gru", num_layers=2, dropout=0.25)
    cfg = model.config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg == {"vocab_size": 5, "embed_size": 4, "hidden_size": 3, "cell": "gru",
                   "num_layers": 2, "dropout": 0.25, "tie_weights": False, "softmax": "full"}
    other = LanguageModelRNN.from_config(cfg, dtype=np.float64, rng=9)
    for k, p in model.params.items():
        other.params[k][...] = p
    ids, _ = batch()
    model.eval(); other.eval()
    np.testing.assert_array_equal(model.forward(ids)[0], other.forward(ids)[0])
    with pytest.raises(ValueError, match="unknown"):
        LanguageModelRNN.from_config({**cfg, "colour": 1})
    with pytest.raises(ValueError, match="tie_weights"):
        LanguageModelRNN(5, 4, 3, tie_weights=True)
    with pytest.raises(ValueError, match="lstm"):
        LanguageModelRNN(5, 4, 3, cell="transformer")
    with pytest.raises(ValueError):
        LanguageModelRNN(5, 0, 3)
    with pytest.raises(ValueError):
        LanguageModelRNN(5, 4, 3, dropout=1.0)


def test_float32_by_default():
    model = LanguageModelRNN(5, 4, 3)
    assert all(p.dtype == np.float32 for p in model.params.values())
    scores, _ = model.forward(np.array([[1, 2]]))
    assert scores.dtype == np.float32


@pytest.mark.parametrize("cell", CELLS)
def test_tiny_model_overfits_a_repeated_sequence(cell):
    V = 5
    seq = np.array([0, 1, 2, 3, 4, 2, 1, 0, 3] * 6)  # deterministic given 2 tokens of context
    ids, targets = seq[None, :-1], seq[None, 1:]
    model = LanguageModelRNN(V, 8, 16, cell=cell, rng=0)
    opt = Adam(model, lr=0.02)
    first = model.loss(Batch(ids, targets))[0]
    for _ in range(250):
        loss, _ = model.loss(Batch(ids, targets))
        opt.step()
    assert first > 0.8 * math.log(V)
    assert loss < 0.1, loss
