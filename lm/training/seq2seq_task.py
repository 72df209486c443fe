"""The sequence-to-sequence task for the Trainer: addition questions or a pairs file, the
held-out split, the character vocabulary, model, optimiser; its evaluation and log line.

`train(cfg)` runs it. An evaluation decodes the held-out pairs greedily (exact-match and
per-character accuracy) and scores them with teacher forcing (loss); the best is the
highest exact-match accuracy, ties broken by the lower loss; training stops once it
reaches `--target_acc`. Resume (`cfg.resume`) rebuilds the same pairs, split,
vocabulary and model from the run's own config.json and continues exactly.
"""
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lm.config.seq2seq import FIXED_ON_RESUME, Seq2SeqConfig
from lm.config.training import resume_config
from lm.data.pairs import (PairBatcher, addition_pairs, build_vocab, encode_pairs,
                           split_pairs)
from lm.models.seq2seq import Seq2Seq
from lm.storage.checkpoint import (check_fits_checkpoint, find_checkpoint, read_vocab,
                                   write_run_metadata)
from lm.storage.run_dir import (RUNS_ROOT, check_new_run_dir, corpus_label, prepare_run_dir,
                                resumed_run_config)
from lm.text.pairs import MAX_SIDE_CHARS, read_pairs
from lm.text.vocab import Vocab
from lm.training.evaluation import evaluate_seq2seq
from lm.training.optim import Adam
from lm.training.trainer import train_best

DTYPES = {"float32": np.float32, "float64": np.float64}
EVAL_BATCH = 500        # pairs per evaluation batch (no backward: larger batches pay)
TRAIN_EVAL = 1000       # training pairs decoded at each evaluation (train_acc)


@dataclass
class Seq2SeqTask:
    """What the Trainer trains (see lm.training.trainer)."""
    cfg: Seq2SeqConfig
    run_dir: str
    splits: dict           # "train" / "val" -> lm.data.pairs.PairIds
    vocab: Vocab
    model: Seq2Seq
    optimizer: Any
    batcher: PairBatcher
    rng: np.random.Generator
    notes: list = field(default_factory=list)
    count_name = "tokens"  # target characters (and <eos>)
    improve_eps = 0.0      # accuracy steps are discrete: any gain counts
    carries_state = False

    def evaluate(self, should_stop):
        val = self.splits["val"] if len(self.splits["val"]) else self.splits["train"]
        ev = evaluate_seq2seq(self.model, val, self.vocab, EVAL_BATCH, should_stop)
        if ev is None:
            return None
        train = self.splits["train"]
        sub = _head(train, TRAIN_EVAL)
        tr = evaluate_seq2seq(self.model, sub, self.vocab, EVAL_BATCH, should_stop)
        if tr is None:
            return None
        return {"val_loss": ev["loss"], "val_acc": ev["acc"], "val_char_acc": ev["char_acc"],
                "train_acc": tr["acc"]}

    def score(self, row):
        return (row["val_acc"], -row["val_loss"])

    def reached(self, row):
        return self.cfg.target_acc > 0 and row["val_acc"] >= self.cfg.target_acc

    def format_eval(self, row, is_best):
        return format_row(row, is_best)

    def after_eval(self, step):
        return None

    def banner(self, resumed_at=None):
        c = self.cfg
        what = f"addition, {c.digits} digits" if c.task == "addition" else c.data
        lines = [f"data    {what}: {len(self.splits['train']):,} train, "
                 f"{len(self.splits['val']):,} held-out pairs"
                 + ("; sources reversed in the model" if c.reverse else ""),
                 f"vocab   {len(self.vocab)} characters (specials included)",
                 f"model   {c.cell}{' bidirectional' if c.bidirectional else ''} "
                 f"{c.hidden_size}, decoder input {c.decoder_input}"
                 + (" + encoder state" if self.model.feed_state else "") + ", "
                 f"{self.model.num_params():,} parameters ({c.dtype})",
                 f"batch   {self.batcher.batch_size} pairs per step ({len(self.batcher)} steps "
                 f"per epoch); adam lr {self.optimizer.lr:.2e}",
                 f"stop    {c.max_epochs:g} epochs"
                 + (f", {c.time_budget:g}s" if c.time_budget else "")
                 + (f", held-out accuracy {100 * c.target_acc:g}%" if c.target_acc else ""),
                 f"seed    {c.seed}; run directory {self.run_dir}"
                 + (f" (resumed at step {resumed_at:,})" if resumed_at is not None else "")]
        return lines + [f"note    {n}" for n in self.notes]


def _head(data, n):
    """The first n pairs of a split, as a PairIds."""
    from lm.data.pairs import PairIds

    return PairIds(data.sources[:n], data.targets[:n], data.src_ids[:n], data.tgt_ids[:n])


def format_row(row, best=False):
    """One line per evaluation: loss and held-out exact-match and character accuracy."""
    train = "" if row.get("train_loss") is None else f" | train loss {row['train_loss']:.4f}"
    return (f"epoch {row['epoch']:6.2f} | step {row['step']:6d}{train} | val loss "
            f"{row['val_loss']:.4f} | exact {100 * row['val_acc']:6.2f}% | chars "
            f"{100 * row['val_char_acc']:6.2f}% | train exact {100 * row['train_acc']:6.2f}% "
            f"| {row['elapsed']:.1f}s" + (" | best" if best else ""))


def default_out_dir(cfg):
    """checkpoints/seq2seq-addition3-<cell>, or seq2seq-<data file>-<cell>."""
    what = f"addition{cfg.digits}" if cfg.task == "addition" else corpus_label(cfg.data)
    return os.path.join(RUNS_ROOT, f"seq2seq-{what}-{cfg.cell}")


def _resumed_config(cfg, given):
    """(the saved run's config with the budgets and schedule given now, its config.json
    "model") for --resume."""
    meta, label = resumed_run_config(cfg.out_dir, "seq2seq", "a seq2seq model")
    check_fits_checkpoint(meta, find_checkpoint(cfg.out_dir, "last"), label)
    saved = Seq2SeqConfig.from_dict(meta["train"], label)
    path = meta.get("data", {}).get("path")
    if isinstance(path, str) and path and os.path.isfile(path):
        saved.data = path  # the same file, whatever the current directory
    return resume_config(saved, cfg, set(given) - {"data"}, fixed=FIXED_ON_RESUME), meta["model"]


def load_pairs(cfg):
    """The task's pairs [(source, target), ...]: the addition questions or the file's."""
    if cfg.task == "addition":
        return addition_pairs(cfg.num_questions, cfg.digits, cfg.seed)
    return read_pairs(cfg.data, cfg.encoding, cfg.encoding_errors)


def setup(cfg, given=frozenset()):
    """Build the Seq2SeqTask for `cfg` (validated here): pairs, split, vocabulary, model.

    New run: refuses a directory that already holds a run, writes config.json and
    vocab.json. --resume: the run's own config; the Trainer then loads the last checkpoint.
    """
    cfg = cfg.validate()
    if cfg.resume:
        cfg, saved_model = _resumed_config(cfg, given)
    run_dir = cfg.out_dir or default_out_dir(cfg)
    if not cfg.resume:
        check_new_run_dir(run_dir)
    pairs = load_pairs(cfg)
    tr, va = split_pairs([s for s, _ in pairs], cfg.val_frac, cfg.seed)
    if cfg.resume:
        vocab = Vocab.from_json(read_vocab(run_dir, saved_model))  # bounded by vocab_size
    else:
        vocab = build_vocab([pairs[i] for i in tr])
    longest = max(len(t) for _, t in pairs)
    # addition answers have a fixed width; other targets may need more than the longest seen
    max_len = longest + 1 if cfg.task == "addition" else min(2 * longest, MAX_SIDE_CHARS) + 1
    rng = np.random.default_rng(cfg.seed)
    model = Seq2Seq(len(vocab), cfg.embed_size, cfg.hidden_size, cfg.cell, cfg.num_layers,
                    cfg.bidirectional, cfg.decoder_input, cfg.reverse, cfg.dropout,
                    max_target_len=max_len, bos_id=vocab.bos_id, eos_id=vocab.eos_id,
                    feed_state=cfg.feed_state, dtype=DTYPES[cfg.dtype], rng=rng)
    splits = {"train": encode_pairs([pairs[i] for i in tr], vocab),
              "val": encode_pairs([pairs[i] for i in va], vocab)}
    optimizer = Adam(model, cfg.learning_rate)
    batcher = PairBatcher(splits["train"], cfg.batch_size, rng)
    notes = [batcher.note] if batcher.note else []
    task = Seq2SeqTask(cfg, run_dir, splits, vocab, model, optimizer, batcher, rng, notes)
    prepare_run_dir(run_dir, new=not cfg.resume)
    write_run_metadata(run_dir, {
        "kind": "seq2seq", "model": model.config(), "train": cfg.to_dict(),
        "data": {"task": cfg.task, "digits": cfg.digits if cfg.task == "addition" else None,
                 "sizes": {n: len(s) for n, s in splits.items()}, "file": cfg.data,
                 "path": os.path.abspath(cfg.data) if cfg.data else ""}},
        vocab.to_json())
    return task


def train(cfg, given=frozenset(), log=None, progress=None, stop=None):
    """Train a seq2seq model as `cfg` says; returns (TrainResult, the best evaluation's row)."""
    return train_best(setup(cfg, given), given, log, progress, stop)
