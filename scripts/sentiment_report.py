"""Reproduce the README's sentiment table: every encoder on the phrase set and on cs5242.

    LM_DATA_DIR=/path/to/data python scripts/sentiment_report.py [--seeds 0,1,2] [--out_dir DIR]

For each seed and encoder (bag, rnn, gru, lstm, bidirectional lstm, lstm initialised from
a language model, and the same with the encoder frozen) it trains a classifier with the
`python -m lm.sentiment train` defaults and records the test accuracy of the epoch with
the best validation accuracy:
- phrases: phrases_train.tsv (58 phrases, 1/8 held out for validation) -> phrases_test.tsv;
- cs5242: cs5242_corpus.tsv, 600 / 100 / 100 random split drawn with the seed.
The language model is trained first (`python -m lm.train`, word level, lowercase) on the
training texts of the same split only, so no validation or test text is ever seen.
Prints a markdown table: mean test accuracy over the seeds (min-max), and the mean
training seconds (evaluation excluded) on cs5242. Runs are kept under --out_dir.
"""
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: small matrices, one thread

import argparse  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lm.storage.checkpoint import atomic_write  # noqa: E402
from lm.config.sentiment import SentimentConfig  # noqa: E402
from lm.data.labeled import read_examples, split_indices  # noqa: E402
from lm.training.sentiment_task import train_run  # noqa: E402

ENCODERS = [  # (label, classifier flags, language-model pretraining)
    ("bag of words", {"cell": "bag"}, False),
    ("vanilla rnn", {"cell": "rnn"}, False),
    ("gru", {"cell": "gru"}, False),
    ("lstm (default)", {"cell": "lstm"}, False),
    ("bidirectional lstm", {"cell": "lstm", "bidirectional": True}, False),
    ("lstm from a language model", {}, True),
    ("same, encoder frozen", {"freeze_encoder": True}, True),
]
LM_FLAGS = ["--level", "word", "--lowercase", "--min_count", "2", "--cell", "lstm",
            "--embed_size", "32", "--hidden_size", "32", "--sample_length", "0",
            "--eval_every", "100"]
LM_SCHEDULE = {"phrases": ["--max_epochs", "100", "--seq_length", "16", "--batch_size", "4"],
               "cs5242": ["--max_epochs", "40", "--seq_length", "32", "--batch_size", "16"]}


def datasets(data_dir):
    d = os.path.join(data_dir, "sentiment")
    return {"phrases": {"data": os.path.join(d, "phrases_train.tsv"),
                        "test": os.path.join(d, "phrases_test.tsv")},
            "cs5242": {"data": os.path.join(d, "cs5242_corpus.tsv")}}


def pretrain_lm(name, files, seed, out_dir):
    """Train a word-level LSTM language model on the training texts of this split."""
    cfg = SentimentConfig(**files, seed=seed)
    ex = read_examples(cfg.data)
    tr, _, _ = split_indices(len(ex), cfg.val_frac, 0.0 if cfg.test else cfg.test_frac, seed)
    text_path = os.path.join(out_dir, f"{name}-s{seed}-train-texts.txt")
    with atomic_write(text_path, "w") as f:
        f.write("\n".join(ex.texts[i] for i in tr) + "\n")
    lm_dir = os.path.join(out_dir, f"{name}-s{seed}-lm")
    if not os.path.exists(os.path.join(lm_dir, "best.npz")):
        cmd = [sys.executable, "-m", "lm.train", text_path, *LM_FLAGS, *LM_SCHEDULE[name],
               "--seed", str(seed), "--out_dir", lm_dir]
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise SystemExit(f"language model training failed: {p.stderr.strip()}")
    return lm_dir


def run_one(name, files, label, flags, use_lm, seed, out_dir):
    run_dir = os.path.join(out_dir, f"{name}-s{seed}-{label.split(' (')[0].replace(' ', '_')}")
    extra = dict(flags)
    if use_lm:
        extra["init_from"] = pretrain_lm(name, files, seed, out_dir)
    cfg = SentimentConfig(**files, seed=seed, out_dir=run_dir, **extra).validate()
    r = train_run(cfg, log=lambda s: None, progress=False)
    return {"acc": r["test_acc"], "n": r["sizes"]["test"], "secs": r["elapsed"],
            "epoch": r["epoch"]}


def cell(results, as_count=False):
    accs = [100 * r["acc"] for r in results]
    mean = sum(accs) / len(accs)
    if as_count:
        n = results[0]["n"]
        counts = [round(r["acc"] * n) for r in results]
        return f"{sum(counts) / len(counts):.1f}/{n} ({min(counts)}-{max(counts)})"
    return f"{mean:.1f}% ({min(accs):.0f}-{max(accs):.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--data_dir", default=os.environ.get("LM_DATA_DIR"),
                    help="data directory (default $LM_DATA_DIR)")
    ap.add_argument("--out_dir", default=None, help="where the runs go (default: a new temp dir)")
    args = ap.parse_args()
    if not args.data_dir:
        raise SystemExit("error: set LM_DATA_DIR or pass --data_dir")
    seeds = [int(s) for s in args.seeds.split(",")]
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="sentiment-report-")
    os.makedirs(out_dir, exist_ok=True)
    sets = datasets(args.data_dir)
    table = {}
    t0 = time.time()
    for label, flags, use_lm in ENCODERS:
        for name, files in sets.items():
            res = [run_one(name, files, label, flags, use_lm, s, out_dir) for s in seeds]
            table[label, name] = res
            print(f"  {label:28s} {name:8s} test acc {[r['acc'] for r in res]} "
                  f"train s {[r['secs'] for r in res]}", file=sys.stderr, flush=True)
    cmd = f"LM_DATA_DIR=... python scripts/sentiment_report.py --seeds {args.seeds}"
    print(f"Test accuracy, mean over seeds {args.seeds} (min-max); `{cmd}` "
          f"({(time.time() - t0) / 60:.0f} min on this machine; runs in {out_dir})\n")
    print("| encoder | phrases test (20 phrases) | cs5242 test (100 comments) "
          f"| cs5242 seed {seeds[0]} | cs5242 training s |")
    print("|---|---|---|---|---|")
    for label, _, _ in ENCODERS:
        ph, cs = table[label, "phrases"], table[label, "cs5242"]
        secs = sum(r["secs"] for r in cs) / len(cs)
        print(f"| {label} | {cell(ph, as_count=True)} | {cell(cs)} | "
              f"{100 * cs[0]['acc']:.0f}% | {secs:.0f} |")


if __name__ == "__main__":
    main()
