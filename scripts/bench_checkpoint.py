"""Checkpoint save and load time: safetensors (lm's format) against lm 0.1's .npz, side by
side in one run, for the last checkpoint of a 1.2M-parameter language model (weights,
Adam moments, training state) and its best checkpoint (weights only).

    python scripts/bench_checkpoint.py [--repeats 21]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lm.data.batch import Batch  # noqa: E402
from lm.models.language_model import LanguageModelRNN  # noqa: E402
from lm.storage.checkpoint import load_arrays, save_arrays  # noqa: E402
from lm.training.optim import Adam  # noqa: E402
from lm.training.state import new_scalars, pack_state  # noqa: E402


def checkpoints():
    """(last, best) dicts of arrays of a 1.2M-parameter char LSTM after one Adam step."""
    rng = np.random.default_rng(0)
    model = LanguageModelRNN(65, 64, 512, cell="lstm", rng=rng)
    opt = Adam(model, 3e-3)
    ids = rng.integers(0, 65, (4, 9))
    model.loss(Batch(ids[:, :-1], ids[:, 1:]))
    opt.step()
    sc = new_scalars()
    last = pack_state(model, opt, sc, {"epoch": 0, "position": 1}, None, rng)
    best = {f"param/{k}": v for k, v in model.params.items()}
    return model.num_params(), last, best


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args()
    n, last, best = checkpoints()
    print(f"model: {n:,} parameters; median of {args.repeats}, taking turns per repeat")
    print(f"{'checkpoint':<8} {'op':<5} {'npz (lm 0.1) ms':>16} {'safetensors ms':>15} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as d:
        for name, arrays in (("last", last), ("best", best)):
            paths = {ext: os.path.join(d, f"{name}.{ext}") for ext in ("npz", "safetensors")}
            res = {}
            for op in ("save", "load"):
                times = {ext: [] for ext in paths}
                for _ in range(args.repeats):  # turns: the machine's noise hits both alike
                    for ext, path in paths.items():
                        fn = (lambda p=path: save_arrays(p, arrays)) if op == "save" else \
                            (lambda p=path: load_arrays(p))
                        times[ext].append(timed(fn, 1))
                res[op] = {ext: 1e3 * statistics.median(t) for ext, t in times.items()}
                a, b = res[op]["npz"], res[op]["safetensors"]
                size = os.path.getsize(paths["safetensors"]) / 2**20
                print(f"{name:<8} {op:<5} {a:>16.1f} {b:>15.1f} {b / a:>6.2f}"
                      + (f"   ({size:.1f} MiB)" if op == "save" else ""))


if __name__ == "__main__":
    main()
