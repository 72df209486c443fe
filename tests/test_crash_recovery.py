"""Trainer-level crash tests: SIGKILL at random moments and a second Ctrl-C during the save."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lm.storage.checkpoint import load_arrays
from conftest import cli_env as env, corpus_text, metrics

SMALL = ["--hidden_size", "16", "--embed_size", "8", "--seq_length", "8", "--batch_size", "4",
         "--sample_length", "0"]
RUN = os.path.join("checkpoints", "c-char-lstm")


def start(cwd, *args):
    """`python -m lm.train` in the background (one BLAS thread); stderr kept in a file."""
    err = open(os.path.join(cwd, "stderr.txt"), "w", encoding="utf-8")
    with err:
        return subprocess.Popen([sys.executable, "-m", "lm.train", *map(str, args)], cwd=cwd,
                                env=env(), stdout=subprocess.DEVNULL, stderr=err)


def n_metrics(run_dir):
    """Evaluations logged so far."""
    path = os.path.join(run_dir, "metrics.jsonl")
    return len(metrics(run_dir, "eval")) if os.path.exists(path) else 0


def last_step(run_dir):
    try:
        return int(load_arrays(os.path.join(run_dir, "last.safetensors"))["state/step"])
    except (OSError, ValueError, KeyError):
        return -1


def wait_for_new_eval(proc, run_dir, count, timeout=30.0):
    """Wait until metrics.jsonl holds more than `count` evaluations and last.safetensors has
    caught up with the newest (the row is written first, then last.safetensors)."""
    deadline = time.monotonic() + timeout
    while n_metrics(run_dir) <= count or \
            last_step(run_dir) < metrics(run_dir, "eval")[-1]["step"]:
        assert proc.poll() is None, open(os.path.join(run_dir, "..", "..", "stderr.txt")).read()
        assert time.monotonic() < deadline, "no evaluation logged in time"
        time.sleep(0.02)


def wait_for_tmp(proc, run_dir, timeout=3.0):
    """Poll (about every 0.2 ms) until an atomic writer's temp file shows in the run dir
    (gives up after `timeout` s: the caller then kills at that moment anyway)."""
    deadline = time.monotonic() + timeout
    while not tmp_files(run_dir) and time.monotonic() < deadline:
        assert proc.poll() is None, "the run stopped"
        time.sleep(0.0002)


def saved_step(run_dir):
    """Step in last.safetensors, after checking last.safetensors and best.safetensors load through the safe loader."""
    last = load_arrays(os.path.join(run_dir, "last.safetensors"))
    assert any(k.startswith("param/") for k in last) and any(k.startswith("optim/") for k in last)
    best_path = os.path.join(run_dir, "best.safetensors")
    if os.path.exists(best_path):
        best = load_arrays(best_path)
        assert int(best["state/step"]) <= int(last["state/step"])
        assert np.isfinite(float(best["state/val_loss"]))
    return int(last["state/step"])


def tmp_files(run_dir):
    return [n for n in os.listdir(run_dir) if ".tmp-" in n]


def test_sigkill_at_random_moments_always_leaves_a_resumable_run(tmp_path):
    """20 SIGKILLs of a run saving every step, at three kinds of moment in turn: a random
    moment after the process saved (steps, evaluation, saves, plotting), a random moment of
    start-up/resume, and mid-save (as soon as a temp file shows). After each kill the
    newest checkpoint loads, and each process that got to save moved the step on."""
    (tmp_path / "c.txt").write_text(corpus_text(600), encoding="utf-8")
    run_dir = str(tmp_path / RUN)
    rng = np.random.default_rng(1234)
    proc = start(tmp_path, "c.txt", *SMALL, "--eval_every", "1", "--max_steps", "1000000")
    wait_for_new_eval(proc, run_dir, 0)
    step, torn = 0, 0
    for kill in range(20):
        if kill:
            proc = start(tmp_path, "--resume", "--out_dir", RUN)
        count = n_metrics(run_dir)
        kind = kill % 3
        if kind == 0:
            wait_for_new_eval(proc, run_dir, count)
            time.sleep(rng.uniform(0.0, 0.3))
        elif kind == 1:
            time.sleep(rng.uniform(0.0, 0.8))  # during imports, setup, first steps
        else:
            wait_for_tmp(proc, run_dir)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        torn += bool(tmp_files(run_dir))  # killed mid-save: a temp file left behind
        new_step = saved_step(run_dir)
        assert new_step > step if kind == 0 else new_step >= step, (kill, step, new_step)
        step = new_step
    assert torn >= 3  # the mid-save kills did land inside a save
    proc = start(tmp_path, "--resume", "--out_dir", RUN, "--max_steps", step + 2)
    assert proc.wait(timeout=60) == 0, (tmp_path / "stderr.txt").read_text()
    assert saved_step(run_dir) == step + 2
    assert tmp_files(run_dir) == []
    for kind in ("eval", "train"):  # no duplicates: a resumed run drops what it replays
        rows = metrics(run_dir, kind)
        assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}), kind


def wait_for_save_start(proc, run_dir, timeout=10.0):
    """Poll until a temp file shows or last.safetensors changes (whatever the writer does)."""
    path = os.path.join(run_dir, "last.safetensors")
    old = os.stat(path)
    deadline = time.monotonic() + timeout
    while not tmp_files(run_dir):
        st = os.stat(path) if os.path.exists(path) else None
        if st is None or (st.st_ino, st.st_size, st.st_mtime_ns) != \
                (old.st_ino, old.st_size, old.st_mtime_ns):
            return
        assert proc.poll() is None and time.monotonic() < deadline, "no save seen"
        time.sleep(0.0002)


@pytest.mark.parametrize("gap, extra", [("save", 1), (0.002, 1), (0.01, 1), (0.05, 1),
                                        (0.002, 4)],
                         ids=["second-as-the-save-starts", "second-2ms", "second-10ms",
                              "second-50ms", "burst-of-5"])
def test_second_ctrl_c_during_the_save_leaves_a_loadable_checkpoint(tmp_path, gap, extra):
    """SIGINT, then `extra` more SIGINTs `gap` seconds apart (while it saves; from the third
    one on the handler raises KeyboardInterrupt, possibly inside a write): the process exits
    130 (or at least non-zero, never hangs), last.safetensors loads (old or new), and the next start
    leaves no temporary file behind."""
    (tmp_path / "c.txt").write_text(corpus_text(400), encoding="utf-8")
    run_dir = str(tmp_path / RUN)
    proc = start(tmp_path, "c.txt", *SMALL, "--eval_every", "2", "--max_steps", "1000000")
    wait_for_new_eval(proc, run_dir, 0)
    before = saved_step(run_dir)
    proc.send_signal(signal.SIGINT)
    for _ in range(extra):
        if gap == "save":
            wait_for_save_start(proc, run_dir)
        else:
            time.sleep(gap)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    err = (tmp_path / "stderr.txt").read_text()
    assert code != 0 and code in (130, 1, -signal.SIGINT), (code, err)
    if extra == 1:  # a second Ctrl-C is handled cleanly; a burst may hit interpreter exit
        assert code == 130 and "Traceback" not in err, (code, err)
    after = saved_step(run_dir)
    assert after >= before
    again = start(tmp_path, "--resume", "--out_dir", RUN, "--max_steps", after + 3)
    assert again.wait(timeout=60) == 0, (tmp_path / "stderr.txt").read_text()
    assert saved_step(run_dir) == after + 3
    assert tmp_files(run_dir) == []
