"""The checkpoint format: safetensors files, written atomically, read with every check first.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
then the raw little-endian tensor bytes. It holds no code: loading can never run any.
`load_tensors` bounds the file and the header, parses the header with lm's strict JSON
reader and checks every entry (names, dtypes, rank, shapes, offsets that tile the data
exactly with no gap or overlap) before the `safetensors` package reads the arrays; then
the values are checked finite. The format has no checksum of its own, so lm writes one
into the metadata (`lm.crc32`, over every tensor's name, dtype, shape and bytes in name
order) and checks it on load (files other tools wrote may go without, when the caller
says so): a flipped bit is refused, never read as a slightly different weight. Anything wrong is one CheckpointError naming the file; a path
that does not exist is FileNotFoundError.
"""
import json
import math
import os
import struct
import zlib

import numpy as np

from lm.storage.atomic import write_bytes
from lm.storage.safe_json import parse_json
from lm.storage.safe_npz import MAX_RANK, all_finite, check_dims, storable_array
from lm.storage.safe_zip import CheckpointError, is_safe_name, open_regular_file

MAX_BYTES = 2 << 30        # largest checkpoint file
MAX_HEADER = 16 << 20      # largest JSON header (lm writes ~100 bytes per tensor)
MAX_TENSORS = 4096
# safetensors dtype name -> numpy dtype: plain little-endian numbers and bool only
DTYPES = {"F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
          "I32": np.int32, "I64": np.int64, "U8": np.uint8, "U16": np.uint16,
          "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_}
_NAMES = {np.dtype(v).str: k for k, v in DTYPES.items()}
CHECKSUM = "lm.crc32"


def checksum(arrays):
    """CRC-32 over each tensor's name, dtype, shape and bytes, in name order (as hex): the
    integrity check the zip container of lm 0.1's .npz had, at the same cost (~7 ms for
    14 MiB here; sha256 took 11 ms). It catches damage; the header checks catch lies."""
    crc = 0
    for name in sorted(arrays):
        a = arrays[name]
        crc = zlib.crc32(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode(), crc)
        crc = zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"), crc)
    return f"{crc:08x}"


def _storable(key, value, allow_nonfinite):
    if not isinstance(key, str) or not is_safe_name(key):
        raise ValueError(f"tensor name {key!r} is not allowed (1-200 characters from "
                         "letters, digits, '_', '.', '-', '/'; no '..' or leading '/')")
    return storable_array(key, value, allow_nonfinite)


def save_tensors(path, arrays, metadata=None, allow_nonfinite=False):
    """Atomically write `arrays` (dict name -> array) and `metadata` (dict str -> str) as
    a safetensors file. Non-finite floats are refused unless allow_nonfinite; so is
    anything load_tensors would refuse."""
    from safetensors.numpy import save

    tensors = {k: _storable(k, v, allow_nonfinite) for k, v in arrays.items()}
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str)
                                        for k, v in metadata.items()):
        raise ValueError("safetensors metadata must map strings to strings")
    metadata = {**(metadata or {}), CHECKSUM: checksum(tensors)}
    total = sum(a.nbytes for a in tensors.values())
    if total > MAX_BYTES:
        raise ValueError(f"cannot write {os.fspath(path)!r}: {total} bytes is over the "
                         f"{MAX_BYTES}-byte checkpoint limit")
    write_bytes(path, save(tensors, metadata=metadata))


def read_header(source, max_bytes=MAX_BYTES):
    """(header dict, data size, raw bytes or None) of a safetensors file (a path, or its
    bytes), every entry checked. From a path only the header is read."""
    if isinstance(source, (bytes, bytearray)):
        label, raw, size = "<bytes>", bytes(source), len(source)
        head = raw[:8 + MAX_HEADER]
    else:
        label, raw = os.fspath(source), None
        f, size = open_regular_file(label, "checkpoint file")
        with f:
            head = f.read(8)
            if len(head) == 8:
                (n,) = struct.unpack("<Q", head)
                head += f.read(min(n, MAX_HEADER, max(0, size - 8)))
    if size > max_bytes:
        raise CheckpointError(label, f"{size} bytes, over the {max_bytes}-byte limit")
    if size < 8:
        raise CheckpointError(label, "too short for a safetensors header")
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_HEADER or 8 + n > size:
        raise CheckpointError(label, f"header length {n} is beyond the file or the "
                              f"{MAX_HEADER}-byte limit")
    header = parse_json(head[8:8 + n], label)
    data_size = size - 8 - n
    _check_entries(header, data_size, label)
    return header, data_size, raw


def _check_entries(header, data_size, label):
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(label, "__metadata__ must map strings to strings")
    entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
    if len(entries) > MAX_TENSORS:
        raise CheckpointError(label, f"{len(entries)} tensors, over the {MAX_TENSORS} limit")
    spans = []
    for name, e in entries:
        if not is_safe_name(name):
            raise CheckpointError(label, f"tensor name {name[:80]!r} is not allowed")
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(label, f"tensor {name!r}: malformed entry")
        dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in DTYPES:
            raise CheckpointError(label, f"tensor {name!r} has dtype {dtype!r} (allowed: "
                                  f"{', '.join(DTYPES)})")
        if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= data_size
                for d in shape):
            raise CheckpointError(label, f"tensor {name!r} has a bad shape {shape!r}")
        check_dims(shape, label, name)
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_size):
            raise CheckpointError(label, f"tensor {name!r} has bad data offsets {offsets!r}")
        nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise CheckpointError(label, f"tensor {name!r}: shape {shape} needs {nbytes} "
                                  f"bytes, its offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise CheckpointError(label, f"tensor {name!r} {'overlaps' if begin < pos else 'leaves a gap before it'}")
        pos = end
    if pos != data_size:
        raise CheckpointError(label, f"{data_size - pos} bytes after the last tensor")


def load_tensors(source, allow_nonfinite=False, max_bytes=MAX_BYTES, with_metadata=False,
                 require_checksum=True):
    """{name: array} of a safetensors file, a path or its bytes (and its metadata dict if
    `with_metadata`), after every check of the module docstring. `require_checksum`:
    refuse a file without lm's checksum (False for files other tools wrote)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load

    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    header, _, raw = read_header(source, max_bytes)
    try:
        if raw is not None:
            arrays = load(raw)
        else:  # the package maps the file and checks the header again itself
            with safe_open(label, framework="numpy") as f:
                arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, ValueError, OSError) as e:
        raise CheckpointError(label, f"unreadable: {e}") from None
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    if sorted(arrays) != sorted(entries) or any(
            list(arrays[k].shape) != e["shape"] or arrays[k].dtype != DTYPES[e["dtype"]]
            for k, e in entries.items()):  # the file changed between the two reads
        raise CheckpointError(label, "file changed while being read")
    meta = header.get("__metadata__", {})
    if CHECKSUM not in meta and require_checksum:
        raise CheckpointError(label, f"no {CHECKSUM} in its metadata: not written by lm, or "
                              "damaged")
    if CHECKSUM in meta and checksum(arrays) != meta[CHECKSUM]:
        raise CheckpointError(label, "checksum mismatch: the file is damaged")
    if not allow_nonfinite:
        for name, a in arrays.items():
            if a.dtype.kind == "f" and not all_finite(a):
                raise CheckpointError(label, f"tensor {name!r} holds NaN or infinite values")
    arrays = {k: arrays[k] for k in header if k != "__metadata__"}  # the file's order
    meta = {k: v for k, v in meta.items() if k != CHECKSUM}
    return (arrays, meta) if with_metadata else arrays


def dumps_metadata(obj):
    """A JSON value as a metadata string (safetensors metadata values are strings)."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":"), sort_keys=True)
