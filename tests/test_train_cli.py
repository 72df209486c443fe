"""`python -m lm.train` through subprocess: learning, exact resume, Ctrl-C, clear errors."""
import json
import math
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from conftest import assert_clean_error, cli_env as env, corpus_text, metrics, run_module
from lm.storage.checkpoint import load_arrays


def run(args, cwd, timeout=120):
    return run_module("lm.train", args, cwd, timeout=timeout)


TINY = ["--embed_size", "8", "--hidden_size", "24", "--seq_length", "16", "--batch_size", "8"]





def unigram_entropy(text):
    counts = np.array(list(Counter(text).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())




@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_training_learns_for_every_cell(tmp_path, cell):
    text = corpus_text()
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    proc = run(["c.txt", "--cell", cell, *TINY, "--max_steps", 300, "--eval_every", 150,
                "--sample_length", 40], tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "checkpoints" / f"c-char-{cell}"
    for name in ("config.json", "vocab.json", "best.safetensors", "last.safetensors", "metrics.jsonl",
                 "curves.png"):
        assert (run_dir / name).is_file(), name
    rows = metrics(run_dir, "eval")
    assert [r["step"] for r in rows] == [150, 300]
    assert [r["step"] for r in metrics(run_dir, "train")] == list(range(10, 301, 10))
    for key in ("epoch", "tokens", "elapsed", "lr", "train_loss", "val_loss", "val_ppl",
                "val_bpc"):
        assert key in rows[-1]
    assert rows[-1]["val_bpc"] == pytest.approx(rows[-1]["val_loss"] / math.log(2))
    h = unigram_entropy(text)
    assert rows[-1]["val_loss"] < 0.6 * h, (rows[-1]["val_loss"], h)
    out = proc.stdout
    assert "parameters" in out and "tokens per step" in out and "seed    0" in out
    assert "val bpc" in out and "| best" in out
    assert "python -m lm.train --resume --out_dir checkpoints/c-char-" in out
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["kind"] == "language_model" and cfg["model"]["cell"] == cell
    assert cfg["train"]["hidden_size"] == 24


def test_resume_through_the_cli_is_exact(tmp_path):
    (tmp_path / "c.txt").write_text(corpus_text(400), encoding="utf-8")
    common = ["c.txt", *TINY, "--dtype", "float64", "--dropout", "0.1", "--eval_every", 8,
              "--sample_length", 0]
    assert run([*common, "--out_dir", "a", "--max_steps", 16], tmp_path).returncode == 0
    assert run([*common, "--out_dir", "b", "--max_steps", 8], tmp_path).returncode == 0
    proc = run(["--resume", "--out_dir", "b", "--max_steps", 16], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resumed at step 8" in proc.stdout
    keys = ("step", "train_loss", "val_loss", "lr", "tokens")
    assert [[r.get(k) for k in keys] for r in metrics(tmp_path / "a")] == \
        [[r.get(k) for k in keys] for r in metrics(tmp_path / "b")]
    a, b = load_arrays(tmp_path / "a" / "last.safetensors"), load_arrays(tmp_path / "b" / "last.safetensors")
    for k in a:
        if k.startswith(("param/", "optim/")):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_ctrl_c_saves_a_loadable_checkpoint_and_exits_130(tmp_path):
    (tmp_path / "c.txt").write_text(corpus_text(400), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "lm.train", "c.txt", *TINY,
                             "--max_steps", "1000000", "--eval_every", "5",
                             "--sample_length", "0"],
                            cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "checkpoints" / "c-char-lstm"
    deadline = time.time() + 60
    while not (run_dir / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # a second Ctrl-C while saving
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    arrays = load_arrays(run_dir / "last.safetensors")
    assert int(arrays["state/step"]) >= 5
    assert "resume  python -m lm.train --resume --out_dir checkpoints/c-char-lstm" in out
    assert "sample  python -m lm.sample --checkpoint checkpoints/c-char-lstm" in out
    assert "best    checkpoints/c-char-lstm/best.safetensors: validation loss" in out
    again = run(["c.txt", *TINY], tmp_path)  # nothing already saved may be overwritten
    assert_clean_error(again, "--resume", "--out_dir")


@pytest.mark.parametrize("args, fragments", [
    (["missing.txt"], ["missing.txt"]),
    (["empty.txt"], ["empty"]),
    (["adir"], ["directory"]),
    (["c.txt", "--batch_size", "0"], ["--batch_size"]),
    (["c.txt", "--val_frac", "1.5"], ["--val_frac"]),
    (["c.txt", "--learning_rate", "0"], ["--learning_rate"]),
    (["c.txt", "--cell", "transformer"], ["--cell", "lstm"]),
    (["c.txt", "--dropout", "1"], ["--dropout"]),
    (["c.txt", "--max_epochs", "-1"], ["--max_epochs"]),
    (["c.txt", "--resume", "--out_dir", "nowhere"], ["--resume", "nowhere"]),
    (["c.txt", "--lerning_rate", "3"], ["unknown flag --lerning_rate", "--learning_rate?"]),
], ids=["missing", "empty", "directory", "batch_size", "val_frac", "learning_rate", "cell",
        "dropout", "max_epochs", "resume_nothing", "misspelt_flag"])
def test_bad_input_is_one_line_exit_2(tmp_path, args, fragments):
    (tmp_path / "c.txt").write_text(corpus_text(50), encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "adir").mkdir()
    proc = run(args, tmp_path, timeout=60)
    assert_clean_error(proc, *fragments)
    assert not (tmp_path / "checkpoints").exists()
