"""The adder's benchmark: epochs and minutes of training to 99% held-out exact match.

    python scripts/bench_seq2seq.py                          # every row, 600 s each, 2 at a time
    python scripts/bench_seq2seq.py --rows default,gru --time_budget 300 --parallel 1

Each row is `python -m lm.seq2seq train` with the defaults (3 digits, 50,000 questions:
45,000 train / 5,000 held out, LSTM 128, teacher forcing, reversed sources) and one
change; it stops at 99% held-out exact match or at the time budget. The table (markdown,
for the README) gives the epoch and the training minutes of the first evaluation at 99%
(an evaluation every 200 steps, 0.57 epoch), or the best accuracy reached. Runs go to
--out_root/<row>; a row whose directory holds a finished run is read, not trained again.
Rows run `--parallel` at a time, each with one BLAS thread: minutes depend on the load.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROWS = {
    "default": ("LSTM, teacher forcing, reversed (the defaults)", []),
    "nofeed": ("LSTM, teacher forcing without --feed_state, reversed", ["--nofeed_state"]),
    "repeat": ("LSTM, repeat (RepeatVector), reversed", ["--decoder_input", "repeat"]),
    "forward": ("LSTM, teacher forcing, not reversed", ["--noreverse"]),
    "gru": ("GRU, teacher forcing, reversed", ["--cell", "gru"]),
    "rnn": ("vanilla RNN, teacher forcing, reversed", ["--cell", "rnn"]),
    "digits4": ("4 digits, LSTM, teacher forcing, reversed", ["--digits", "4"]),
    "digits5": ("5 digits, LSTM, teacher forcing, reversed", ["--digits", "5"]),
}
TARGET = 0.99


def read_rows(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(name, run_dir):
    evals = [r for r in read_rows(run_dir) if "val_acc" in r]
    label = ROWS[name][0]
    if not evals:
        return f"| {label} | - | - | no evaluation | - |"
    hit = next((r for r in evals if r["val_acc"] >= TARGET), None)
    best = max(r["val_acc"] for r in evals)
    last = evals[-1]
    per_epoch = last["elapsed"] / max(last["epoch"], 1e-9) / 60
    if hit:
        return (f"| {label} | {hit['epoch']:.1f} | {hit['elapsed'] / 60:.1f} | "
                f"{100 * hit['val_acc']:.2f}% | {per_epoch:.2f} |")
    return (f"| {label} | not in {last['epoch']:.1f} | not in {last['elapsed'] / 60:.1f} | "
            f"{100 * best:.2f}% (best) | {per_epoch:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated: " + ", ".join(ROWS))
    ap.add_argument("--time_budget", type=float, default=600.0, help="seconds per row")
    ap.add_argument("--parallel", type=int, default=2, help="rows trained at once")
    ap.add_argument("--out_root", default="checkpoints/bench-seq2seq")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        sys.exit(f"error: unknown row {unknown[0]!r}; choose from {', '.join(ROWS)}")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    todo = [n for n in names if not os.path.exists(os.path.join(args.out_root, n,
                                                                "last.safetensors"))]
    running = []
    t0 = time.monotonic()
    while todo or running:
        while todo and len(running) < args.parallel:
            name = todo.pop(0)
            out = os.path.join(args.out_root, name)
            cmd = [sys.executable, "-m", "lm.seq2seq", "train", *ROWS[name][1],
                   "--time_budget", str(args.time_budget), "--target_acc", str(TARGET),
                   "--seed", str(args.seed), "--out_dir", out]
            print(f"[{time.monotonic() - t0:6.0f}s] start {name}: {' '.join(cmd[1:])}",
                  flush=True)
            os.makedirs(args.out_root, exist_ok=True)
            log = open(os.path.join(args.out_root, f"{name}.log"), "w")
            running.append((name, subprocess.Popen(cmd, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT), log))
        time.sleep(2)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"[{time.monotonic() - t0:6.0f}s] done  {name} (exit {proc.returncode})",
                      flush=True)
    print(f"\nAddition, 50,000 questions (45,000 train / 5,000 held out), seed {args.seed}; "
          f"training stops at {100 * TARGET:g}% held-out exact match or after "
          f"{args.time_budget:g} s\n")
    print("| run | epochs to 99% | minutes to 99% | held-out exact match | minutes per epoch |")
    print("|---|---|---|---|---|")
    for name in names:
        print(summary(name, os.path.join(args.out_root, name)))


if __name__ == "__main__":
    main()
