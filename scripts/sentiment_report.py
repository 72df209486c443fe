"""The encoder battlefield: every classifier encoder on every labelled sentiment set.

    LM_DATA_DIR=/path/to/data python scripts/sentiment_report.py [--seeds 0,1,2,3,4]
        [--sets phrases,cs5242,uci_amazon,uci_yelp] [--encoders bag,cnn,...] [--with_lm]
        [--jobs 2] [--figure docs/battlefield.png] [--out_dir DIR] [-- TRAIN FLAGS]

For each set, encoder and seed it trains a classifier with the `python -m lm.sentiment
train` defaults (the same budget for every encoder; flags after `--` change it for all,
e.g. `-- --max_epochs 10`) and records the test accuracy of the evaluation with the best
validation accuracy, the parameters, and the seconds of the whole run (training and the
evaluation after each epoch; curves.png is not drawn):
- phrases: phrases_train.tsv (58 phrases, 1/8 held out for validation) -> phrases_test.tsv;
- cs5242, uci_amazon, uci_yelp: a random 3/4, 1/8, 1/8 split drawn with the seed.
`--with_lm` adds an LSTM initialised from a word-level language model (trained first on
the training texts of the same split only) and the same with its encoder frozen.
Prints a markdown table (mean test accuracy over the seeds, min-max; parameters and
seconds on the largest set) and draws accuracy against training time. `--speed REPEATS`
instead times one epoch of training steps of every encoder, taking turns, on the first
set. Runs are kept under --out_dir; a run already there is reused (resumed to its end if
it was stopped).
"""
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: small matrices, one thread

import argparse  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

ENCODERS = {  # name -> (label, classifier flags, language-model pretraining)
    "bag": ("feed-forward (bag of words)", {"cell": "bag"}, False),
    "cnn": ("cnn", {"cell": "cnn"}, False),
    "rnn": ("vanilla rnn", {"cell": "rnn"}, False),
    "gru": ("gru", {"cell": "gru"}, False),
    "lstm": ("lstm (default)", {"cell": "lstm"}, False),
    "bilstm": ("bidirectional lstm", {"cell": "lstm", "bidirectional": True}, False),
    "cnn-lstm": ("cnn-lstm", {"cell": "cnn-lstm"}, False),
}
WITH_LM = {
    "lm": ("lstm from a language model", {}, True),
    "lm-frozen": ("same, encoder frozen", {"freeze_encoder": True}, True),
}
SETS = ("phrases", "cs5242", "uci_amazon", "uci_yelp")
LM_FLAGS = ["--level", "word", "--lowercase", "--min_count", "2", "--cell", "lstm",
            "--embed_size", "32", "--hidden_size", "32", "--sample_length", "0",
            "--eval_every", "100"]
LM_SCHEDULE = {"phrases": ["--max_epochs", "100", "--seq_length", "16", "--batch_size", "4"]}
LM_SCHEDULE_DEFAULT = ["--max_epochs", "40", "--seq_length", "32", "--batch_size", "16"]


def datasets(data_dir):
    d = os.path.join(data_dir, "sentiment")
    return {"phrases": {"data": os.path.join(d, "phrases_train.tsv"),
                        "test": os.path.join(d, "phrases_test.tsv")},
            "cs5242": {"data": os.path.join(d, "cs5242_corpus.tsv")},
            "uci_amazon": {"data": os.path.join(d, "uci_amazon.tsv")},
            "uci_yelp": {"data": os.path.join(d, "uci_yelp.tsv")}}


def pretrain_lm(name, files, seed, out_dir):
    """Train a word-level LSTM language model on the training texts of this split."""
    from lm.config.sentiment import SentimentConfig
    from lm.data.labeled import read_examples, split_indices
    from lm.storage.checkpoint import atomic_write, find_checkpoint

    cfg = SentimentConfig(**files, seed=seed)
    ex = read_examples(cfg.data)
    tr, _, _ = split_indices(len(ex), cfg.val_frac, 0.0 if cfg.test else cfg.test_frac, seed)
    lm_dir = os.path.join(out_dir, f"{name}-s{seed}-lm")
    if find_checkpoint(lm_dir, "best") is None:
        text_path = os.path.join(out_dir, f"{name}-s{seed}-train-texts.txt")
        with atomic_write(text_path, "w") as f:
            f.write("\n".join(ex.texts[i] for i in tr) + "\n")
        cmd = [sys.executable, "-m", "lm.train", text_path, *LM_FLAGS,
               *LM_SCHEDULE.get(name, LM_SCHEDULE_DEFAULT), "--seed", str(seed),
               "--out_dir", lm_dir]
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        if p.returncode != 0:
            raise SystemExit(f"language model training failed: {p.stderr.strip()}")
    return lm_dir


def run_one(job):
    """Train (or reuse) one run; returns its test accuracy, size and seconds."""
    import lm.training.trainer as trainer
    from lm.config.sentiment import SentimentConfig
    from lm.storage.checkpoint import find_checkpoint, load_arrays, read_json
    from lm.training.classifier_task import train
    from lm.training.metrics import read_metrics

    # no curves.png: a matplotlib figure (~1 s, more on first import) is not the encoder's time
    trainer.redraw_curves = lambda run_dir, log: None

    set_name, files, enc, seed, extra, out_dir = job
    _, flags, use_lm = {**ENCODERS, **WITH_LM}[enc]
    run_dir = os.path.join(out_dir, f"{set_name}-s{seed}-{enc}")
    quiet = lambda line: None  # noqa: E731
    if find_checkpoint(run_dir, "last") is None:
        kw = dict(flags, **extra)
        if use_lm:
            kw["init_from"] = pretrain_lm(set_name, files, seed, out_dir)
        cfg = SentimentConfig(**files, seed=seed, out_dir=run_dir, **kw).validate()
        train(cfg, given=set(kw), log=quiet, progress=False)
    else:  # finish a run that was stopped (a finished one stops at once)
        train(SentimentConfig(out_dir=run_dir, resume=True), given={"resume"}, log=quiet,
              progress=False)
    rows = [r for r in read_metrics(run_dir) if "val_acc" in r]
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))  # the first of equals
    params = sum(a.size for k, a in load_arrays(find_checkpoint(run_dir, "best")).items()
                 if k.startswith("param/"))
    sizes = read_json(os.path.join(run_dir, "config.json"))["data"]["sizes"]
    return {"acc": best["test_acc"], "n": sizes["test"], "secs": rows[-1]["elapsed"],
            "epoch": best["epoch"], "params": int(params)}


def speed(files, encoders, repeats, extra):
    """Training texts per second of each encoder: one epoch of training steps (loss,
    clipping, Adam; no evaluation) on the set's training texts, the encoders taking turns
    `repeats` times so that all see the same machine load; the median of each."""
    import statistics

    from lm.config.sentiment import SentimentConfig
    from lm.training.classifier_task import setup
    from lm.training.trainer import Trainer

    trainers = {}
    with tempfile.TemporaryDirectory(prefix="battlefield-speed-") as tmp:
        for e in encoders:
            kw = dict({**ENCODERS, **WITH_LM}[e][1], **extra)
            cfg = SentimentConfig(**files, out_dir=os.path.join(tmp, e), **kw)
            trainers[e] = Trainer(setup(cfg, set(kw), log=None), log=lambda s: None)
        times = {e: [] for e in encoders}
        for r in range(repeats):
            for e in (encoders if r % 2 == 0 else encoders[::-1]):
                tr = trainers[e]
                texts = 0
                start = time.perf_counter()
                for _ in range(len(tr.task.batcher)):
                    texts += tr.train_step()[1]
                times[e].append((time.perf_counter() - start) / texts)
    return {e: 1.0 / statistics.median(ts) for e, ts in times.items()}


def parse_extra(tokens):
    """`--flag value` / `--switch` pairs after `--`, for every run."""
    from lm.config.sentiment import SentimentConfig

    fields = SentimentConfig.__dataclass_fields__
    out, i = {}, 0
    while i < len(tokens):
        name = tokens[i].lstrip("-").replace("-", "_")
        if not tokens[i].startswith("--") or name not in fields:
            raise SystemExit(f"error: unknown training flag {tokens[i]!r}")
        if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            value, i = tokens[i + 1], i + 2
            kind = fields[name].type
            try:  # the flag's type; validate() then checks the range
                out[name] = kind(value) if kind in (int, float) else value
            except ValueError:
                raise SystemExit(f"error: --{name} must be {kind.__name__}, got {value!r}")
        else:
            out[name], i = True, i + 1
    return out


def cell(results):
    accs = [100 * r["acc"] for r in results]
    if results[0]["n"] <= 20:  # the phrase test: right answers out of 20
        n = results[0]["n"]
        counts = [round(r["acc"] * n) for r in results]
        return f"{sum(counts) / len(counts):.1f}/{n} ({min(counts)}-{max(counts)})"
    return f"{sum(accs) / len(accs):.1f}% ({min(accs):.0f}-{max(accs):.0f})"


def draw(table, encoders, sets, path):
    """Mean test accuracy against mean run seconds, one panel per set, one point per encoder."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.8), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, s in zip(axes[0], sets):
        for i, enc in enumerate(encoders):
            res = table[enc, s]
            accs = [100 * r["acc"] for r in res]
            secs = sum(r["secs"] for r in res) / len(res)
            mean = sum(accs) / len(accs)
            ax.errorbar([secs], [mean], yerr=[[mean - min(accs)], [max(accs) - mean]],
                        fmt="o", color=colors(i % 10), capsize=3,
                        label={**ENCODERS, **WITH_LM}[enc][0])
        ax.set_xlim(left=0)
        ax.set_title(s)
        ax.set_xlabel("seconds per run")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy % (mean, min-max)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    argv = sys.argv[1:]
    extra_tokens = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0-4)")
    ap.add_argument("--sets", default=",".join(SETS), help=f"sets (default {','.join(SETS)})")
    ap.add_argument("--encoders", default=",".join(ENCODERS),
                    help=f"encoders (default {','.join(ENCODERS)})")
    ap.add_argument("--with_lm", action="store_true",
                    help="add the LSTM initialised from a language model, and frozen")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (processes)")
    ap.add_argument("--figure", default=None, help="write accuracy against time here (.png)")
    ap.add_argument("--speed", type=int, default=0, metavar="REPEATS",
                    help="only measure training texts/s per encoder on the first set, the "
                         "encoders taking turns REPEATS times (no accuracy runs)")
    ap.add_argument("--data_dir", default=os.environ.get("LM_DATA_DIR"),
                    help="data directory (default $LM_DATA_DIR)")
    ap.add_argument("--out_dir", default=None, help="where the runs go (default: a new temp dir)")
    args = ap.parse_args(argv)
    if not args.data_dir:
        raise SystemExit("error: set LM_DATA_DIR or pass --data_dir")
    extra = parse_extra(extra_tokens)
    seeds = [int(s) for s in args.seeds.split(",")]
    encoders = args.encoders.split(",") + (list(WITH_LM) if args.with_lm else [])
    sets = args.sets.split(",")
    for e in encoders:
        if e not in {**ENCODERS, **WITH_LM}:
            raise SystemExit(f"error: unknown encoder {e!r}; choose from {', '.join(ENCODERS)}")
    all_sets = datasets(args.data_dir)
    for s in sets:
        if s not in all_sets:
            raise SystemExit(f"error: unknown set {s!r}; choose from {', '.join(all_sets)}")
    if args.speed:
        rates = speed(all_sets[sets[0]], encoders, args.speed, extra)
        print(f"Training texts per second on {sets[0]}, median of {args.speed} epochs each, "
              f"the encoders taking turns (load average {os.getloadavg()[0]:.1f}):\n")
        print("| encoder | texts/s | ms per step |\n|---|---:|---:|")
        bs = int(extra.get("batch_size", 8))
        for e in encoders:
            print(f"| {({**ENCODERS, **WITH_LM})[e][0]} | {rates[e]:,.0f} | "
                  f"{1000 * bs / rates[e]:.1f} |")
        return
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="battlefield-")
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(s, all_sets[s], e, seed, extra, out_dir) for s in sets for e in encoders
            for seed in seeds]
    t0 = time.time()
    pool = ProcessPoolExecutor(args.jobs) if args.jobs > 1 else None
    table = {}
    try:
        for job, r in zip(jobs, pool.map(run_one, jobs) if pool else map(run_one, jobs)):
            s, _, e, seed, _, _ = job
            table.setdefault((e, s), []).append(r)
            print(f"  {s:10s} {e:9s} seed {seed}: test {100 * r['acc']:5.1f}%  best epoch "
                  f"{r['epoch']:g}  {r['secs']:.1f}s", file=sys.stderr, flush=True)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    largest = max(sets, key=lambda s: table[encoders[0], s][0]["n"])
    flags = " ".join(extra_tokens)
    cmd = (f"python scripts/sentiment_report.py --seeds {args.seeds} --sets {args.sets} "
           f"--encoders {args.encoders}{' --with_lm' if args.with_lm else ''}"
           f" --jobs {args.jobs}" + (f" -- {flags}" if flags else ""))
    print(f"Test accuracy, mean over seeds {args.seeds} (min-max); `{cmd}` "
          f"({(time.time() - t0) / 60:.0f} min; runs in {out_dir})\n")
    print("| encoder | " + " | ".join(f"{s} ({table[encoders[0], s][0]['n']} test)"
                                       for s in sets)
          + f" | parameters ({largest}) | seconds per run ({largest}) |")
    print("|---|" + "---|" * len(sets) + "---:|---:|")
    for e in encoders:
        big = table[e, largest]
        secs = sum(r["secs"] for r in big) / len(big)
        print(f"| {({**ENCODERS, **WITH_LM})[e][0]} | "
              + " | ".join(cell(table[e, s]) for s in sets)
              + f" | {big[0]['params']:,} | {secs:.0f} |")
    if args.figure:
        draw(table, encoders, sets, args.figure)
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
