"""Helpers shared by the tests: running a CLI, its clean-error contract, reading metrics,
a tiny corpus, and a scalar Adam written from the paper (import them: `from conftest import`)."""
import json
import math
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli_env(**extra):
    """The environment of a CLI under test: this checkout first on the path, one BLAS thread."""
    e = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1",
             **extra)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run_module(module, args, cwd, stdin=None, timeout=120):
    """`python -m module args...` in `cwd`; the CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                          env=cli_env(), capture_output=True, text=True, timeout=timeout,
                          input=stdin)


def assert_clean_error(proc, *fragments, code=2):
    """The CLI contract for bad input: exit `code`, one `error: ...` line, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


def metrics(run_dir, rows="all"):
    """metrics.jsonl of a run: "all" rows, the "eval" rows (with a validation loss) or the
    "train" rows (the training loss logged every --log_every steps)."""
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        out = [json.loads(line) for line in f if line.strip()]
    if rows == "eval":
        return [r for r in out if "val_loss" in r]
    if rows == "train":
        return [r for r in out if "val_loss" not in r]
    return out


def corpus_text(n_words=1200, seed=0):
    """A small text of a dozen words in random order: learnable, yet not trivial."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat.", "dog", "ran", "to", "big", "red", "hat"]
    return " ".join(words[i] for i in rng.integers(0, len(words), n_words)) + "\n"


def adam_reference(p, grads_fn, steps, lr, b1, b2, eps, wd=0.0):
    """Scalar-by-scalar Adam written straight from the paper (PyTorch's eps placement)."""
    p = [float(x) for x in p]
    m = [0.0] * len(p)
    v = [0.0] * len(p)
    for t in range(1, steps + 1):
        g = grads_fn(p)
        for i in range(len(p)):
            gi = g[i] + wd * p[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            mhat = m[i] / (1 - b1 ** t)
            vhat = v[i] / (1 - b2 ** t)
            p[i] -= lr * mhat / (math.sqrt(vhat) + eps)
    return p


def mutations(data, rng, n=10_000):
    """n damaged copies: every truncation, bit flips, overwrites, insertions, deletions."""
    out = [data[:k] for k in range(len(data))]
    while len(out) < n:
        b = bytearray(data)
        kind = rng.integers(4)
        i = int(rng.integers(len(b)))
        if kind <= 1:
            b[i] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            b[i:i + 4] = rng.integers(0, 256, size=len(b[i:i + 4]), dtype=np.uint8).tobytes()
        else:
            b[i:i] = rng.integers(0, 256, size=int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
            del b[int(rng.integers(len(b)))]
        out.append(bytes(b))
    return out[:n]


# a language model that trains 3 steps in a blink (resume and run-directory tests)
TINY_LM = dict(embed_size=6, hidden_size=10, seq_length=7, batch_size=3, sample_length=0,
               eval_every=3)


def quiet(line):
    """A training log that shows nothing."""


def tiny_lm_run(root, name):
    """Write root/c.txt (400 random words) and train TINY_LM on it for 3 steps into
    root/name; returns root."""
    from lm.config.training import TrainConfig
    from lm.training import lm_task

    words = ["the", "cat", "sat", "on", "a", "mat"]
    rng = np.random.default_rng(0)
    (root / "c.txt").write_text(" ".join(words[i] for i in rng.integers(0, 6, 400)),
                                encoding="utf-8")
    lm_task.train(TrainConfig(**TINY_LM, corpus=str(root / "c.txt"), out_dir=str(root / name),
                              max_steps=3), log=quiet)
    return root


# a two-class set a tiny classifier learns in seconds (label<TAB>text rows)
POS = ["good", "great fun", "i love it", "very good", "so great", "love this"]
NEG = ["bad", "awful mess", "i hate it", "very bad", "so awful", "hate this"]


def tiny_file(path):
    """Write POS (label 1) and NEG (label 0), twice each, as label<TAB>text lines to `path`."""
    rows = [f"1\t{t}" for t in POS] + [f"0\t{t}" for t in NEG]
    path.write_text("\n".join(rows * 2) + "\n", encoding="utf-8")
    return path


def replayed_loss(model, batch):
    """(f, analytic gradients) for a gradient check through dropout: f(_) is
    model.loss(batch)[0] with the dropout generator (model.drop.rng) restored first, so
    every evaluation draws the same masks; the gradients are those of that loss."""
    rng = model.drop.rng  # every dropout shares the builder's generator
    saved = rng.bit_generator.state

    def f(_):
        rng.bit_generator.state = saved
        return model.loss(batch)[0]

    f(None)
    return f, {k: g.copy() for k, g in model.grads.items()}
