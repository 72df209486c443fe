"""Crash-proof writes: temp file + fsync + os.replace, safe JSON-lines appends, stale temp cleanup.

Every file `lm` writes (checkpoints, config, vocab, metrics, plots) goes through here, so
a crash, a kill or a full disk at any moment leaves either the old file or the new one,
never a half-written one.
"""
import contextlib
import errno
import json
import os
import re
import stat
import secrets
import time

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# `.<name>.tmp-<pid>-<8 hex>`: hidden, and recognisable by clean_stale_tmp.
_TMP_RE = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}\Z")


class AtomicWriteError(OSError):
    """A write failed (disk full, read-only directory, ...); the previous file is unchanged.

    `.errno` is the OS error number; str() is one line naming the file and the reason.
    """

    def __str__(self):
        return self.strerror


def _fail(path, exc):
    """An AtomicWriteError naming `path` and the OS reason, keeping the errno."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return AtomicWriteError(exc.errno, f"cannot write {os.fspath(path)!r}: {reason} "
                            "(the previous file, if any, is unchanged)")


def fsync_dir(directory):
    """fsync a directory so a rename in it survives a power cut (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; the rename is done
        pass
    finally:
        os.close(fd)


def is_tmp_name(name):
    """Whether the file name `name` is one of atomic_write's temporary files."""
    return _TMP_RE.match(name) is not None


def tmp_name(path):
    """The temporary path used for writing `path`: `.<name>.tmp-<pid>-<rand>` beside it."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding="utf-8"):
    """Open a temporary file beside `path`; on success flush, fsync and os.replace it.

    A symbolic link at `path` is replaced by the new file, never written through (the
    temporary file is created with O_EXCL, which follows no link either).
    mode: "wb" (bytes) or "w" (text, UTF-8, "\\n" newlines). On any exception in the body
    (KeyboardInterrupt included) the temporary file is removed and `path` is untouched;
    an OSError (disk full, permission, missing directory) is re-raised as
    AtomicWriteError naming the file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    tmp = tmp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        raise _fail(path, e) from e
    replaced = False
    try:
        text = mode == "w"
        with os.fdopen(fd, mode, encoding=encoding if text else None,
                       newline="\n" if text else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        replaced = True
    except OSError as e:
        raise _fail(path, e) from e
    finally:
        if not replaced:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_bytes(path, data):
    """Atomically replace `path` with `data`."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def dumps_json(obj, indent=2):
    """Strict JSON text: NaN/Infinity refused (ValueError), keys sorted, ends with a newline."""
    return json.dumps(obj, allow_nan=False, indent=indent, sort_keys=True,
                      ensure_ascii=False) + "\n"


def write_json(path, obj, indent=2):
    """Atomically write `obj` as strict JSON (ValueError for NaN/Infinity or non-JSON types)."""
    try:
        text = dumps_json(obj, indent)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot write {os.fspath(path)!r} as JSON: {e}") from e
    write_bytes(path, text.encode("utf-8"))


def _last_newline_end(fd, size):
    """Offset just after the last b"\\n" in the first `size` bytes of fd (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def append_jsonl(path, obj):
    """Append `obj` as one strict JSON line to `path` and fsync it.

    A torn last line left by a crash (no trailing newline) is cut off first, so the file
    is always a sequence of complete lines; if the append itself fails (disk full) the
    file is truncated back to its previous length and AtomicWriteError is raised.
    """
    try:
        line = json.dumps(obj, allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")) + "\n"
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot append to {os.fspath(path)!r} as JSON: {e}") from e
    data = line.encode("utf-8")
    path = os.fspath(path)
    try:
        # O_NOFOLLOW: a symbolic link in the run directory is refused, never written through
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise AtomicWriteError(e.errno, f"cannot append to {path!r}: it is a symbolic "
                                   "link, and lm never writes through links") from e
        raise _fail(path, e) from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device must not be written to
        os.close(fd)
        raise AtomicWriteError(errno.EINVAL, f"cannot append to {path!r}: not a regular file")
    size = None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            size = _last_newline_end(fd, size)
            os.ftruncate(fd, size)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except OSError as e:
        if size is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
        raise _fail(path, e) from e
    finally:
        os.close(fd)


def clean_stale_tmp(directory, max_age=24 * 3600.0):
    """Remove temp files left by killed writers in `directory`; returns the removed paths.

    A file named like atomic_write's temporaries is stale when the process that made it
    is gone, or when it is older than `max_age` seconds. Only regular files directly in
    `directory` are touched; a missing directory is not an error.
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if not m or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(m.group("pid"))
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if pid != os.getpid() and _pid_alive(pid) and age < max_age:
            continue  # another live process may still be writing it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(entry.path)
    return removed


def _pid_alive(pid):
    """True if a process with this id exists (or we cannot tell)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except (OverflowError, OSError):
        return False
    return True
