"""Fuzzing: 10,000 damaged copies of a checkpoint and hypothesis-made metadata.

Every outcome must be the original arrays or a CheckpointError: never another exception,
never different arrays, never a hang.
"""
import io
import json
import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import mutations
from lm.storage.checkpoint import (CheckpointError, load_arrays, load_checkpoint, parse_json,
                           read_json, rng_to_array, save_checkpoint, write_run_metadata)

V, E, H = 6, 3, 2
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def reference_arrays():
    rng = np.random.default_rng(7)
    params = {"embed.W": rng.standard_normal((V, E)).astype(np.float32),
              "rnn0.Wx": rng.standard_normal((E, 4 * H)).astype(np.float32),
              "rnn0.Wh": rng.standard_normal((H, 4 * H)),
              "head.b": rng.standard_normal(V).astype(np.float32)}
    return params, {"adam.t": 9}, {"rng": rng_to_array(rng), "mask": np.array([True, False]),
                                   "pos": np.arange(3, dtype=np.int32)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    params, optim, state = reference_arrays()
    config = {"kind": "language_model", "train": {}, "data": {},
              "model": {"vocab_size": V, "embed_size": E, "hidden_size": H, "cell": "lstm",
                        "num_layers": 1, "dropout": 0.0, "tie_weights": False}}
    write_run_metadata(d, config, {"itos": list("abcdef"), "level": "char"})
    save_checkpoint(d, "best.npz", params, optim=optim, state=state)
    return d


def test_ten_thousand_damaged_checkpoints(run_dir):
    data = (run_dir / "best.npz").read_bytes()
    ref = load_arrays(io.BytesIO(data))
    cases = mutations(data, np.random.default_rng(0))
    assert len(cases) == 10_000 and len(data) < 5000
    same = refused = 0
    slowest = 0.0
    for case in cases:
        t0 = time.perf_counter()
        try:
            out = load_arrays(io.BytesIO(case))
        except CheckpointError:
            refused += 1
        else:
            assert list(out) == list(ref)
            for k in ref:
                assert out[k].dtype == ref[k].dtype and out[k].shape == ref[k].shape
                assert np.array_equal(out[k], ref[k]), k
            same += 1
        slowest = max(slowest, time.perf_counter() - t0)
    assert same + refused == 10_000
    assert refused > 9000 and same > 0  # flips in unused fields (timestamps) are harmless
    assert slowest < 1.0, slowest


# ---- metadata ---------------------------------------------------------------------

def json_values(max_leaves=10):
    scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | \
        st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
    return st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) |
                        st.dictionaries(st.text(max_size=5), kids, max_size=3),
                        max_leaves=max_leaves)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_give_a_dict_or_checkpoint_error(data):
    try:
        assert isinstance(parse_json(data), dict)
    except CheckpointError:
        pass


@FUZZ
@given(json_values(), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-4e400"]),
       st.data())
def test_nan_and_infinity_literals(value, literal, data):
    text = json.dumps({"model": value, "lr": 0.5})
    spots = [i for i in range(len(text)) if text.startswith("0.5", i)]
    i = data.draw(st.sampled_from(spots))
    with pytest.raises(CheckpointError, match="not allowed|overflows"):
        parse_json(text[:i] + literal + text[i + 3:])


@FUZZ
@given(st.dictionaries(st.text(max_size=6), json_values(4), min_size=1, max_size=4),
       json_values(4), st.integers(0, 5), st.data())
def test_duplicate_keys_at_any_depth(d, other, depth, data):
    key = data.draw(st.sampled_from(sorted(d)))
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in d.items())
    text = "{" + body + f", {json.dumps(key)}: {json.dumps(other)}" + "}"
    for _ in range(depth):
        text = '{"a": [' + text + "]}"
    with pytest.raises(CheckpointError, match="duplicate key"):
        parse_json(text)


@FUZZ
@given(st.integers(33, 20_000), st.lists(st.booleans(), min_size=1, max_size=8))
def test_deep_nesting(depth, pattern):
    opens = "".join('{"k": ' if pattern[i % len(pattern)] else "[" for i in range(depth))
    closes = "".join("}" if pattern[i % len(pattern)] else "]" for i in reversed(range(depth)))
    with pytest.raises(CheckpointError, match="nesting"):
        parse_json("{" + '"x": ' + opens + "1" + closes + "}")


@FUZZ
@given(st.integers(2**64 + 1, 10**100).map(str)
       | st.tuples(st.integers(1, 9), st.integers(0, 9), st.integers(21, 100_000)).map(
           lambda t: str(t[0]) + str(t[1]) * t[2]),  # beyond Python's 4300-digit limit
       st.booleans())
def test_huge_integers(digits, negative):
    with pytest.raises(CheckpointError, match="too large"):
        parse_json('{"model": {"vocab_size": ' + "-" * negative + digits + "}}")


def _replace_and_load(run_dir, name, obj):
    """Write `obj` (JSON text or value) as run_dir/name, load, then restore the file."""
    path = run_dir / name
    old = path.read_bytes()
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    try:
        load_checkpoint(run_dir)
    finally:
        path.write_bytes(old)


WRONG = {
    "vocab_size": st.sampled_from([0, -1, 2**31, True, 6.0, "6", None, [6]]),
    "embed_size": st.sampled_from([0, -3, False, 3.5, "3", {}]),
    "hidden_size": st.sampled_from([0, -2, None, "2", 2.0]),
    "num_layers": st.sampled_from([0, -1, 1.5, "1", True]),
    "cell": st.sampled_from(["LSTM", "transformer", 1, None, ["lstm"]]),
    "dropout": st.sampled_from([1.0, -0.1, "0", True, None, 2]),
    "tie_weights": st.sampled_from([0, 1, "true", None]),
}


@FUZZ
@given(st.sampled_from(sorted(WRONG)), st.data())
def test_wrong_types_in_config(run_dir, field, data):
    config = read_json(run_dir / "config.json")
    config["model"][field] = data.draw(WRONG[field])
    with pytest.raises(CheckpointError, match="config.json"):
        _replace_and_load(run_dir, "config.json", config)


@FUZZ
@given(json_values(6).filter(lambda v: not isinstance(v, dict)), st.sampled_from(
    ["kind", "model", "train", "data", None]))
def test_wrong_shapes_of_config(run_dir, value, where):
    config = read_json(run_dir / "config.json")
    if where is None:
        config = value
    else:
        config[where] = value
    with pytest.raises(CheckpointError, match="config.json"):
        _replace_and_load(run_dir, "config.json", config)


@FUZZ
@given(st.lists(st.text(max_size=3), max_size=12).filter(lambda t: len(t) != V
                                                          or len(set(t)) != V)
       | st.lists(st.integers() | st.none(), min_size=V, max_size=V))
def test_vocabulary_embedding_mismatch(run_dir, itos):
    with pytest.raises(CheckpointError, match="vocab.json"):
        _replace_and_load(run_dir, "vocab.json", {"itos": itos, "level": "char"})


@FUZZ
@given(st.integers(1, 50).filter(lambda v: v != V))
def test_config_and_vocab_agree_but_not_with_embedding(run_dir, vocab_size):
    config = read_json(run_dir / "config.json")
    config["model"]["vocab_size"] = vocab_size
    vocab = {"itos": [f"t{i}" for i in range(vocab_size)]}
    old = (run_dir / "vocab.json").read_bytes()
    (run_dir / "vocab.json").write_text(json.dumps(vocab))
    try:
        with pytest.raises(CheckpointError, match="embed.W"):
            _replace_and_load(run_dir, "config.json", config)
    finally:
        (run_dir / "vocab.json").write_bytes(old)


def test_the_run_dir_still_loads_after_fuzzing(run_dir):
    config, vocab, arrays = load_checkpoint(run_dir)
    assert arrays["param/embed.W"].shape == (V, E) and len(vocab["itos"]) == V
    assert not [n for n in os.listdir(run_dir) if ".tmp-" in n]
