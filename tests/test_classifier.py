"""SentimentClassifier: gradient checks (every encoder, masks, pooling, L2), padding
invariance, parameter names, batching, training to full accuracy on the phrase set."""

import numpy as np
import pytest

from conftest import replayed_loss
from lm.layers.gradcheck import eval_numerical_gradient, rel_error
from lm.models.classifier import SentimentClassifier
from lm.models.encoder import Encoder
from lm.data.batch import Batch, pad_batch
from lm.data.batchers import LengthBatcher
from lm.data.labeled import LabeledIds

V, E, H, C = 6, 3, 3, 3


def make(cell="lstm", bidirectional=False, pool="mean", dropout=0.0, num_layers=1, seed=0):
    return SentimentClassifier.build(V, E, H, cell=cell, num_layers=num_layers,
                                     bidirectional=bidirectional, pool=pool, dropout=dropout,
                                     num_classes=C, dtype=np.float64,
                                     rng=np.random.default_rng(seed))


def batch(seed=1):
    """ids (3, 4) with lengths 4, 2, 1 and garbage ids on the padded steps."""
    ids = np.random.default_rng(seed).integers(0, V, (3, 4))
    mask = np.zeros((3, 4), dtype=bool)
    for n, length in enumerate([4, 2, 1]):
        mask[n, :length] = True
    return ids, mask, np.array([0, 2, 1])


KINDS = [("bag", False), ("rnn", False), ("gru", False), ("lstm", False),
         ("rnn", True), ("gru", True), ("lstm", True)]


# every encoder kind with mean pooling; max and last on a bag, a one-way and a two-way one
GRAD_CASES = [(cell, bi, "mean") for cell, bi in KINDS] + \
    [(cell, bi, pool) for pool in ("max", "last")
     for cell, bi in (("bag", False), ("lstm", False), ("gru", True))]


@pytest.mark.parametrize("cell,bi,pool", GRAD_CASES)
def test_gradient_check_whole_classifier(cell, bi, pool):
    model = make(cell, bi, pool, seed=3)
    ids, mask, y = batch()
    model.train()
    loss, report = model.loss(Batch(ids, y, mask))
    assert report["count"] == 3 and 0 <= report["correct"] <= 3
    analytic = {k: g.copy() for k, g in model.grads.items()}
    assert set(analytic) == set(model.params)

    def f(_):
        return model.loss(Batch(ids, y, mask))[0]

    for name, p in model.params.items():
        num = eval_numerical_gradient(f, p, h=1e-5)
        assert rel_error(analytic[name], num) < 1e-5, (name, rel_error(analytic[name], num))
    # padded garbage ids must get no embedding gradient: only rows seen on valid steps
    unused = np.setdiff1d(np.arange(V), np.unique(ids[mask]))
    assert not analytic["embed.W"][unused].any()


def test_weight_decay_is_the_optimisers_and_spares_biases():
    from lm.training.optim import SGD

    model = make("lstm", seed=3)
    model.zero_grad()
    before = {k: v.copy() for k, v in model.params.items()}
    SGD(model, lr=0.5, weight_decay=0.1, decay=model.decayed_names()).step()
    for name, p in model.params.items():  # zero gradients: only the decay moves weights
        want = before[name] * (1 - 0.5 * 0.1) if p.ndim >= 2 else before[name]
        np.testing.assert_allclose(p, want, err_msg=name)


def test_gradient_check_two_layers_with_dropout():
    model = make("rnn", True, "max", dropout=0.3, num_layers=2, seed=4)
    ids, mask, y = batch(2)
    f, analytic = replayed_loss(model, Batch(ids, y, mask))
    for name, p in model.params.items():
        assert rel_error(analytic[name], eval_numerical_gradient(f, p, h=1e-5)) < 1e-5, name


@pytest.mark.parametrize("cell,bi", KINDS)
@pytest.mark.parametrize("pool", ["mean", "max", "last"])
def test_padding_never_changes_a_prediction(cell, bi, pool):
    model = make(cell, bi, pool, seed=5)
    model.params["embed.W"][...] *= 3  # larger activations make a leak visible
    sentence = np.array([3, 1, 4])
    alone = model.predict_proba(sentence[None], np.ones((1, 3), bool))
    longer = [np.array([2, 5, 4, 1, 0, 3]), sentence, np.array([4, 4, 5, 2, 1])]
    ids, mask = pad_batch(longer, pad_id=5)  # a real token id as padding: must not matter
    probs = model.predict_proba(ids, mask)
    np.testing.assert_allclose(probs[1], alone[0], rtol=1e-12, atol=1e-12)
    assert abs(probs.sum(axis=1) - 1).max() < 1e-12


def test_parameter_names_are_the_language_models():
    flat = make("lstm").params
    assert set(flat) == {"embed.W", "rnn0.Wx", "rnn0.Wh", "rnn0.b", "head.W", "head.b"}
    assert flat["head.W"].shape == (H, C)
    bi = make("gru", True).params
    assert {"rnn0.fwd.Wx", "rnn0.bwd.bh", "head.W"} <= set(bi)
    assert bi["head.W"].shape == (2 * H, C)
    assert set(make("bag").params) == {"embed.W", "head.W", "head.b"}
    enc = Encoder(V, E, H, cell="rnn")
    model = SentimentClassifier(enc, num_classes=2)
    assert model.params["rnn0.Wx"] is enc.params["rnn0.Wx"]  # the module itself, no copy


def test_bad_arguments():
    enc = Encoder(V, E, H, cell="rnn", bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        SentimentClassifier(enc, bidirectional=False)
    SentimentClassifier(enc, bidirectional=True)
    with pytest.raises(ValueError, match="mean, max, last"):
        SentimentClassifier(enc, pool="sum")
    with pytest.raises(ValueError, match="num_classes"):
        SentimentClassifier(enc, num_classes=1)
    with pytest.raises(ValueError, match="Encoder"):
        SentimentClassifier("lstm")


def test_config_round_trip():
    model = make("gru", True, "last", dropout=0.2)
    again = SentimentClassifier.from_config(model.config(), dtype=np.float64)
    assert again.config() == model.config()
    assert {k: v.shape for k, v in again.params.items()} == \
        {k: v.shape for k, v in model.params.items()}


def test_bidirectional_last_reads_backward_half_at_step_zero():
    model = make("rnn", True, "last")
    ids, mask, _ = batch()
    model.eval()
    model.forward(ids, mask)
    h, _ = model.encoder.forward(ids, mask=mask)
    feats = model.head._x2  # the pooled features the head saw
    np.testing.assert_allclose(feats[:, H:], h[:, 0, H:])
    np.testing.assert_allclose(feats[1, :H], h[1, 1, :H])  # row 1 has 2 valid steps


def test_pad_batch_and_length_batches():
    ids, mask = pad_batch([np.array([1, 2]), np.array([3]), np.array([4, 5, 6])])
    assert ids.tolist() == [[1, 2, 0], [3, 0, 0], [4, 5, 6]]
    assert mask.sum(axis=1).tolist() == [2, 1, 3]
    lengths = np.random.default_rng(0).integers(1, 50, 500)
    evals = LengthBatcher(lengths, 16, shuffle=False)._batches  # sorted within each pool
    assert np.concatenate(evals).tolist() == np.argsort(lengths, kind="stable").tolist()
    train = LengthBatcher(lengths, 16, np.random.default_rng(1))._batches
    flat = np.concatenate(train)
    assert sorted(flat.tolist()) == list(range(500))  # every example once
    # bucketing: padding is far below that of random batches
    pad = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in train)
    rand = np.random.default_rng(2).permutation(500).reshape(-1, 20)
    pad_random = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in rand)
    assert pad < pad_random / 4


def test_training_reaches_full_accuracy_on_phrases():
    """The 58 training phrases (a fixed copy, so no LM_DATA_DIR needed), bag of words:
    a tiny LSTM must fit them all."""
    from lm.data.labeled import TextBatcher, build_vocab, encode_texts
    from lm.training.evaluation import evaluate_classifier
    from lm.training.optim import Adam, clip_grad_norm

    rows = [line.split("\t") for line in PHRASES.strip().split("\n")]
    texts, labels = [t for _, t in rows], np.array([int(y) for y, _ in rows])
    vocab = build_vocab(texts, "word", True, 1, drop_spaces=True)
    data = LabeledIds(texts, encode_texts(texts, vocab, True), labels)
    rng = np.random.default_rng(0)
    model = SentimentClassifier.build(len(vocab), 16, 16, cell="lstm", rng=rng)
    opt = Adam(model, 0.02)
    batches = TextBatcher(data, 8, rng)
    for _ in range(25 * len(batches)):
        model.loss(batches.next_batch())
        clip_grad_norm(model.grads, 5.0)
        opt.step()
    ev = evaluate_classifier(model, data)
    assert ev["acc"] == 1.0
    assert ev["loss"] < 0.1


PHRASES = """
1\tgood
0\tbad
1\thappy
0\tsad
0\tnot good
1\tnot bad
0\tnot happy
1\tnot sad
1\tvery good
0\tvery bad
0\ti am not happy
0\tthis is not good
1\ti am not bad
1\tthis is not sad
1\ti am good not bad
0\ti am bad not good
0\tthis is not good and not happy
0\ti am not at all good
1\ti am not at all bad
0\ti am not at all happy
1\tthis is not at all sad
1\ti was good and not bad earlier
0\ti was not good and not happy earlier
1\ti am not at all bad or sad right now
0\ti am not at all good or happy right now
"""
