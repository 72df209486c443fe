"""Seq2Seq: whole-model gradient checks in float64 (every cell, both decoder inputs,
bidirectional, masks), reversal inside the model, greedy decoding against the forward pass,
top-k, config round trip."""
import numpy as np
import pytest

from lm.data.batch import Batch
from lm.layers.gradcheck import eval_numerical_gradient
from lm.models.seq2seq import Seq2Seq

V, E, H = 7, 3, 3


def make(cell="lstm", decoder_input="teacher", bidirectional=False, reverse=True, seed=0,
         num_layers=1, dropout=0.0, feed_state=False):
    return Seq2Seq(V, E, H, cell=cell, num_layers=num_layers, bidirectional=bidirectional,
                   decoder_input=decoder_input, reverse=reverse, dropout=dropout,
                   max_target_len=5, feed_state=feed_state, dtype=np.float64,
                   rng=np.random.default_rng(seed))


def batch(seed=1):
    """Sources (3, 4) of lengths 4, 2, 3; targets (3, 3) of lengths 3, 1, 2; junk in padding."""
    rng = np.random.default_rng(seed)
    src = rng.integers(3, V, (3, 4))
    tgt = rng.integers(2, V, (3, 3))
    mask = np.arange(4)[None] < np.array([4, 2, 3])[:, None]
    tmask = np.arange(3)[None] < np.array([3, 1, 2])[:, None]
    return Batch(src, tgt, mask, tmask)


CASES = [(c, d, False, False) for c in ("rnn", "gru", "lstm") for d in ("teacher", "repeat")] \
    + [("lstm", "teacher", False, True), ("gru", "teacher", True, True)]


@pytest.mark.parametrize("cell,dec,bi,feed", CASES)
def test_gradient_check_whole_model(cell, dec, bi, feed):
    model = make(cell, dec, bi, seed=2, feed_state=feed)
    b = batch()
    loss, report = model.loss(b)
    assert report["count"] == 6 and 0 <= report["correct"] <= 6
    analytic = {k: g.copy() for k, g in model.grads.items()}
    assert set(analytic) == set(model.params)
    assert ("dec_embed.W" in model.params) == (dec == "teacher")

    def f(_):
        return model.loss(b)[0]

    for name, p in model.params.items():
        num = eval_numerical_gradient(f, p, h=1e-5)
        # rtol for the entries that matter, atol for those near zero: centred differences
        # of a loss of ~2 at h = 1e-5 carry ~1e-11 of rounding, which a relative error of a
        # 1e-6 entry turns into 1e-5 (BLAS summation order alone moved it across 1e-5)
        np.testing.assert_allclose(analytic[name], num, rtol=1e-5, atol=1e-9, err_msg=name)
        assert np.abs(analytic[name]).max() > 0 or name == "dec_embed.W", name


def test_gradient_check_two_layers_unmasked():
    model = make("lstm", "teacher", num_layers=2, seed=4)
    b = batch()
    b = Batch(b.inputs, b.targets)
    model.loss(b)
    analytic = {k: g.copy() for k, g in model.grads.items()}
    for name, p in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(b)[0], p, h=1e-5)
        np.testing.assert_allclose(analytic[name], num, rtol=1e-5, atol=1e-9, err_msg=name)


def test_padding_never_changes_the_loss():
    model = make("gru", "teacher")
    b = batch()
    junk_src = np.where(b.mask, b.inputs, 5)
    junk_tgt = np.where(b.target_mask, b.targets, 6)
    assert model.loss(b)[0] == pytest.approx(model.loss(Batch(junk_src, junk_tgt, b.mask,
                                                               b.target_mask))[0], abs=1e-12)


def test_reverse_inside_the_model_equals_hand_reversed_sources():
    a, r = make("lstm", reverse=True, seed=5), make("lstm", reverse=False, seed=5)
    b = batch()
    rev = b.inputs.copy()
    for n, L in enumerate(b.mask.sum(axis=1)):
        rev[n, :L] = rev[n, :L][::-1]
    sa = a.forward(b.inputs, b.targets, b.mask, b.target_mask)
    sr = r.forward(rev, b.targets, b.mask, b.target_mask)
    assert np.allclose(sa, sr, atol=1e-12)


@pytest.mark.parametrize("dec,feed", [("teacher", False), ("teacher", True), ("repeat", False)])
@pytest.mark.parametrize("bi", [False, True])
def test_greedy_decoding_agrees_with_the_forward_pass(dec, feed, bi):
    model = make("lstm", dec, bi, seed=6, feed_state=feed)
    b = batch()
    out = model.generate(b.inputs, b.mask, max_len=5)
    assert out.shape[0] == 3 and out.shape[1] <= 5
    # fed its own greedy tokens (teacher) or not at all (repeat), the forward pass's argmax
    # is the decoded sequence, step for step until each row's <eos>
    scores = model.forward(b.inputs, out, b.mask)
    pred = scores.argmax(axis=2)
    for n in range(3):
        row = out[n].tolist()
        end = row.index(model.eos_id) + 1 if model.eos_id in row else len(row)
        assert pred[n, :end].tolist() == row[:end]
        assert all(t == model.eos_id for t in row[end:])


def test_top_k_one_is_greedy_and_sampling_is_seeded():
    model = make("gru", "teacher", seed=7)
    b = batch()
    greedy = model.generate(b.inputs, b.mask)
    assert np.array_equal(model.generate(b.inputs, b.mask, top_k=1, rng=3), greedy)
    s1 = model.generate(b.inputs, b.mask, top_k=3, rng=np.random.default_rng(1))
    s2 = model.generate(b.inputs, b.mask, top_k=3, rng=np.random.default_rng(1))
    assert np.array_equal(s1, s2)


def test_config_round_trip_and_refusals():
    model = make("rnn", "teacher", True, feed_state=True)
    assert model.params["dec.Wx"].shape == (E + 2 * H, 2 * H)
    again = Seq2Seq.from_config(model.config(), dtype=np.float64)
    assert again.config() == model.config()
    assert {k: v.shape for k, v in again.params.items()} == \
        {k: v.shape for k, v in model.params.items()}
    with pytest.raises(ValueError, match="recurrent cell"):
        Seq2Seq(V, E, H, cell="bag")
    with pytest.raises(ValueError, match="decoder_input"):
        Seq2Seq(V, E, H, decoder_input="attention")
    with pytest.raises(ValueError, match="lacks"):
        Seq2Seq.from_config({"vocab_size": V})


def test_dropout_is_off_when_decoding():
    model = make("lstm", dropout=0.5, seed=8)
    b = batch()
    model.train()
    a = model.generate(b.inputs, b.mask)
    assert model.training  # mode restored
    assert np.array_equal(a, model.generate(b.inputs, b.mask))
