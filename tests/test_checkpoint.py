"""Checkpoint round trips, what the writer refuses, and the run-directory API."""
import json
import os

import numpy as np
import pytest

from lm.storage.checkpoint import (CheckpointError, copy_into_params, load_arrays, load_checkpoint,
                           load_model, read_json, rng_from_array, rng_to_array, save_arrays,
                           save_checkpoint, sections, verify_against_model, write_json,
                           write_run_metadata)

V, E, H = 7, 3, 4


def fake_params(rng):
    """Parameters shaped like a 1-layer LSTM language model (V=7, E=3, H=4)."""
    shapes = {"embed.W": (V, E), "rnn0.Wx": (E, 4 * H), "rnn0.Wh": (H, 4 * H),
              "rnn0.b": (4 * H,), "head.W": (H, V), "head.b": (V,)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def make_run(tmp_path, rng=None):
    rng = rng or np.random.default_rng(0)
    params = fake_params(rng)
    config = {"kind": "language_model", "train": {"lr": 0.002}, "data": {},
              "model": {"vocab_size": V, "embed_size": E, "hidden_size": H,
                        "cell": "lstm", "num_layers": 1, "dropout": 0.0,
                        "tie_weights": False}}
    vocab = {"itos": ["<unk>"] + list("abcdef"), "level": "char"}
    write_run_metadata(tmp_path, config, vocab)
    save_checkpoint(tmp_path, "best.npz", params,
                    optim={"adam.t": 3, "adam.m.embed.W": np.zeros((V, E))},
                    state={"step": 12, "rng": rng_to_array(rng)})
    return params, config, vocab


# ---- round trips --------------------------------------------------------------------

def test_save_load_round_trip_every_allowed_dtype(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {f"a/{dt}": (rng.standard_normal((2, 3)) * 50).astype(dt)
              for dt in ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]}
    arrays.update({"flags": np.array([True, False]), "step": np.int64(5),
                   "empty": np.zeros((0, 3)), "r4": np.ones((1, 2, 1, 3), np.float32),
                   "fortran": np.asfortranarray(rng.standard_normal((3, 2)))})
    save_arrays(tmp_path / "a.npz", arrays)
    out = load_arrays(tmp_path / "a.npz")
    assert list(out) == list(arrays)
    for k, a in arrays.items():
        assert out[k].dtype == np.asarray(a).dtype and out[k].shape == np.shape(a), k
        np.testing.assert_array_equal(out[k], a)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:  # plain numpy reads it too
        np.testing.assert_array_equal(z["a/f8"], arrays["a/f8"])


def test_save_is_deterministic_and_reads_numpy_savez(tmp_path):
    a = {"x": np.arange(6.0).reshape(2, 3)}
    save_arrays(tmp_path / "1.npz", a)
    save_arrays(tmp_path / "2.npz", a)
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    np.savez(tmp_path / "s.npz", **a)
    np.savez_compressed(tmp_path / "c.npz", **a)
    for name in ("s.npz", "c.npz"):
        np.testing.assert_array_equal(load_arrays(tmp_path / name)["x"], a["x"])


@pytest.mark.parametrize("bad", [{"x": np.array(["s"])}, {"x": np.ones(2, complex)},
                                 {"../x": np.ones(2)}, {"x": np.array([1.0, np.nan])},
                                 {"x": np.ones((1,) * 5)}, {"x": np.ones(2, np.float16)}])
def test_save_refuses_what_load_would_refuse(tmp_path, bad):
    with pytest.raises(ValueError):
        save_arrays(tmp_path / "a.npz", bad)
    assert os.listdir(tmp_path) == []


def test_expected_shapes(tmp_path):
    save_arrays(tmp_path / "a.npz", {"w": np.ones((2, 3)), "b": np.ones(3)})
    assert load_arrays(tmp_path / "a.npz", expected={"w": (2, 3), "b": None})
    for expected, word in [({"w": (2, 3)}, "'b'"), ({"w": (2, 3), "b": (3,), "c": (1,)}, "'c'"),
                           ({"w": (3, 2), "b": (3,)}, "'w'")]:
        with pytest.raises(CheckpointError, match=word):
            load_arrays(tmp_path / "a.npz", expected=expected)


def test_missing_file_is_file_not_found_and_directory_is_checkpoint_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_arrays(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_arrays(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "nope.json")


# ---- run directories -----------------------------------------------------------------

def test_checkpoint_round_trip_and_sections(tmp_path):
    params, config, vocab = make_run(tmp_path)
    config2, vocab2, arrays = load_checkpoint(tmp_path)
    assert config2 == config and vocab2 == vocab
    sec = sections(arrays)
    assert sorted(sec["param"]) == sorted(params)
    assert sec["optim"]["adam.t"] == 3 and sec["state"]["step"] == 12
    fresh = {k: np.zeros_like(v) for k, v in params.items()}
    ids = {k: id(v) for k, v in fresh.items()}
    copy_into_params(fresh, arrays)
    for k in params:
        assert id(fresh[k]) == ids[k]
        np.testing.assert_array_equal(fresh[k], params[k])


def test_rng_state_round_trip(tmp_path):
    rng = np.random.default_rng(123)
    rng.random(3)
    rng.integers(0, 10, size=1, dtype=np.uint32)  # leaves has_uint32 set
    save_checkpoint(tmp_path, "last.npz", {}, state={"rng": rng_to_array(rng)})
    again = rng_from_array(load_arrays(tmp_path / "last.npz")["state/rng"])
    assert np.array_equal(again.random(5), rng.random(5))
    with pytest.raises(CheckpointError):
        rng_from_array(np.zeros(6, np.uint64))


def test_verify_against_model_names_the_problem(tmp_path):
    params, _, _ = make_run(tmp_path)
    _, _, arrays = load_checkpoint(tmp_path)
    verify_against_model(arrays, params, vocab_size=V)
    cases = [
        ({**params, "rnn1.Wx": np.zeros((H, 4 * H))}, V, "missing parameter 'param/rnn1.Wx'"),
        ({**params, "rnn0.Wh": np.zeros((H, 3 * H))}, V, "'param/rnn0.Wh' has shape"),
        ({k: v for k, v in params.items() if k != "head.b"}, V, "unexpected.*head.b"),
        (params, V + 1, "8 tokens but the embedding has 7 rows"),
    ]
    for model_params, vs, msg in cases:
        with pytest.raises(CheckpointError, match=msg):
            verify_against_model(arrays, model_params, vocab_size=vs)
    bad = dict(arrays, **{"param/head.b": np.full(V, np.nan, np.float32)})
    with pytest.raises(CheckpointError, match="NaN"):
        verify_against_model(bad, params)
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(CheckpointError):  # a failed copy leaves params untouched
        copy_into_params({**params, "extra": np.zeros(2)}, arrays)
    assert all(np.array_equal(params[k], before[k]) for k in params)


@pytest.mark.parametrize("edit, msg", [
    (lambda c, v: c["model"].update(vocab_size=8), "8"),
    (lambda c, v: v["itos"].append("z"), "8 tokens"),
    (lambda c, v: c["model"].update(hidden_size=10**6), "hidden_size must be in \\[1, 65536\\]"),
    (lambda c, v: c["model"].update(hidden_size=60000), "implies at least"),
    (lambda c, v: c["model"].update(embed_size=5), "embed.W"),
    (lambda c, v: c["model"].update(cell="transformer"), "cell"),
    (lambda c, v: c.update(kind="gan"), "kind"),
])
def test_load_checkpoint_rejects_inconsistent_metadata(tmp_path, edit, msg):
    make_run(tmp_path)
    config, vocab = read_json(tmp_path / "config.json"), read_json(tmp_path / "vocab.json")
    edit(config, vocab)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match=msg):
        load_checkpoint(tmp_path)


def test_load_checkpoint_missing_things(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        load_checkpoint(tmp_path / "nope")
    make_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="last.npz"):
        load_checkpoint(tmp_path, "last.npz")
    with pytest.raises(ValueError, match="plain file name"):
        load_checkpoint(tmp_path, "../best.npz")
    save_arrays(tmp_path / "odd.npz", {"weights": np.ones(2)})
    with pytest.raises(CheckpointError, match="not under param/"):
        load_checkpoint(tmp_path, "odd.npz")


class TinyModel:
    """Stands in for a model class with from_config and flat params."""

    def __init__(self, vocab_size, embed_size, hidden_size, cell, **kw):
        if cell != "lstm":
            raise ValueError("only lstm here")
        self.params = fake_params(np.random.default_rng(99))

    @classmethod
    def from_config(cls, d):
        return cls(**d)


def test_load_model(tmp_path):
    params, _, _ = make_run(tmp_path)
    model, config, vocab, _ = load_model(tmp_path, TinyModel.from_config)
    for k in params:
        np.testing.assert_array_equal(model.params[k], params[k])
    config["model"]["cell"] = "gru"
    write_json(tmp_path / "config.json", config)
    with pytest.raises(CheckpointError, match="cannot be built"):
        load_model(tmp_path, TinyModel.from_config)


@pytest.mark.parametrize("cell, layers, tie", [("lstm", 1, False), ("gru", 2, True),
                                               ("rnn", 1, False)])
def test_real_language_model_save_load_gives_identical_outputs(tmp_path, cell, layers, tie):
    lmmod = pytest.importorskip("lm.models.language_model")
    model = lmmod.LanguageModelRNN(V, H if tie else E, H, cell=cell, num_layers=layers,
                                   tie_weights=tie, rng=np.random.default_rng(0))
    vocab = {"itos": ["<unk>"] + list("abcdef")}
    write_run_metadata(tmp_path, {"kind": "language_model", "model": model.config()}, vocab)
    save_checkpoint(tmp_path, "best.npz", model.params)
    again, _, _, _ = load_model(tmp_path, lmmod.LanguageModelRNN.from_config)
    ids = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(again.forward(ids)[0], model.forward(ids)[0])
