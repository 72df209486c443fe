"""Speed benchmarks: tokens per second of lm against PyTorch, measured in the same run.

Usage:
  python scripts/benchmark.py                      # --suite layers (the default)
  python scripts/benchmark.py --suite layers --repeats 9 --json out.json
  python scripts/benchmark.py --suite train        # training steps + sampling (bench_train.py)
  python scripts/benchmark.py --suite sample       # sampling only
  python scripts/benchmark.py --suite word         # word model: full vs adaptive softmax (bench_train.py)

Suite "layers": forward + backward of one recurrent layer (LSTM, GRU, vanilla RNN) on
float32 batches at (N=64, T=64, D=64, H=512) and (N=32, T=64, D=64, H=256), and of
Conv1D ("conv": kernel 3, padding "same", H filters) against nn.Conv1d fed its own
(N, D, T) layout. Each
figure is the median over --repeats timed runs after --warmup untimed ones; numpy and
PyTorch runs are interleaved so both see the same machine load. PyTorch (nn.LSTM,
nn.GRU, nn.RNN, batch_first, same shapes, input gradient included) is used when it
can be imported, with torch.set_num_threads set to numpy's BLAS thread count; without
it only numpy figures are printed. Prints a table and writes a JSON file.
"""
import argparse
import datetime
import importlib
import json
import os
import platform
import statistics
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_threads  # noqa: E402

# --threads: OpenBLAS reads its thread count when numpy loads it, so it is set first
THREADS_CHOICE = bench_threads.apply(sys.argv[1:])

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

try:
    import torch
except ImportError:  # numpy figures only
    torch = None

LAYER_CONFIGS = [  # (N, T, D, H)
    (64, 64, 64, 512),
    (32, 64, 64, 256),
]
LAYER_CELLS = ("lstm", "gru", "rnn", "conv")
NUMPY_LAYERS = {"lstm": ("lm.layers.lstm", "LSTM"), "gru": ("lm.layers.gru", "GRU"),
                "rnn": ("lm.layers.rnn", "VanillaRNN"), "conv": ("lm.layers.conv", "Conv1D")}
CONV_KERNEL = 3


def numpy_threads():
    """Threads numpy's BLAS uses: threadpoolctl when installed, else the usual env vars, else the CPUs."""
    try:
        from threadpoolctl import threadpool_info
        counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if counts:
            return max(counts)
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def time_interleaved(runs, repeats, warmup, settle=0.0):
    """runs: {name: callable}. Calls them in turn (warm-up first); returns {name: [seconds]}.

    The order alternates between rounds so neither side always runs first. Before each
    timed call we sleep `settle` seconds: after a BLAS call, OpenBLAS's worker threads
    spin for up to ~0.1 s, and on a 2-core machine that spinning steals the cores from
    whichever library runs next (measured: PyTorch at half speed right after numpy).
    """
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            if settle:
                time.sleep(settle)
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


# ---- suite "layers" ---------------------------------------------------------------

def numpy_layer_run(cell, N, T, D, H, rng):
    """A callable doing forward + backward of our layer on fixed float32 data."""
    module, name = NUMPY_LAYERS[cell]
    cls = getattr(importlib.import_module(module), name)
    extra = (CONV_KERNEL,) if cell == "conv" else ()
    layer = cls(D, H, *extra, dtype=np.float32, rng=rng)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    dh = rng.standard_normal((N, T, H)).astype(np.float32)

    def run():
        layer.forward(x)
        layer.backward(dh)
    return run


def torch_layer_run(cell, N, T, D, H, seed):
    """The same with PyTorch's module (input gradient included, like ours)."""
    torch.manual_seed(seed)
    if cell == "conv":  # its native (N, D, T) layout, no transposes timed
        mod = torch.nn.Conv1d(D, H, CONV_KERNEL, padding="same")
        x = torch.randn(N, D, T, requires_grad=True)
        dy = torch.randn(N, H, T)

        def run_conv():
            x.grad = None
            mod(x).backward(dy)
        return run_conv
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        D, H, batch_first=True)
    x = torch.randn(N, T, D, requires_grad=True)
    dh = torch.randn(N, T, H)

    def run():
        x.grad = None
        out, _ = mod(x)
        out.backward(dh)
    return run


def suite_layers(args):
    """Rows {name, numpy_tok_s, torch_tok_s, ratio} for every cell and config."""
    rng = np.random.default_rng(0)
    rows = []
    for N, T, D, H in LAYER_CONFIGS:
        for cell in args.cells:
            runs = {"numpy": numpy_layer_run(cell, N, T, D, H, rng)}
            if torch is not None and not args.no_torch:
                runs["torch"] = torch_layer_run(cell, N, T, D, H, seed=0)
            times = time_interleaved(runs, args.repeats, args.warmup, args.settle)
            row = {"name": f"{cell} N={N} T={T} D={D} H={H}", "cell": cell,
                   "N": N, "T": T, "D": D, "H": H, "tokens": N * T}
            for side, ts in times.items():
                row[f"{side}_tok_s"] = N * T / statistics.median(ts)
                row[f"{side}_seconds"] = ts
            if "torch_tok_s" in row:
                row["ratio"] = row["numpy_tok_s"] / row["torch_tok_s"]
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


# ---- suites "train" and "sample": in scripts/bench_train.py ------------------------

def suite_train(args):
    """Whole training steps (loss + clip + Adam) and sampling; see bench_train.py."""
    import bench_train  # here, not at the top: it imports this module's helpers
    return bench_train.suite_train(args, time_interleaved, format_row)


def suite_sample(args):
    """Sampling speed, one stream of 500 tokens; see bench_train.py."""
    import bench_train
    return bench_train.suite_sample(args, time_interleaved, format_row)


def suite_word(args):
    """A word model's training step, full against adaptive softmax; see bench_train.py."""
    import bench_train
    return bench_train.suite_word(args, time_interleaved, format_row)


def train_table(rows):
    import bench_train
    return bench_train.format_train_table(rows)


SUITES = {"layers": suite_layers, "train": suite_train, "sample": suite_sample,
          "word": suite_word}
TABLES = {"train": train_table, "sample": train_table}  # default: format_table


# ---- output -----------------------------------------------------------------------

def format_row(row):
    cells = [f"{row['name']:<30}", f"{row['numpy_tok_s']:>12,.0f}"]
    if "torch_tok_s" in row:
        cells += [f"{row['torch_tok_s']:>12,.0f}", f"{row['ratio']:>6.2f}"]
    return " | ".join(cells)


def format_table(rows):
    """Markdown table of the rows (the same text the README shows)."""
    with_torch = any("torch_tok_s" in r for r in rows)
    head = "| benchmark | numpy tokens/s |" + (" PyTorch tokens/s | numpy/PyTorch |" if with_torch else "")
    rule = "|---|---:|" + ("---:|---:|" if with_torch else "")
    lines = [head, rule]
    for r in rows:
        line = f"| {r['name']} | {r['numpy_tok_s']:,.0f} |"
        if with_torch:
            line += (f" {r['torch_tok_s']:,.0f} | {r['ratio']:.2f} |" if "torch_tok_s" in r else " - | - |")
        lines.append(line)
    return "\n".join(lines)


def load_average():
    """1-minute load average (None where the OS has none): a busy machine skews figures."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def environment():
    env = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "python": platform.python_version(), "numpy": np.__version__,
           "machine": platform.machine(), "processor": platform.processor(),
           "cpus": os.cpu_count(), "numpy_threads": numpy_threads()}
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="layers", choices=sorted(SUITES),
                    help="which benchmark to run (default: layers)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs per figure (median; default 7, train 5, sample 3)")
    ap.add_argument("--threads", default=None,
                    help="BLAS threads for both numpy and PyTorch: a number or 'auto' (1 on "
                         "a busy machine, else all CPUs; the default of the train and sample "
                         "suites); the layers suite defaults to numpy's own choice")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    ap.add_argument("--settle", type=float, default=0.25,
                    help="seconds of idle before each timed run, so the other library's "
                         "spinning threads go quiet (default 0.25)")
    ap.add_argument("--cells", default=",".join(LAYER_CELLS),
                    help="comma-separated cells for the layers suite (default: lstm,gru,rnn,conv)")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    ap.add_argument("--no-memory", action="store_true",
                    help="train suite: skip the peak-memory subprocesses")
    ap.add_argument("--json", default=None,
                    help="where to write the results (default: benchmark_<suite>.json in the cwd)")
    args = ap.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if args.repeats is None:
        args.repeats = {"train": 5, "sample": 3}.get(args.suite, 7)
    bad = [c for c in args.cells if c not in LAYER_CELLS]
    threads_ok = args.threads in (None, "auto") or (args.threads.isdigit() and int(args.threads) >= 1)
    if bad or args.repeats < 1 or args.warmup < 0 or args.settle < 0 or not threads_ok:
        ap.error(f"--cells must be among {', '.join(LAYER_CELLS)}; --repeats >= 1; "
                 "--warmup >= 0; --settle >= 0; --threads auto or >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if torch is not None and not args.no_torch:
        torch.set_num_threads(numpy_threads())  # same thread count on both sides
    env = environment()
    env["threads_choice"] = THREADS_CHOICE
    print(f"suite {args.suite}: numpy {env['numpy']} ({env['numpy_threads']} threads, {THREADS_CHOICE})"
          + (f", PyTorch {env['torch']} ({env['torch_threads']} threads)" if "torch" in env and not args.no_torch
             else ", PyTorch not used") + f", median of {args.repeats} runs after {args.warmup} warm-up")
    load0 = load_average()
    rows = SUITES[args.suite](args)
    load1 = load_average()
    cpus = env["cpus"] or 1
    # before the run the machine should be idle; during it we ourselves load every CPU
    if load0 is not None and (load0 > 0.5 * cpus or load1 > 1.5 * cpus):
        print(f"warning: machine busy (load average {load0:.1f} -> {load1:.1f} on "
              f"{env['cpus']} CPUs): figures are unreliable", file=sys.stderr)
    print()
    print(TABLES.get(args.suite, format_table)(rows))
    path = args.json or f"benchmark_{args.suite}.json"
    with open(path, "w") as f:
        json.dump({"suite": args.suite, "environment": env, "repeats": args.repeats,
                   "warmup": args.warmup, "settle": args.settle, "load_average": load_average(),
                   "rows": rows}, f, indent=2)
    print(f"\nwrote {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
