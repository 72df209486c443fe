"""The checkpoint format: safetensors files that lm writes and reads, and the files it
refuses: lying headers, oversized headers, forbidden dtypes, overlapping or gapped
offsets, pickles, damaged bytes (10,000 mutations), non-finite weights."""
import json
import pickle
import struct
import time

import numpy as np
import pytest

from conftest import mutations
from lm.storage.checkpoint import CheckpointError, load_arrays, save_arrays
from lm.storage.safe_tensors import MAX_HEADER, load_tensors, save_tensors


def reference():
    rng = np.random.default_rng(7)
    return {"param/embed.W": rng.standard_normal((6, 3)).astype(np.float32),
            "param/rnn0.Wh": rng.standard_normal((2, 8)),
            "optim/adam.t": np.asarray(9, dtype=np.int64),
            "state/rng": np.arange(6, dtype=np.uint64),
            "state/mask": np.array([True, False])}


def raw_file(header, data=b""):
    """A safetensors file from a header dict (or raw header bytes) and data bytes."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def test_round_trip_keeps_names_dtypes_shapes_and_metadata(tmp_path):
    ref = reference()
    path = tmp_path / "last.safetensors"
    save_arrays(path, ref)
    out = load_arrays(path)
    assert sorted(out) == sorted(ref)
    for k in ref:
        assert out[k].dtype == ref[k].dtype and out[k].shape == ref[k].shape, k
        assert np.array_equal(out[k], ref[k])
    save_tensors(path, ref, metadata={"config": "{}"})
    assert load_tensors(path, with_metadata=True)[1] == {"config": "{}"}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # written atomically


def test_what_lm_refuses_to_write(tmp_path):
    path = tmp_path / "x.safetensors"
    for bad, msg in [({"w": np.array([1.0, np.nan])}, "NaN"),
                     ({"w": np.zeros(2, np.float16)}, "dtype"),
                     ({"w": np.zeros(2, np.complex64)}, "dtype"),
                     ({"../w": np.zeros(2)}, "not allowed"),
                     ({"w": np.zeros((1,) * 5)}, "rank")]:
        with pytest.raises(ValueError, match=msg):
            save_tensors(path, bad)
    with pytest.raises(ValueError, match="strings"):
        save_tensors(path, {"w": np.zeros(2)}, metadata={"k": 1})
    assert not path.exists()


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
MALICIOUS = {
    "header beyond the file": struct.pack("<Q", 10**6) + b"{}",
    "header of 2**40 bytes": struct.pack("<Q", 2**40) + b"{}",
    "header over the limit": struct.pack("<Q", MAX_HEADER + 1) + b" " * 64,
    "too short": b"\x01\x00",
    "not json": raw_file(b"{not json}"),
    "a list": raw_file(b"[1, 2]"),
    "duplicate names": raw_file(b'{"w": ' + json.dumps(F32).encode() + b', "w": '
                                + json.dumps(F32).encode() + b"}", b"\0" * 8),
    "float16": raw_file({"w": {**F32, "dtype": "F16", "data_offsets": [0, 4]}}, b"\0" * 4),
    "bfloat16": raw_file({"w": {**F32, "dtype": "BF16", "data_offsets": [0, 4]}}, b"\0" * 4),
    "object-like dtype": raw_file({"w": {**F32, "dtype": "O"}}, b"\0" * 8),
    "negative dimension": raw_file({"w": {**F32, "shape": [-2]}}, b"\0" * 8),
    "rank 5": raw_file({"w": {**F32, "shape": [1, 1, 1, 1, 2]}}, b"\0" * 8),
    "fraction in shape": raw_file({"w": {**F32, "shape": [2.0]}}, b"\0" * 8),
    "huge claimed shape": raw_file({"w": {**F32, "shape": [10**6, 10**6]}}, b"\0" * 8),
    "offsets beyond data": raw_file({"w": {**F32, "data_offsets": [0, 800]}}, b"\0" * 8),
    "shape and offsets disagree": raw_file({"w": {**F32, "shape": [3]}}, b"\0" * 8),
    "overlapping tensors": raw_file({"a": F32, "b": F32}, b"\0" * 8),
    "gap between tensors": raw_file({"a": F32, "b": {**F32, "data_offsets": [12, 20]}},
                                    b"\0" * 20),
    "trailing bytes": raw_file({"a": F32}, b"\0" * 12),
    "bad name": raw_file({"../etc/passwd": F32}, b"\0" * 8),
    "extra entry field": raw_file({"a": {**F32, "x": 1}}, b"\0" * 8),
    "metadata not strings": raw_file({"__metadata__": {"k": 1}, "a": F32}, b"\0" * 8),
    "checksum mismatch": raw_file({"__metadata__": {"lm.crc32": "00000000"}, "a": F32},
                                  b"\0" * 8),
    "nan weights": raw_file({"a": F32}, np.array([1, np.nan], np.float32).tobytes()),
    "a pickle": pickle.dumps({"w": np.zeros(2)}),
}


@pytest.mark.parametrize("case", MALICIOUS)
def test_malicious_files_are_refused_quickly(tmp_path, case):
    path = tmp_path / "best.safetensors"
    path.write_bytes(MALICIOUS[case])
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="best.safetensors"):
        load_arrays(path)
    assert time.perf_counter() - t0 < 1.0


def test_a_directory_or_a_fifo_is_not_a_checkpoint(tmp_path):
    import os
    (tmp_path / "d.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_arrays(tmp_path / "d.safetensors")
    os.mkfifo(tmp_path / "f.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_arrays(tmp_path / "f.safetensors")
    with pytest.raises(FileNotFoundError):
        load_arrays(tmp_path / "missing.safetensors")


def test_ten_thousand_damaged_checkpoints(tmp_path):
    """Each damaged copy gives back exactly the original arrays or a CheckpointError (the
    checksum catches flipped data bits), nothing else, and none takes over 1 s."""
    ref = reference()
    save_arrays(tmp_path / "ref.safetensors", ref)
    data = (tmp_path / "ref.safetensors").read_bytes()
    cases = mutations(data, np.random.default_rng(0))
    assert len(cases) == 10_000 and len(data) < 2000
    same = refused = 0
    slowest = 0.0
    for case in cases:
        t0 = time.perf_counter()
        try:
            out = load_arrays(case)
        except CheckpointError:
            refused += 1
        else:
            assert sorted(out) == sorted(ref)
            for k in ref:
                assert out[k].dtype == ref[k].dtype and out[k].shape == ref[k].shape
                assert np.array_equal(out[k], ref[k]), k
            same += 1
        slowest = max(slowest, time.perf_counter() - t0)
    assert same + refused == 10_000
    assert refused > 9000  # the few harmless ones: e.g. a space of the header made a tab
    assert slowest < 1.0, slowest
