"""Hostile .npz files: each is refused with CheckpointError, runs no code, allocates little."""
import io
import os
import pickle
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from lm.storage.checkpoint import CheckpointError, load_arrays, save_arrays


class Evil:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npy(header, data=b"", version=(1, 0), pad=True):
    """Raw .npy bytes with an arbitrary header text (no checks)."""
    h = header.encode("latin1")
    if pad:
        pre = 10 if version == (1, 0) else 12
        h += b" " * ((-(pre + len(h) + 1)) % 64) + b"\n"
    length = struct.pack("<H" if version == (1, 0) else "<I", len(h))
    return b"\x93NUMPY" + bytes(version) + length + h + data


def hdr(descr="'<f4'", shape="(2,)", fortran="False"):
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


def raw_zip(members, eocd_count=None, comment=b""):
    """A zip archive written by hand, so every field can lie.

    members: dicts with name (str/bytes), data (the bytes stored), and optional method,
    usize, crc, flags, offset (central directory's local-header offset override).
    """
    out, central = bytearray(), bytearray()
    for m in members:
        name = m["name"].encode() if isinstance(m["name"], str) else m["name"]
        data, method = m["data"], m.get("method", 0)
        crc = m.get("crc", zlib.crc32(m.get("plain", data)))
        usize = m.get("usize", len(m.get("plain", data)))
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, m.get("flags", 0), method,
                           0, 33, crc, len(data), usize, len(name), 0) + name + data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20,
                               m.get("flags", 0), method, 0, 33, crc, len(data), usize,
                               len(name), 0, 0, 0, 0, 0, m.get("offset", offset)) + name
    n = len(members) if eocd_count is None else eocd_count
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out),
                       len(comment))
    return bytes(out + central + eocd + comment)


def deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def refused(data, match=None, **kw):
    """Assert load_arrays refuses `data` with CheckpointError (matching `match`)."""
    with pytest.raises(CheckpointError, match=match):
        load_arrays(io.BytesIO(data), **kw)


def test_pickled_object_array_never_runs(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, w=np.array([Evil(str(tmp_path / "control"))], dtype=object),
             allow_pickle=True)
    np.load(io.BytesIO(buf.getvalue()), allow_pickle=True)["w"][0].close()  # numpy with pickle...
    assert (tmp_path / "control").exists()  # ...really runs the payload
    marker = tmp_path / "marker"
    evil = io.BytesIO()
    np.savez(evil, w=np.array([Evil(str(marker))], dtype=object), allow_pickle=True)
    (tmp_path / "evil.npz").write_bytes(evil.getvalue())
    with pytest.raises(CheckpointError, match="forbidden dtype"):
        load_arrays(tmp_path / "evil.npz")
    single = io.BytesIO()  # a bare .npy with a pickle inside, renamed .npz
    np.save(single, np.array([Evil(str(marker))], dtype=object), allow_pickle=True)
    (tmp_path / "single.npz").write_bytes(single.getvalue())
    with pytest.raises(CheckpointError, match="single .npy"):
        load_arrays(tmp_path / "single.npz")
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"w": Evil(str(marker))}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_arrays(tmp_path / "pickle.npz")
    assert not marker.exists()


def test_huge_claimed_shape_is_refused_fast_without_allocating():
    data = raw_zip([{"name": "w.npy", "data": npy(hdr(shape="(1000000000000,)"), b"\0" * 8)}])
    tracemalloc.start()
    t0 = time.perf_counter()
    refused(data, "declares shape")
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.05 and peak < 1 << 20, (elapsed, peak)


@pytest.mark.parametrize("shape", ["(-1,)", "(-2, -4)", "(2**64,)", "(18446744073709551617, 0)",
                                   "(4611686018427387904, 4611686018427387904)",
                                   "(9223372036854775807,)", "(1.5,)", "('2',)", "(True,)",
                                   "(1, 1, 1, 1, 1)", "[2]", "2"])
def test_bad_shapes(shape):
    refused(raw_zip([{"name": "w.npy", "data": npy(hdr(shape=shape), b"\0" * 8)}]))


@pytest.mark.parametrize("arr", [
    np.array([1.0, 2.0], dtype=">f4"), np.array([1 + 2j]), np.array(["abc"]),
    np.array([b"ab"], dtype="V2"), np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]),
    np.array(["2020-01-01"], dtype="datetime64[D]"), np.array([1], dtype="timedelta64[s]"),
    np.zeros(2, dtype=np.float16), np.zeros(2, dtype=np.longdouble),
    np.array([b"abc"]), np.array([1], dtype=">i8"),
], ids=lambda a: str(a.dtype))
def test_each_forbidden_dtype(arr):
    buf = io.BytesIO()
    np.savez(buf, w=arr)
    refused(buf.getvalue(), "forbidden dtype")


@pytest.mark.parametrize("descr", ["'|O'", "'O'", "[('a', '|O')]", "'<U5'", "'|S3'",
                                   "('<f4', (1000000, 1000000))", "'nonsense'", "5"])
def test_forbidden_descr_headers(descr):
    refused(raw_zip([{"name": "w.npy", "data": npy(hdr(descr=descr), b"\0" * 8)}]))


def test_fortran_order_and_bad_bool():
    refused(raw_zip([{"name": "w.npy",
                      "data": npy(hdr(shape="(2, 2)", fortran="True"), b"\0" * 16)}]),
            "Fortran")
    refused(raw_zip([{"name": "b.npy", "data": npy(hdr("'|b1'"), b"\x01\x02")}]), "bool")


def test_zip_bomb_declared_and_lying():
    plain = npy(hdr(shape="(5000000,)")) + bytes(20_000_000)
    packed = deflate(plain)
    tracemalloc.start()
    refused(raw_zip([{"name": "w.npy", "data": packed, "method": 8, "plain": plain}]),
            "zip bomb")
    # lying: declares 136 bytes, inflates to 20 MB; decompression stops at 137
    small = npy(hdr(shape="(2,)"), b"\0" * 8)
    refused(raw_zip([{"name": "w.npy", "data": packed, "method": 8, "plain": small}]),
            "size other than")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * len(packed) + (1 << 20), peak
    ok = npy(hdr(shape="(2,)"), b"\0" * 8)
    assert load_arrays(io.BytesIO(raw_zip([{"name": "w.npy", "data": deflate(ok),
                                            "method": 8, "plain": ok}])))["w"].shape == (2,)


def test_member_count_and_lying_count():
    one = {"name": "w.npy", "data": npy(hdr(), b"\0" * 8)}
    many = [dict(one, name=f"w{i}.npy") for i in range(4097)]
    t0 = time.perf_counter()
    refused(raw_zip(many), "more than the limit")
    assert time.perf_counter() - t0 < 0.5
    refused(raw_zip(many[:3], eocd_count=2), "trailing bytes")
    refused(raw_zip(many[:3]), "more than the limit", max_members=2)


def test_oversized_headers():
    refused(raw_zip([{"name": "w.npy", "data": npy(hdr() + " " * 5000, b"\0" * 8)}]),
            "header")
    claim = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{"  # claims 2 GiB
    refused(raw_zip([{"name": "w.npy", "data": claim}]), "header")
    refused(raw_zip([{"name": "w.npy", "data": npy(hdr(shape="(" * 150 + "2" + ")" * 150),
                                                   b"\0" * 8)}]), "header")
    refused(raw_zip([{"name": "w.npy", "data": npy(hdr(), b"\0" * 8, version=(3, 0))}]),
            "version")
    refused(raw_zip([{"name": "w.npy", "data": npy("{'descr': '<f4'}", b"\0" * 8)}]), "header")
    refused(raw_zip([{"name": "w.npy", "data": npy("[1, 2]", b"\0" * 8)}]), "header")


def test_duplicate_and_bad_member_names():
    good = npy(hdr(), b"\0" * 8)
    refused(raw_zip([{"name": "w.npy", "data": good}, {"name": "w.npy", "data": good}]),
            "duplicate")
    for name in ["../evil.npy", "/abs.npy", "a/../../b.npy", "a\\b.npy", "x.txt", "",
                 "a//b.npy", "./a.npy", "w.npy\n", "x" * 201 + ".npy", "a b.npy"]:
        refused(raw_zip([{"name": name, "data": good}]))
    refused(raw_zip([{"name": "é.npy".encode("utf-8"), "data": good}]), "not allowed")


def test_container_lies():
    good = npy(hdr(), b"\0" * 8)
    member = {"name": "w.npy", "data": good}
    refused(raw_zip([dict(member, crc=0)]), "CRC")
    refused(raw_zip([dict(member, usize=7)]), "two sizes")
    refused(raw_zip([dict(member, flags=1)]), "encrypted")
    refused(raw_zip([dict(member, method=12)]), "compression method")
    refused(raw_zip([member, dict(member, name="v.npy", offset=0)]), "overlaps|disagrees")
    refused(raw_zip([dict(member, data=good + b"\0" * 4)]), "declares shape")
    refused(raw_zip([dict(member, data=good[:-4])]), "declares shape")
    refused(raw_zip([member], comment=b"x") + b"junk", "end record")
    zip64 = bytearray(raw_zip([member]))
    zip64[-22 + 8:-22 + 12] = b"\xff\xff\xff\xff"  # entry counts say "see zip64 record"
    refused(bytes(zip64), "zip64")
    assert load_arrays(io.BytesIO(raw_zip([member], comment=b"note")))["w"].shape == (2,)


def test_non_finite_weights(tmp_path):
    np.savez(tmp_path / "nan.npz", w=np.array([1.0, np.nan], np.float32))
    np.savez(tmp_path / "inf.npz", w=np.array([[np.inf]]))
    for name in ("nan.npz", "inf.npz"):
        with pytest.raises(CheckpointError, match="'w' holds NaN or infinite"):
            load_arrays(tmp_path / name)
    assert np.isnan(load_arrays(tmp_path / "nan.npz", allow_nonfinite=True)["w"][1])


def test_truncated_and_oversized_files(tmp_path):
    save_arrays(tmp_path / "a.npz", {"w": np.ones((3, 3)), "b": np.arange(4)})
    data = (tmp_path / "a.npz").read_bytes()
    for n in [0, 1, 21, 22, len(data) // 2, len(data) - 23, len(data) - 1]:
        refused(data[:n])
    refused(data, "over the 100-byte limit", max_bytes=100)
    assert load_arrays(io.BytesIO(b"PK\x05\x06" + b"\0" * 18)) == {}  # empty is valid


def test_fifo_is_refused_without_blocking(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_arrays(tmp_path / "pipe.npz")
