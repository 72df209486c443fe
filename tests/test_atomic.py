"""Atomic writes: old file intact on exceptions, disk full, read-only dirs and SIGKILL."""
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lm.storage import atomic
from lm.storage.checkpoint import (AtomicWriteError, append_jsonl, atomic_write, clean_stale_tmp,
                           load_arrays, read_json, read_jsonl, save_arrays, write_json)


def tmp_files(directory):
    return [n for n in os.listdir(directory) if ".tmp-" in n]

@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_atomic_write_keeps_old_file(tmp_path, exc):
    p = tmp_path / "f.bin"
    p.write_bytes(b"old")
    with pytest.raises(exc):
        with atomic_write(p) as f:
            f.write(b"new, half written")
            raise exc("crash (or a second Ctrl-C) mid-write")
    assert p.read_bytes() == b"old" and tmp_files(tmp_path) == []
    with atomic_write(p, "w") as f:
        f.write("new\n")
    assert p.read_bytes() == b"new\n" and tmp_files(tmp_path) == []


def test_disk_full_on_fsync_keeps_previous_checkpoint(tmp_path, monkeypatch):
    save_arrays(tmp_path / "best.npz", {"w": np.ones(3)})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(AtomicWriteError, match="No space left.*previous file") as info:
        save_arrays(tmp_path / "best.npz", {"w": np.zeros(3)})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    np.testing.assert_array_equal(load_arrays(tmp_path / "best.npz")["w"], np.ones(3))
    assert tmp_files(tmp_path) == []


def test_real_write_failure_from_the_kernel_keeps_previous_checkpoint(tmp_path):
    """RLIMIT_FSIZE makes write(2) itself fail (EFBIG) deep inside zipfile."""
    pytest.importorskip("resource")
    script = textwrap.dedent(f"""
        import resource, signal, sys, numpy as np
        from lm.storage.checkpoint import save_arrays, AtomicWriteError
        save_arrays({str(tmp_path / 'best.npz')!r}, {{"w": np.ones(3)}})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            save_arrays({str(tmp_path / 'best.npz')!r}, {{"w": np.zeros(100000)}})
        except AtomicWriteError as e:
            print("ERR", e.errno, e)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=root, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"ERR {errno.EFBIG} cannot write"), out.stdout
    np.testing.assert_array_equal(load_arrays(tmp_path / "best.npz")["w"], np.ones(3))
    assert tmp_files(tmp_path) == []


def test_read_only_directory_keeps_previous_file(tmp_path, monkeypatch):
    write_json(tmp_path / "config.json", {"a": 1})
    if os.geteuid() == 0:  # root ignores directory permissions: simulate EROFS instead
        real_open = os.open

        def ro_open(path, flags, *args, **kw):
            if flags & os.O_CREAT:
                raise OSError(errno.EROFS, "Read-only file system")
            return real_open(path, flags, *args, **kw)
        monkeypatch.setattr(atomic.os, "open", ro_open)
    else:
        os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(AtomicWriteError, match="cannot write .*config.json"):
            write_json(tmp_path / "config.json", {"a": 2})
    finally:
        os.chmod(tmp_path, 0o755)
        monkeypatch.undo()
    assert read_json(tmp_path / "config.json") == {"a": 1}


def test_append_jsonl_repairs_torn_line_and_survives_disk_full(tmp_path, monkeypatch):
    p = tmp_path / "metrics.jsonl"
    append_jsonl(p, {"step": 1, "loss": 2.5})
    with open(p, "ab") as f:
        f.write(b'{"step": 2, "lo')  # a write torn by a crash
    assert read_jsonl(p) == [{"step": 1, "loss": 2.5}]
    append_jsonl(p, {"step": 3, "loss": 2.0})
    assert read_jsonl(p) == [{"step": 1, "loss": 2.5}, {"step": 3, "loss": 2.0}]
    before = p.read_bytes()

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(AtomicWriteError, match="No space left"):
        append_jsonl(p, {"step": 4})
    monkeypatch.undo()
    assert p.read_bytes() == before
    with pytest.raises(ValueError):
        append_jsonl(p, {"loss": float("nan")})


def test_clean_stale_tmp(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".best.npz.tmp-{dead}-0123abcd"
    live = tmp_path / f".best.npz.tmp-{os.getppid()}-0123abcd"
    other = tmp_path / "notes.tmp-1-0123abcd"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    assert clean_stale_tmp(tmp_path) == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name])
    assert clean_stale_tmp(tmp_path, max_age=-1) == [str(live)]
    assert clean_stale_tmp(tmp_path / "missing") == []


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        write_json(tmp_path / "config.json", {"lr": float("inf")})
    assert os.listdir(tmp_path) == []



def _writer_loop(path, metrics, i):
    """Child process: rewrite a checkpoint and append metrics forever."""
    while True:
        i += 1
        save_arrays(path, {"w": np.full(2000, i, np.float64), "i": np.int64(i)})
        append_jsonl(metrics, {"i": i, "pad": "x" * 500})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_at_random_moments_always_leaves_a_loadable_file(tmp_path):
    """20 writers killed with SIGKILL mid-stream: the file always loads whole."""
    path, metrics = tmp_path / "last.npz", tmp_path / "metrics.jsonl"
    save_arrays(path, {"w": np.zeros(2000), "i": np.int64(0)})
    rng = np.random.default_rng(0)
    seen, mid_write, i = set(), 0, 0
    for _ in range(20):
        pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            try:
                _writer_loop(path, metrics, i)
            finally:
                os._exit(0)
        time.sleep(float(rng.uniform(0.005, 0.05)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        arrays = load_arrays(path)
        i = int(arrays["i"])
        assert np.all(arrays["w"] == i)  # never weights of one write with a counter of another
        rows = read_jsonl(metrics)  # a torn last line is ignored
        assert all(r["pad"] == "x" * 500 for r in rows)
        seen.add(i)
        mid_write += bool(clean_stale_tmp(tmp_path))  # killed inside atomic_write
        assert tmp_files(tmp_path) == []
    print(f"{len(seen)} distinct versions, {mid_write} of 20 kills inside a write")
    assert len(seen) > 5  # the kills landed at different moments
