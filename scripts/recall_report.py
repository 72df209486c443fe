"""Reproduce the README's vanishing-gradient figure: where each cell stops learning.

    python scripts/recall_report.py [--cells rnn,gru,lstm,lstm:3] [--lengths 5,10,20,50,100]
        [--seeds 0] [--jobs 2] [--out_root checkpoints/recall-report] [--figure docs/recall.png]

A cell `lstm:B` is an LSTM whose forget-gate biases start at B (plain `lstm`: 1, Keras's
choice). Trains every cell on the recall task (`python -m lm.diagnose recall` defaults:
2,000 steps of 32 fresh sequences) at every distance and seed, in --jobs processes, and
prints a markdown table of the best held-out accuracy (mean over the seeds, min-max) and
the training seconds. Then draws accuracy against distance beside the gradient norms
||d loss / d h_t|| of the seed-0 models trained at --gradient_length (measured on
held-out sequences of that distance) and of fresh ones, and prints their ratios.
Runs are kept under --out_root; a run that is already there is read, not trained again.
"""
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: small matrices, one thread

import argparse  # noqa: E402
import io  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from contextlib import redirect_stdout  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from lm.config.recall import RecallConfig  # noqa: E402
from lm.storage.atomic import write_bytes  # noqa: E402
from lm.training.metrics import read_metrics  # noqa: E402


def run_dir(root, cell, length, seed=0):
    name, _, bias = cell.partition(":")
    return os.path.join(root, f"{name}{'-fb' + bias if bias else ''}-{length}"
                              + (f"-seed{seed}" if seed else ""))


def flags(cell):
    """RecallConfig fields of a --cells entry: "gru", or "lstm:3" (forget bias 3)."""
    name, _, bias = cell.partition(":")
    return {"cell": name, **({"forget_bias": float(bias)} if bias else {})}


def label(cell):
    name, _, bias = cell.partition(":")
    return f"{name}, forget bias {bias}" if bias else name


def train_one(args):
    """Train one (cell, length) run unless it is there; its best evaluation row."""
    from lm.diagnostics.recall import train
    from lm.storage.checkpoint import find_checkpoint

    root, cell, length, seed = args
    d = run_dir(root, cell, length, seed)
    if find_checkpoint(d, "last") is None:
        with redirect_stdout(io.StringIO()):
            train(RecallConfig(**flags(cell), length=length, seed=seed, out_dir=d),
                  progress=False, log=lambda line: None)
    rows = [r for r in read_metrics(d) if "val_acc" in r]
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))
    return cell, length, seed, best, rows[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", default="rnn,gru,lstm,lstm:3")
    p.add_argument("--lengths", default="5,10,20,50,100")
    p.add_argument("--seeds", default="0")
    p.add_argument("--gradient_length", type=int, default=50)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out_root", default="checkpoints/recall-report")
    p.add_argument("--figure", default="docs/recall.png")
    a = p.parse_args()
    cells = a.cells.split(",")
    lengths = [int(x) for x in a.lengths.split(",")]
    seeds = [int(x) for x in a.seeds.split(",")]
    jobs = [(a.out_root, c, L, s) for L in sorted(lengths, reverse=True) for c in cells
            for s in seeds]
    with ProcessPoolExecutor(a.jobs) as pool:
        done = list(pool.map(train_one, jobs))

    from lm.diagnostics.gradients import gradient_norms
    from lm.diagnostics.plots import recall_png
    from lm.diagnostics.recall import load_recall, recall_batch
    from lm.diagnostics.runs import fresh_models

    acc = {label(c): [] for c in cells}
    print("| cell | " + " | ".join(f"distance {L}" for L in lengths) + " |")
    print("|---|" + "---:|" * len(lengths))
    for c in cells:
        cols = []
        for L in lengths:
            runs = [x for x in done if x[:2] == (c, L)]
            accs = [100 * best["val_acc"] for _, _, _, best, _ in runs]
            secs = np.mean([last["elapsed"] for *_, last in runs])
            acc[label(c)].append((L, np.mean(accs) / 100))
            spread = f" ({min(accs):.0f}-{max(accs):.0f})" if len(runs) > 1 else ""
            cols.append(f"{np.mean(accs):.1f}%{spread}, {secs:.0f} s")
        print(f"| {label(c)} | " + " | ".join(cols) + " |")
    G = a.gradient_length
    curves = []
    for i, c in enumerate(cells):
        model, cfg = load_recall(run_dir(a.out_root, c, G))
        curves.append((f"{label(c)}, trained", gradient_norms(model, recall_batch(cfg, 64, G)),
                       {"color": f"C{i}"}))
    for i, c in enumerate(cells):
        models, batch, _ = fresh_models([flags(c)["cell"]], G, 64,
                                        forget_bias=flags(c).get("forget_bias", 1.0))
        curves.append((f"{label(c)}, fresh", gradient_norms(models[0][1], batch),
                       {"color": f"C{i}", "linestyle": ":", "linewidth": 1}))
    print(f"\n||d loss / d h_t|| at distance {G} / at distance 0 (64 held-out sequences):")
    for name, norms, _ in curves:
        y = norms["layer 1"]
        print(f"  {name:>28}: {y[G] / y[0]:.1e}")
    chance = 1 / RecallConfig().symbols
    os.makedirs(os.path.dirname(a.figure) or ".", exist_ok=True)
    seeds_title = f", mean over {len(seeds)} seeds" if len(seeds) > 1 else f", seed {seeds[0]}"
    write_bytes(a.figure, recall_png(acc, chance, curves,
                                     "recall the first token" + seeds_title,
                                     f"gradient reaching each step, distance {G}"))
    print(f"wrote {a.figure}")


if __name__ == "__main__":
    main()
