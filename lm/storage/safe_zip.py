"""CheckpointError and a strict, bounded reader of the zip container inside .npz files.

Only what `np.savez`/`np.savez_compressed` and `lm.storage.safe_npz.save_arrays` produce is
accepted: one disk, no zip64, no encryption, members stored or deflated, names from a
fixed pattern, no duplicates, member data that neither overlaps nor leaves the file,
and a CRC-32 that matches. Nothing is allocated from a size the file claims before
that size has been checked against the real file.
"""
import os
import re
import stat
import struct
import zlib

_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory, 22 bytes
_CDIR = struct.Struct("<4sHHHHHHIIIHHHHHII")  # central directory entry, 46 bytes
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes
_EOCD_SIG, _CDIR_SIG, _LOCAL_SIG = b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04"
STORED, DEFLATED = 0, 8
_MAX_EXTRA = 1024  # bytes of "extra" or comment allowed per entry
_CHUNK = 1 << 24  # read in 16 MiB pieces

_NAME_CHARS = re.compile(r"[A-Za-z0-9_./-]{1,200}\Z")


def is_safe_name(name):
    """Relative ASCII name of 1-200 characters from letters, digits, '_', '.', '-', '/',
    with no empty or dot-only parts ("a/b.c.npy" yes; "../x", "/x", "a//b", "./x" no)."""
    return bool(_NAME_CHARS.match(name)) and all(p.strip(".") for p in name.split("/"))


class CheckpointError(ValueError):
    """A checkpoint or metadata file failed a check.

    `CheckpointError(path, check)` reads "invalid checkpoint file 'PATH': CHECK";
    `.path` and `.check` keep the two parts. With one argument it is a plain message.
    """

    def __init__(self, path, check=None):
        if check is None:
            self.path, self.check = None, str(path)
            super().__init__(str(path))
        else:
            self.path, self.check = str(path), str(check)
            super().__init__(f"invalid checkpoint file {self.path!r}: {self.check}")


def open_regular_file(path, what="file"):
    """(binary file object, size) of the regular file `path`, opened without blocking.

    A missing path raises FileNotFoundError; anything else that cannot be opened, or is
    not a regular file (a directory, a pipe), raises CheckpointError.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(2, f"{what} not found", path) from None
    except OSError as e:
        raise CheckpointError(path, f"cannot open: {e.strerror or e}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CheckpointError(path, "not a regular file")
    return os.fdopen(fd, "rb"), st.st_size


class Member:
    """One archive member as the central directory describes it."""

    __slots__ = ("name", "method", "crc", "compressed", "size", "offset", "data_offset")

    def __init__(self, name, method, crc, compressed, size, offset):
        self.name, self.method, self.crc = name, method, crc
        self.compressed, self.size, self.offset = compressed, size, offset
        self.data_offset = None  # set once the local header has been checked


def read_at(f, offset, n, label, what):
    """Exactly `n` bytes at `offset` (n already bounded by the caller)."""
    try:
        f.seek(offset)
        data = f.read(n)
    except OSError as e:
        raise CheckpointError(label, f"read error in {what}: {e}") from e
    if len(data) != n:
        raise CheckpointError(label, f"truncated: {what} ends early")
    return data


def _find_eocd(f, size, label):
    """Offset of the end-of-central-directory record and its fields."""
    if size < _EOCD.size:
        raise CheckpointError(label, f"too small to be an .npz file ({size} bytes)")
    tail_len = min(size, _EOCD.size + 65535)
    tail = read_at(f, size - tail_len, tail_len, label, "end record")
    pos = tail.rfind(_EOCD_SIG)
    while pos >= 0:  # the record is the last one whose comment ends the file exactly
        if pos + _EOCD.size <= tail_len:
            fields = _EOCD.unpack_from(tail, pos)
            if pos + _EOCD.size + fields[7] == tail_len:
                return size - tail_len + pos, fields
        pos = tail.rfind(_EOCD_SIG, 0, pos)
    head = read_at(f, 0, min(size, 6), label, "file start")
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        raise CheckpointError(label, "looks like a pickle, which is never loaded; "
                              "expected an .npz (zip) archive")
    if head.startswith(b"\x93NUMPY"):
        raise CheckpointError(label, "is a single .npy array, expected an .npz archive")
    raise CheckpointError(label, "no zip end record (truncated, or not an .npz file)")


def read_directory(f, size, label, max_members, max_ratio, max_total):
    """Parse and check the central directory and local headers; returns [Member].

    size: the real file size. max_total bounds the sum of uncompressed member sizes;
    a deflated member may expand at most `max_ratio` times (+64 KiB for tiny members).
    """
    eocd_at, (_, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, _) = \
        _find_eocd(f, size, label)
    if n_disk == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        raise CheckpointError(label, "zip64 archives are not supported")
    if disk or cd_disk or n_disk != n_total:
        raise CheckpointError(label, "multi-disk archives are not supported")
    if n_total > max_members:
        raise CheckpointError(label, f"{n_total} members, more than the limit {max_members}")
    if cd_offset + cd_size != eocd_at:
        raise CheckpointError(label, "central directory does not end at the end record")
    if cd_size > n_total * (_CDIR.size + 200 + 2 * _MAX_EXTRA):
        raise CheckpointError(label, "central directory larger than its entries allow")
    cd = read_at(f, cd_offset, cd_size, label, "central directory")
    members, names, total, pos = [], set(), 0, 0
    for i in range(n_total):
        if pos + _CDIR.size > cd_size:
            raise CheckpointError(label, f"central directory entry {i} is truncated")
        (sig, _, _, flags, method, _, _, crc, csize, usize, n_len, x_len, c_len,
         disk_start, _, _, offset) = _CDIR.unpack_from(cd, pos)
        pos += _CDIR.size
        if sig != _CDIR_SIG:
            raise CheckpointError(label, f"central directory entry {i} has a bad signature")
        if n_len > 200 or x_len > _MAX_EXTRA or c_len > _MAX_EXTRA:
            raise CheckpointError(label, f"central directory entry {i} has oversized fields")
        if pos + n_len + x_len + c_len > cd_size:
            raise CheckpointError(label, f"central directory entry {i} is truncated")
        raw = cd[pos:pos + n_len]
        pos += n_len + x_len + c_len
        name = raw.decode("ascii", "replace")
        if not raw.isascii() or not is_safe_name(name):
            raise CheckpointError(label, f"member name {name[:80]!r} is not allowed "
                                  "(letters, digits, '_', '.', '-', '/' only; no '..')")
        if name in names:
            raise CheckpointError(label, f"duplicate member {name!r}")
        names.add(name)
        if flags & 0x41:
            raise CheckpointError(label, f"member {name!r} is encrypted")
        if disk_start:
            raise CheckpointError(label, f"member {name!r} is on another disk")
        if method == STORED:
            if csize != usize:
                raise CheckpointError(label, f"stored member {name!r} has two sizes "
                                      f"({csize} != {usize})")
        elif method == DEFLATED:
            if usize > max_ratio * csize + 65536:
                raise CheckpointError(label, f"member {name!r} would expand {csize} -> "
                                      f"{usize} bytes (ratio above {max_ratio}: zip bomb?)")
        else:
            raise CheckpointError(label, f"member {name!r} uses compression method "
                                  f"{method}; only stored or deflate are read")
        total += usize
        if total > max_total:
            raise CheckpointError(label, f"members hold more than {max_total} bytes "
                                  "uncompressed")
        members.append(Member(name, method, crc, csize, usize, offset))
    if pos != cd_size:
        raise CheckpointError(label, "central directory has trailing bytes")
    _check_local_headers(f, members, cd_offset, label)
    return members


def _check_local_headers(f, members, cd_offset, label):
    """Each local header matches its entry; member data lie in order, never overlapping."""
    ordered = sorted(members, key=lambda m: m.offset)
    for k, m in enumerate(ordered):
        limit = ordered[k + 1].offset if k + 1 < len(ordered) else cd_offset
        if m.offset + _LOCAL.size > limit:
            raise CheckpointError(label, f"member {m.name!r} overlaps the next one")
        (sig, _, flags, method, _, _, _, _, _, n_len, x_len) = _LOCAL.unpack(
            read_at(f, m.offset, _LOCAL.size, label, f"local header of {m.name!r}"))
        if sig != _LOCAL_SIG:
            raise CheckpointError(label, f"local header of {m.name!r} has a bad signature")
        if n_len > 200 or x_len > 65535 or method != m.method or flags & 0x41:
            raise CheckpointError(label, f"local header of {m.name!r} disagrees with "
                                  "the central directory")
        m.data_offset = m.offset + _LOCAL.size + n_len + x_len
        if m.data_offset + m.compressed > limit:
            raise CheckpointError(label, f"data of member {m.name!r} runs past its end")
        local_name = read_at(f, m.offset + _LOCAL.size, n_len, label, "member name")
        if local_name != m.name.encode("ascii"):
            raise CheckpointError(label, f"local header name of {m.name!r} disagrees "
                                  "with the central directory")


class MemberReader:
    """Reads the uncompressed bytes of one member in order, then checks size and CRC.

    A stored member is read straight from the file into the caller's buffer. A deflated
    one is decompressed at once, never past its declared (already bounded) size.
    """

    def __init__(self, f, member, label):
        self.f, self.m, self.label = f, member, label
        self.pos, self.crc, self.data = 0, 0, None
        if member.method == DEFLATED:
            packed = read_at(f, member.data_offset, member.compressed, label,
                             f"member {member.name!r}")
            z = zlib.decompressobj(-15)
            try:
                self.data = z.decompress(packed, member.size + 1)
            except zlib.error as e:
                raise CheckpointError(label, f"member {member.name!r} does not "
                                      f"decompress: {e}") from e
            if len(self.data) != member.size or not z.eof:
                raise CheckpointError(label, f"member {member.name!r} decompresses to a "
                                      "size other than the one declared")

    def remaining(self):
        return self.m.size - self.pos

    def read(self, n):
        """Exactly n bytes (n <= remaining(); small reads only: headers)."""
        buf = bytearray(n)
        self.readinto(memoryview(buf))
        return bytes(buf)

    def readinto(self, view):
        """Fill the byte memoryview `view` exactly."""
        n = len(view)
        if n > self.remaining():
            raise CheckpointError(self.label, f"member {self.m.name!r} is shorter than "
                                  "its contents claim")
        if self.data is not None:
            view[:] = self.data[self.pos:self.pos + n]
        else:
            done = 0
            try:
                self.f.seek(self.m.data_offset + self.pos)
                while done < n:
                    got = self.f.readinto(view[done:done + _CHUNK])
                    if not got:
                        break
                    done += got
            except OSError as e:
                raise CheckpointError(self.label, f"read error in member "
                                      f"{self.m.name!r}: {e}") from e
            if done != n:
                raise CheckpointError(self.label, f"truncated: member {self.m.name!r} "
                                      "ends early")
        self.crc = zlib.crc32(view, self.crc)
        self.pos += n

    def finish(self):
        """Check that every byte was consumed and the CRC-32 matches."""
        if self.pos != self.m.size:
            raise CheckpointError(self.label, f"member {self.m.name!r} has "
                                  f"{self.m.size - self.pos} unexpected trailing bytes")
        if self.crc != self.m.crc:
            raise CheckpointError(self.label, f"member {self.m.name!r} fails its CRC-32 "
                                  "check (corrupted)")
