"""Full softmax against AdaptiveSoftmax: the output layer alone, and a word model's training step.

Usage: python scripts/bench_softmax.py [--V 10000] [--H 256] [--N 20] [--T 35]
                                       [--repeats 15] [--grid] [--threads 1]

Targets are drawn from a Zipf law over frequency-sorted ids, p(k) ~ 1/(k+1), roughly
what word corpora look like; the adaptive softmax's speed depends on that (uniform
targets would put most rows in the biggest cluster). Float32 throughout.
  layer: full = TemporalLinear forward + temporal_softmax_loss(per_token=True) + backward;
         adaptive = AdaptiveSoftmax.loss (forward, loss and backward).
  step:  a one-layer LSTM word model (E = H) whose output layer is either of the two:
         encoder forward, output layer, encoder backward, clip_grad_norm and Adam.step.
  --grid: the layer with several cutoffs, to choose `default_cutoffs`.
Tokens/s is N*T over the median of interleaved timings (other processes on the machine
slow both sides alike, so compare the ratios). Three runs on the shared 2-core development
machine (load 1.6-3), one BLAS thread, V=10000, H=256, N*T=20*35, div_value 4; speedup
of the output layer over the full softmax (full: 1.9k-4.2k tok/s):
  cutoffs                  layer speedup
  [500, 2000]              9.2x-10.5x
  [500, 2500]              10.8x-11.1x
  [1000, 2000]             6.9x-7.2x
  [1000, 3333]             7.2x-7.8x    <- default_cutoffs(10000) = [V // 10, V // 3]
  [1000, 5000]             6.4x-7.4x
  [2000, 5000]             4.3x-4.7x
  [2000, 9999]             3.6x-4.2x
  [1000, 2500, 5000]       7.7x-8.9x
  [1000]                   5.2x-5.8x
  training step, 1-layer LSTM, default cutoffs: 2.6x-3.0x (full 1.4k-3.1k tok/s).
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


def zipf_targets(V, shape, rng):
    """Ids in [0, V) with p(k) proportional to 1/(k+1) (id 0 the most frequent)."""
    import numpy as np
    p = 1.0 / np.arange(1, V + 1)
    return rng.choice(V, size=shape, p=p / p.sum())


def interleaved(runs, repeats):
    """{name: median seconds} of callables run in turn, after one warm-up call each."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def layer_runs(V, H, N, T, cutoff_sets, seed=0):
    import numpy as np
    from lm.layers import AdaptiveSoftmax, TemporalLinear
    from lm.layers.losses import temporal_softmax_loss
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, T, H)).astype(np.float32)
    y = zipf_targets(V, (N, T), rng)
    full = TemporalLinear(H, V, rng=rng)

    def run_full():
        full.zero_grad()
        _, ds = temporal_softmax_loss(full.forward(h), y, overwrite_scores=True, per_token=True)
        full.backward(ds)
    runs = {"full": run_full}
    for cutoffs in cutoff_sets:
        asm = AdaptiveSoftmax(H, V, cutoffs, rng=rng)

        def run_adaptive(asm=asm):
            asm.zero_grad()
            asm.loss(h, y)
        runs[f"adaptive {cutoffs}"] = run_adaptive
    return runs


def step_runs(V, H, N, T, cutoffs, seed=0):
    """One training step of an LSTM word model with each output layer."""
    import numpy as np
    from lm.layers import AdaptiveSoftmax, Layer, TemporalLinear
    from lm.layers.losses import temporal_softmax_loss
    from lm.models.encoder import Encoder
    from lm.training.optim import Adam, clip_grad_norm
    rng = np.random.default_rng(seed)
    ids = zipf_targets(V, (N, T), rng)
    y = zipf_targets(V, (N, T), rng)
    runs = {}
    for kind in ("full", "adaptive"):
        model = Layer()
        enc = model.add_child("", Encoder(V, H, H, cell="lstm", rng=rng))
        head = model.add_child("head", TemporalLinear(H, V, rng=rng) if kind == "full"
                               else AdaptiveSoftmax(H, V, cutoffs, rng=rng))
        opt = Adam(model, lr=1e-3)

        def run(model=model, enc=enc, head=head, opt=opt, kind=kind):
            model.zero_grad()
            h, _ = enc.forward(ids)
            if kind == "full":
                _, ds = temporal_softmax_loss(head.forward(h), y, overwrite_scores=True,
                                              per_token=True)
                dh = head.backward(ds)
            else:
                _, dh = head.loss(h, y)
            enc.backward(dh)
            clip_grad_norm(model.grads, 5.0)
            opt.step()
        runs[kind] = run
    return runs


def report(title, medians, tokens, base="full"):
    print(title)
    for name, t in medians.items():
        print(f"  {name:28s} {tokens / t:10.0f} tok/s  {medians[base] / t:5.1f}x")


def main(V, H, N, T, repeats, grid):
    from lm.layers import default_cutoffs
    cutoffs = default_cutoffs(V)
    tokens = N * T
    print(f"V={V} H={H} N*T={N}*{T} float32, Zipf targets, median of {repeats}")
    sets = [cutoffs]
    if grid:
        cands = [[V // 20, V // 5], [V // 20, V // 4], [V // 10, V // 5], [V // 10, V // 3],
                 [V // 10, V // 2],
                 [V // 5, V // 2], [V // 5, V - 1], [V // 10, V // 4, V // 2], [V // 10]]
        sets += [c for c in cands if c != cutoffs]
    report(f"output layer (default cutoffs {cutoffs}):",
           interleaved(layer_runs(V, H, N, T, sets), repeats), tokens)
    report("training step, 1-layer LSTM E=H (forward, loss, backward, clip, Adam):",
           interleaved(step_runs(V, H, N, T, cutoffs), repeats), tokens)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--V", type=int, default=10000)
    ap.add_argument("--H", type=int, default=256)
    ap.add_argument("--N", type=int, default=20)
    ap.add_argument("--T", type=int, default=35)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--grid", action="store_true", help="also time other cutoffs")
    ap.add_argument("--threads", default="1", help="BLAS threads (set before numpy loads)")
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, a.threads)
    main(a.V, a.H, a.N, a.T, a.repeats, a.grid)
