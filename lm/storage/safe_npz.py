"""The one way `lm` writes and reads .npz array files: atomic, allow-listed, never unpickles.

`load_arrays` checks everything a hostile or damaged file could lie about before
allocating: file size, member count and names, compression ratio, each .npy header
(size, dtype, order, rank, dimensions, byte count), then CRC-32 and finiteness.
Anything wrong raises CheckpointError; a path that does not exist raises
FileNotFoundError (so callers can tell "no checkpoint yet" from "bad checkpoint").
"""
import ast
import functools
import io
import os
import struct
import sys
import warnings
import zipfile

import numpy as np

from lm.storage.atomic import atomic_write
from lm.storage.safe_zip import (CheckpointError, MemberReader, is_safe_name, open_regular_file,
                         read_directory)

MAX_BYTES = 2 << 30  # default bound on file size and on total uncompressed bytes
MAX_MEMBERS = 4096
MAX_RATIO = 100  # deflate expansion allowed per member (+64 KiB)
MAX_HEADER = 4096  # bytes of .npy header dict (numpy writes ~118)
MAX_RANK = 4
# Little-endian (native here) plain numbers only: no object, str, void, complex, time.
ALLOWED_DTYPES = frozenset(["<f4", "<f8", "|i1", "<i2", "<i4", "<i8",
                            "|u1", "<u2", "<u4", "<u8", "|b1"])
_FINITE_CHUNK = 1 << 20  # elements per isfinite pass, to keep the temporary small


def _member_name(key):
    """`key` + ".npy" if it is an allowed array name, else ValueError."""
    if not isinstance(key, str) or not is_safe_name(key + ".npy"):
        raise ValueError(f"array name {key!r} is not allowed (1-196 characters from "
                         "letters, digits, '_', '.', '-', '/'; no '..' or leading '/')")
    return key + ".npy"


def storable_array(key, value, allow_nonfinite):
    """A C-contiguous little-endian array of an allowed dtype and rank (finite floats
    unless allow_nonfinite), or ValueError: the rule for every checkpoint format."""
    a = np.asarray(value)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    if a.dtype.str not in ALLOWED_DTYPES:
        raise ValueError(f"array {key!r} has dtype {a.dtype} which checkpoints do not "
                         "store (float32/64, integers and bool only)")
    if a.ndim > MAX_RANK:
        raise ValueError(f"array {key!r} has rank {a.ndim} > {MAX_RANK}")
    if not allow_nonfinite and a.dtype.kind == "f" and not all_finite(a):
        raise ValueError(f"array {key!r} holds NaN or infinite values; not saved")
    return a if a.flags.c_contiguous else a.copy(order="C")  # keeps 0-d arrays 0-d


def save_arrays(path, arrays, allow_nonfinite=False, max_bytes=MAX_BYTES):
    """Atomically write `arrays` (dict name -> array) as an uncompressed .npz.

    Names may contain '/' and '.' (e.g. "param/rnn0.Wx"). The output is byte-for-byte
    deterministic and readable by np.load and by load_arrays. Non-finite floats are
    refused unless allow_nonfinite; so is anything load_arrays would refuse.
    """
    items = []
    for key, value in arrays.items():
        items.append((_member_name(key), storable_array(key, value, allow_nonfinite)))
    total = sum(a.nbytes + 256 for _, a in items)
    if total > max_bytes:
        raise ValueError(f"cannot write {os.fspath(path)!r}: {total} bytes is over the "
                         f"{max_bytes}-byte checkpoint limit")
    with atomic_write(path, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=False) as zf:
            for name, a in items:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                with zf.open(info, "w") as fh:
                    np.lib.format.write_array(fh, a, allow_pickle=False)


def all_finite(a):
    flat = a.reshape(-1)
    return all(np.isfinite(flat[i:i + _FINITE_CHUNK]).all()
               for i in range(0, flat.size, _FINITE_CHUNK))


def _open(source):
    """(file object, label, size, close?) for a path or an open binary file."""
    if hasattr(source, "read") and hasattr(source, "seek"):
        label = str(getattr(source, "name", "<stream>"))
        try:
            size = source.seek(0, io.SEEK_END)
        except (OSError, ValueError) as e:
            raise CheckpointError(label, f"cannot seek: {e}") from e
        return source, label, size, False
    label = os.fspath(source)
    f, size = open_regular_file(label, "checkpoint file")
    return f, label, size, True


@functools.lru_cache(maxsize=256)  # same-shaped arrays share a header: parse it once
def _parse_header(raw, max_header):
    """numpy's own .npy header reader (literal_eval, no pickle) on the bounded bytes."""
    fp = io.BytesIO(raw)
    text = raw[10 if raw[6] == 1 else 12:].decode("latin1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "invalid escape sequence" in a bad header
        ast.literal_eval(text)  # a SyntaxError here skips numpy's slow Python-2 repair
        version = np.lib.format.read_magic(fp)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        return read(fp, max_header_size=max_header)


def _read_header(r, label, name, max_header):
    """(shape, dtype, header length) of the .npy member read by `r`, without allocating."""
    if r.remaining() < 10:
        raise CheckpointError(label, f"member {name!r} is too short for a .npy header")
    magic = r.read(8)
    if magic[:6] != b"\x93NUMPY":
        raise CheckpointError(label, f"member {name!r} is not a .npy array")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0)):
        raise CheckpointError(label, f"member {name!r} has .npy format version {version}, "
                              "only 1.0 and 2.0 are read")
    len_bytes = r.read(2 if version == (1, 0) else 4)
    hlen = struct.unpack("<H" if version == (1, 0) else "<I", len_bytes)[0]
    if hlen > max_header:
        raise CheckpointError(label, f"member {name!r} has a {hlen}-byte header, over "
                              f"the {max_header}-byte limit")
    if hlen > r.remaining():
        raise CheckpointError(label, f"member {name!r} header runs past its end")
    try:
        shape, fortran, dtype = _parse_header(magic + len_bytes + r.read(hlen), max_header)
    except Exception as e:  # numpy raises ValueError, SyntaxError, TypeError, ...
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(label, f"member {name!r} has an unreadable header: {msg}") \
            from None
    if dtype.str not in ALLOWED_DTYPES or dtype.fields is not None or dtype.subdtype:
        raise CheckpointError(label, f"member {name!r} has forbidden dtype {dtype.str!r} "
                              "(allowed: little-endian float32/64, int8-64, uint8-64, bool)")
    if fortran:
        raise CheckpointError(label, f"member {name!r} is in Fortran order")
    return shape, dtype, 8 + len(len_bytes) + hlen


MAX_ELEMENTS = 2**40  # elements of any array read, its zero dimensions counted as 1


def check_dims(shape, label, name):
    """CheckpointError naming the file and array unless the product of `shape`'s dimensions
    (zeros counted as 1) is at most MAX_ELEMENTS: numpy refuses such a shape with "array is
    too big" even when it holds no element, and that message would name nothing."""
    count = 1
    for d in shape:
        count *= max(d, 1)
    if count > MAX_ELEMENTS:
        raise CheckpointError(label, f"array {name!r} has shape {tuple(shape)[:8]}: too big "
                              f"(over 2**40 elements, zero dimensions aside)")


def _check_shape(shape, dtype, data_bytes, label, name, max_rank):
    if len(shape) > max_rank:
        raise CheckpointError(label, f"member {name!r} has rank {len(shape)} > {max_rank}")
    for d in shape:
        if type(d) is not int or d < 0:
            raise CheckpointError(label, f"member {name!r} has invalid shape {shape}")
    check_dims(shape, label, name)
    count = 1
    for d in shape:  # Python ints: no overflow
        count *= d
    if count * dtype.itemsize != data_bytes:
        raise CheckpointError(label, f"member {name!r} declares shape {shape[:8]} "
                              f"({count} x {dtype.itemsize} bytes) but stores "
                              f"{data_bytes} bytes")


def _check_expected(keys, expected, label):
    missing = [k for k in expected if k not in keys]
    extra = [k for k in keys if k not in expected]
    if missing:
        raise CheckpointError(label, f"missing array {missing[0]!r}"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra:
        raise CheckpointError(label, f"unexpected array {extra[0]!r}"
                              + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))


def load_arrays(source, expected=None, allow_nonfinite=False, max_bytes=MAX_BYTES,
                max_members=MAX_MEMBERS, max_ratio=MAX_RATIO, max_header=MAX_HEADER,
                max_rank=MAX_RANK):
    """Read an .npz written by save_arrays or np.savez(_compressed); dict name -> array.

    source: a path or a seekable binary file object (io.BytesIO works).
    expected: optional dict name -> shape tuple (or None for "any shape"); a missing or
    extra array, or another shape, raises CheckpointError naming the array.
    Float arrays must be finite unless allow_nonfinite. Every check is listed in the
    module docstring; any failure is a CheckpointError, a missing path FileNotFoundError.
    """
    f, label, size, close = _open(source)
    try:
        if size > max_bytes:
            raise CheckpointError(label, f"{size} bytes, over the {max_bytes}-byte limit")
        members = read_directory(f, size, label, max_members, max_ratio, max_bytes)
        keys = {}
        for m in members:
            if not m.name.endswith(".npy"):
                raise CheckpointError(label, f"member {m.name!r} is not a .npy array")
            keys[m.name[:-4]] = m
        if len(keys) != len(members):
            raise CheckpointError(label, "two members map to the same array name")
        if expected is not None:
            _check_expected(keys, expected, label)
        return {key: _read_member(f, m, key, label, expected, allow_nonfinite,
                                  max_header, max_rank)
                for key, m in keys.items()}
    except MemoryError:
        raise CheckpointError(label, "out of memory while reading (too large for this "
                              "machine)") from None
    finally:
        if close:
            f.close()


def _read_member(f, m, key, label, expected, allow_nonfinite, max_header, max_rank):
    r = MemberReader(f, m, label)
    shape, dtype, hlen = _read_header(r, label, m.name, max_header)
    _check_shape(shape, dtype, m.size - hlen, label, m.name, max_rank)
    want = None if expected is None else expected[key]
    if want is not None and tuple(want) != shape:
        raise CheckpointError(label, f"array {key!r} has shape {shape}, expected "
                              f"{tuple(want)}")
    a = np.empty(shape, dtype)  # the size was checked against the real bytes above
    r.readinto(memoryview(a.reshape(-1)).cast("B"))
    r.finish()
    if dtype.kind == "b" and a.size and a.reshape(-1).view(np.uint8).max() > 1:
        raise CheckpointError(label, f"bool array {key!r} holds bytes other than 0 and 1")
    if dtype.kind == "f" and not allow_nonfinite and not all_finite(a):
        raise CheckpointError(label, f"array {key!r} holds NaN or infinite values")
    if sys.byteorder != "little":  # allow-listed dtypes are little-endian
        a = a.astype(dtype.newbyteorder("="))
    return a
