"""Encoder: names, validation, gradient checks (masks, bidirectional, bag), carried state."""
import numpy as np
import pytest

from lm.layers.gradcheck import check_layer_gradients
from lm.models.encoder import CELLS, Encoder

ALL = ["rnn", "lstm", "gru", "bag"]


def make(cell="lstm", V=6, E=4, H=3, seed=0, **kw):
    return Encoder(V, E, H, cell=cell, dtype=np.float64, rng=np.random.default_rng(seed), **kw)


def ids_mask(N=3, T=4, V=6, seed=1):
    ids = np.random.default_rng(seed).integers(0, V, (N, T))
    mask = np.zeros((N, T), dtype=bool)
    for n, length in enumerate([T, 2, 1][:N]):
        mask[n, :length] = True
    return ids, mask


def check(enc, ids, mask=None, state=None, rng=None):
    saved = rng.bit_generator.state if rng is not None else None

    def forward(x):
        if rng is not None:
            rng.bit_generator.state = saved
        return enc.forward(x, state=state, mask=mask)[0]

    errors = check_layer_gradients(enc, forward, enc.backward, [ids])
    assert set(errors) == set(enc.params)
    bad = {k: v for k, v in errors.items() if v > 1e-5}
    assert not bad, bad


def test_cells_dict_and_bad_cell():
    assert set(CELLS) == {"rnn", "lstm", "gru"}
    with pytest.raises(ValueError, match="rnn, lstm, gru, bag"):
        Encoder(5, 4, 3, cell="tanh")


@pytest.mark.parametrize("kw", [dict(vocab_size=0), dict(embed_size=-1), dict(hidden_size=2.5),
                                dict(num_layers=0), dict(dropout=-0.1), dict(dropout=1.0),
                                dict(vocab_size=True)])
def test_bad_sizes(kw):
    args = dict(vocab_size=5, embed_size=4, hidden_size=3)
    args.update(kw)
    with pytest.raises(ValueError):
        Encoder(**args)


def test_param_names_and_output_size():
    enc = make("lstm", num_layers=2)
    assert [n for n in enc.params if not n.startswith("rnn")] == ["embed.W"]
    assert {n.split(".")[0] for n in enc.params} == {"embed", "rnn0", "rnn1"}
    assert "rnn0.Wx" in enc.params and "rnn1.Wh" in enc.params
    assert enc.params["rnn0.Wx"].shape == (4, 12) and enc.params["rnn1.Wx"].shape == (3, 12)
    assert enc.output_size == 3
    bi = make("gru", num_layers=2, bidirectional=True)
    assert "rnn0.fwd.Wx" in bi.params and "rnn0.bwd.Wx" in bi.params
    assert bi.params["rnn1.fwd.Wx"].shape == (6, 9) and bi.output_size == 6
    bag = make("bag", num_layers=3)
    assert list(bag.params) == ["embed.W"] and bag.output_size == 4
    assert enc.config()["cell"] == "lstm"


@pytest.mark.parametrize("cell", ALL)
def test_forward_shapes_and_padding(cell):
    enc = make(cell)
    ids, mask = ids_mask()
    h, state = enc.forward(ids, mask=mask)
    assert h.shape == (3, 4, enc.output_size) and h.dtype == np.float64
    assert np.all(h[~mask] == 0)
    assert len(state) == (0 if cell == "bag" else 1)


@pytest.mark.parametrize("cell", ALL)
def test_gradients_with_mask(cell):
    enc = make(cell)
    ids, mask = ids_mask()
    check(enc, ids, mask)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_two_layers_dropout_and_state(cell):
    rng = np.random.default_rng(3)
    enc = Encoder(6, 4, 3, cell=cell, num_layers=2, dropout=0.4, dtype=np.float64, rng=rng)
    ids, _ = ids_mask(N=2, T=3)
    _, state = enc.forward(ids)
    check(enc, ids, state=state, rng=rng)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_bidirectional(cell):
    enc = make(cell, bidirectional=True, num_layers=2)
    ids, mask = ids_mask()
    check(enc, ids, mask)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_halves_equal_whole(cell):
    enc = make(cell, num_layers=2)
    ids, _ = ids_mask(N=2, T=5)
    whole, s_whole = enc.forward(ids)
    a, s = enc.forward(ids[:, :3])
    b, s = enc.forward(ids[:, 3:], state=s)
    np.testing.assert_allclose(np.concatenate([a, b], 1), whole, atol=1e-12)
    for t1, t2 in zip(s, s_whole):
        assert len(t1) == (2 if cell == "lstm" else 1)
        for x, y in zip(t1, t2):
            np.testing.assert_allclose(x, y, atol=1e-12)


def test_masked_state_is_taken_at_the_last_valid_step():
    enc = make("gru")
    ids, mask = ids_mask()
    _, s = enc.forward(ids, mask=mask)
    _, s_short = enc.forward(ids[1:2, :2])
    np.testing.assert_allclose(s[0][0][1], s_short[0][0][0], atol=1e-12)


def test_dropout_eval_mode_and_embedding_dropout():
    rng = np.random.default_rng(0)
    enc = Encoder(6, 4, 3, cell="bag", dropout=0.5, dtype=np.float64, rng=rng)
    ids, _ = ids_mask()
    h1 = enc.forward(ids)[0]
    assert np.any(h1 == 0)  # embedding dropout in training mode
    enc.eval()
    np.testing.assert_array_equal(enc.forward(ids)[0], enc.params["embed.W"][ids])
    off = Encoder(6, 4, 3, cell="bag", dropout=0.5, embed_dropout=False, dtype=np.float64, rng=0)
    np.testing.assert_array_equal(off.forward(ids)[0], off.params["embed.W"][ids])


def test_input_errors():
    enc = make("lstm")
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        enc.forward(np.array([1, 2]))
    with pytest.raises(ValueError, match="mask"):
        enc.forward(np.array([[1, 2]]), mask=np.ones((1, 3), bool))
    with pytest.raises(ValueError, match="state"):
        enc.forward(np.array([[1, 2]]), state=[None, None])
    bi = make("lstm", bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        bi.forward(np.array([[1, 2]]), state=[None])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "bag"])
def test_step_equals_forward_one_step_at_a_time(cell):
    enc = make(cell, num_layers=2, dropout=0.5)
    enc.eval()
    ids, _ = ids_mask(N=2, T=4)
    whole, _ = enc.forward(ids)
    state = None
    for t in range(4):
        h, state = enc.step(ids[:, t], state)
        np.testing.assert_allclose(h, whole[:, t], atol=1e-12)
    with pytest.raises(ValueError, match="bidirectional"):
        make("gru", bidirectional=True).step(ids[:, 0])
