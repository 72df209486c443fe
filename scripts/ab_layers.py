"""A/B speed of the recurrent layers: this tree's lm/layers against a git revision's, in whole training steps.

Usage:
  python scripts/ab_layers.py --rev 7368a7e              # every train config, 15 alternations
  python scripts/ab_layers.py --rev HEAD --repeats 9 --passes 3 --configs lstm

The old side is lm/layers as it stands at --rev (extracted with `git archive` into a
temporary package); the new side is this tree. Each config of `benchmark.py --suite
train` (bench_train.TRAIN_CONFIGS) gets two language models with the same weights,
identical but for the recurrent layer's code, and their training steps (loss, clip, Adam)
take turns, the order swapped every round, on one BLAS thread. Before timing, one step of
each must give bit-identical loss and gradients. Steps are timed on this process's CPU
time by default (one BLAS thread: the time our thread ran; --clock wall for elapsed time),
which on a machine loaded by other jobs leaves out the time they hold the core, though not
their effect on the caches. Printed per config: the median step time of each side and new/old speed (median old time / median new time, so > 1 is faster),
with the median of the per-round ratios beside it (robust to load that drifts).
"""
import argparse
import inspect
import os
import subprocess
import sys
import tempfile

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # read once, when numpy loads BLAS

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path[:0] = [HERE, ROOT]

from bench_train import CLIP, LR, TRAIN_CONFIGS, batch  # noqa: E402
from lm.data.batch import Batch  # noqa: E402
from lm.models.language_model import LanguageModelRNN  # noqa: E402
from lm.training.optim import Adam, clip_grad_norm  # noqa: E402

CLASS_NAMES = {"lstm": ("lstm", "LSTM"), "gru": ("gru", "GRU"), "rnn": ("rnn", "VanillaRNN")}


def old_layers(rev, tmp):
    """Import lm/layers as of git revision `rev` as the package `ab_old_layers`."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "lm/layers"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    os.rename(os.path.join(tmp, "lm", "layers"), os.path.join(tmp, "ab_old_layers"))
    sys.path.insert(0, tmp)
    import ab_old_layers
    return ab_old_layers


def with_old_layers(model, package, cell):
    """Swap each recurrent layer of `model` for the old code's class, sharing the same
    parameter and gradient arrays (so the optimiser and the rest of the model see no change)."""
    module, name = CLASS_NAMES[cell]
    cls = getattr(__import__(f"{package.__name__}.{module}", fromlist=[name]), name)
    if "dfinal" not in inspect.signature(cls.backward).parameters:
        base = cls

        class cls(base):  # code from before final-state gradients: the encoder passes None
            def backward(self, dh, dfinal=None):
                if dfinal is not None:
                    raise ValueError("lm/layers at this revision takes no dfinal")
                return base.backward(self, dh)
    enc = model.encoder
    for i, new in enumerate(enc.layers):
        old = cls(new.input_dim, new.hidden_dim, dtype=new.dtype)
        old.params, old.grads = new.params, new.grads
        enc.layers[i] = enc.children[f"rnn{i}"] = old
    return model


def train_run(cfg, package=None):
    """A callable doing one training step on a fixed batch; the model is returned too."""
    _, V, E, H, _, _, cell = cfg
    model = LanguageModelRNN(V, E, H, cell=cell, dtype=np.float32, rng=0)
    if package is not None:
        with_old_layers(model, package, cell)
    opt = Adam(model, lr=LR)
    ids, targets = batch(cfg)
    b = Batch(ids, targets)

    def run():
        model.loss(b)
        clip_grad_norm(model.grads, CLIP)
        opt.step()
    return run, model, b


def identical(cfg, package):
    """Whether one loss (and every gradient) is bit-identical between old and new code."""
    _, new, b = train_run(cfg)
    _, old, _ = train_run(cfg, package)
    if new.loss(b)[0] != old.loss(b)[0]:
        return False
    return all(np.array_equal(new.grads[k], old.grads[k]) for k in new.grads)


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def alternate(runs, repeats, warmup, clock=time.process_time):
    """runs: {name: callable}; each round calls all of them, the order reversed every
    other round. Returns {name: [seconds per round]} on `clock`."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = clock()
            runs[name]()
            times[name].append(clock() - start)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="git revision of the old code (default HEAD)")
    ap.add_argument("--repeats", type=int, default=15, help="alternations (median; default 15, at least 5)")
    ap.add_argument("--passes", type=int, default=1,
                    help="times the whole list of configs is run; a config's median is over all passes")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps of each side first (each pass)")
    ap.add_argument("--configs", default="", help="only configs whose name contains this text")
    ap.add_argument("--clock", default="cpu", choices=sorted(CLOCKS),
                    help="cpu: this process's CPU time (default; on a loaded machine it leaves out "
                         "the time other jobs hold the core), wall: elapsed time")
    args = ap.parse_args(argv)
    if args.repeats < 5 or args.warmup < 0 or args.passes < 1:
        ap.error("--repeats must be at least 5, --warmup at least 0 and --passes at least 1")
    configs = [c for c in TRAIN_CONFIGS if args.configs in c[0]]
    if not configs:
        ap.error(f"no config name contains {args.configs!r}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            package = old_layers(args.rev, tmp)
        except subprocess.CalledProcessError as e:
            sys.exit(f"error: cannot read lm/layers at {args.rev!r}: {e.stderr.decode().strip()}")
        print(f"old: lm/layers at {args.rev}; new: this tree. One BLAS thread, whole training "
              f"steps, {args.clock} time, median of {args.passes} x {args.repeats} alternations "
              f"after {args.warmup} warm-up. "
              f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.", flush=True)
        same = {cfg[0]: identical(cfg, package) for cfg in configs}
        times = {cfg[0]: {"old": [], "new": []} for cfg in configs}
        # several passes over all configs spread slow drifts of the load over every config
        for p in range(args.passes):
            for cfg in configs:
                runs = {"old": train_run(cfg, package)[0], "new": train_run(cfg)[0]}
                for side, ts in alternate(runs, args.repeats, args.warmup, CLOCKS[args.clock]).items():
                    times[cfg[0]][side] += ts
                del runs
        rows = []
        for cfg in configs:
            t = times[cfg[0]]
            old, new = statistics.median(t["old"]), statistics.median(t["new"])
            paired = statistics.median(o / n for o, n in zip(t["old"], t["new"]))
            rows.append((cfg[0], old, new, old / new, paired, same[cfg[0]]))
            print(f"  {cfg[0]}: old {old * 1e3:.1f} ms, new {new * 1e3:.1f} ms, new/old speed "
                  f"{old / new:.3f} (paired {paired:.3f}), identical numbers: {same[cfg[0]]}", flush=True)
    print("\n| train config | old ms/step | new ms/step | new/old speed | paired median | identical |")
    print("|---|---:|---:|---:|---:|---|")
    for name, old, new, ratio, paired, same in rows:
        print(f"| {name} | {old * 1e3:.1f} | {new * 1e3:.1f} | {ratio:.3f} | {paired:.3f} | "
              f"{'yes' if same else 'NO'} |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
