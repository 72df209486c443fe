"""The recall task for the Trainer: a classifier that must name the first token of a
sequence after `length` noise tokens (lm.data.recall), trained and resumed like any run.

The model is `SentimentClassifier` with pooling "last": its loss is read after the last
token, exactly `length` steps from the symbol it needs. An evaluation scores a fixed
held-out set; the best is the highest accuracy (ties: the lower loss). config.json:
{"kind": "recall", "model": the classifier's config, "train": RecallConfig,
"data": {"classes": [...]}}.
"""
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lm.config.recall import FIXED_ON_RESUME, RecallConfig
from lm.config.training import resume_config
from lm.data.recall import RecallBatcher, held_out, recall_vocab
from lm.models.classifier import SentimentClassifier
from lm.storage.checkpoint import (find_checkpoint, load_model, read_json, validate_config,
                                   write_run_metadata)
from lm.models.memory import check_memory, count_params, estimate_memory
from lm.storage.run_dir import (RUNS_ROOT, check_new_run_dir, check_run_dir, prepare_run_dir,
                                resumed_run_config)
from lm.training.evaluation import evaluate_classifier
from lm.training.optim import Adam
from lm.training.trainer import train_best

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass
class RecallTask:
    """What the Trainer trains (see lm.training.trainer)."""
    cfg: RecallConfig
    run_dir: str
    model: SentimentClassifier
    optimizer: Any
    batcher: RecallBatcher
    val: Any                 # lm.data.labeled.LabeledIds, the held-out sequences
    rng: np.random.Generator
    notes: list = field(default_factory=list)
    count_name = "examples"
    improve_eps = 0.0        # accuracy steps are discrete: any gain counts
    carries_state = False

    def evaluate(self, should_stop):
        ev = evaluate_classifier(self.model, self.val, self.cfg.batch_size, should_stop)
        return None if ev is None else {"val_loss": ev["loss"], "val_acc": ev["acc"]}

    def score(self, row):
        return (row["val_acc"], -row["val_loss"])

    def format_eval(self, row, is_best):
        train = "" if row.get("train_loss") is None else f"train loss {row['train_loss']:.4f} | "
        return (f"epoch {row['epoch']:6.2f} | step {row['step']:5d} | {train}held-out loss "
                f"{row['val_loss']:.4f} acc {100 * row['val_acc']:5.1f}% | "
                f"{row['elapsed']:.1f}s" + (" | best" if is_best else ""))

    def after_eval(self, step):
        return None

    def banner(self, resumed_at=None):
        c = self.cfg
        return [f"task    recall the first of {c.length + 1} tokens ({c.symbols} symbols, "
                f"chance {100 / c.symbols:.1f}%); {len(self.val):,} held-out sequences",
                f"model   {c.cell} {c.num_layers}x{c.hidden_size}, embed {c.embed_size}"
                + (f", forget bias {c.forget_bias:g}" if c.cell == "lstm" else "")
                + f": {self.model.num_params():,} parameters ({c.dtype})",
                f"batch   {c.batch_size} new sequences per step, {c.epoch_steps} steps per "
                f"epoch; adam lr {self.optimizer.lr:.2e}",
                f"seed    {c.seed}; run directory {self.run_dir}"
                + (f" (resumed at step {resumed_at:,})" if resumed_at is not None else "")] \
            + [f"note    {n}" for n in self.notes]


MAX_HELD_OUT_TOKENS = 10**8  # val_size x (length + 1): the held-out set is kept in memory


def model_config(cfg):
    """The classifier's config ("model" of config.json) for `cfg`, before building it."""
    return {"vocab_size": 1 + 2 * cfg.symbols, "embed_size": cfg.embed_size,
            "hidden_size": cfg.hidden_size, "cell": cfg.cell, "num_layers": cfg.num_layers,
            "bidirectional": False, "pool": "last", "dropout": 0.0, "num_classes": cfg.symbols}


def check_task_memory(cfg):
    """Refuse (before anything is allocated) a task too large for this machine."""
    if cfg.val_size * (cfg.length + 1) > MAX_HELD_OUT_TOKENS:
        raise ValueError(f"--val_size {cfg.val_size} x --length {cfg.length} is more than "
                         f"{MAX_HELD_OUT_TOKENS:,} held-out tokens; choose smaller ones")
    model = model_config(cfg)
    est = estimate_memory(model, cfg.dtype, cfg.batch_size, cfg.length + 1, training=True)
    check_memory(est, f"training a {cfg.cell} of {cfg.hidden_size:,} units "
                 f"({count_params(model)[0]:,} parameters) on {cfg.length + 1:,} steps",
                 "choose a smaller --hidden_size, --num_layers, --batch_size or --length")


def build_model(cfg, rng=None):
    """The classifier of `cfg` (pooling "last"), LSTM forget-gate biases set to forget_bias."""
    model = SentimentClassifier.build(
        1 + 2 * cfg.symbols, cfg.embed_size, cfg.hidden_size, cell=cfg.cell,
        num_layers=cfg.num_layers, pool="last", num_classes=cfg.symbols,
        dtype=DTYPES[cfg.dtype], rng=rng)
    if cfg.cell == "lstm":  # gate blocks i, f, o, g: f is the second
        H = cfg.hidden_size
        for layer in model.encoder.layers:
            layer.params["b"][H:2 * H] = cfg.forget_bias
    return model


def default_out_dir(cfg):
    return os.path.join(RUNS_ROOT, f"recall-{cfg.cell}-{cfg.length}")


def _resumed_config(cfg, given):
    """The saved run's config with the budgets and schedule given now (--resume)."""
    meta, label = resumed_run_config(cfg.out_dir, "recall", "a recall run")
    saved = RecallConfig.from_dict(meta["train"], label)
    return resume_config(saved, cfg, given, fixed=FIXED_ON_RESUME)


def run_config(run_dir):
    """A recall run's config.json, checked (ValueError if it is another kind of run)."""
    label = os.path.join(run_dir, "config.json")
    meta = validate_config(read_json(label), label)
    if meta["kind"] != "recall" or not isinstance(meta.get("train"), dict):
        raise ValueError(f"{run_dir} is a {meta['kind']} run, not a recall run")
    return meta


def setup(cfg, given=frozenset()):
    """The RecallTask of `cfg` (validated here): a new run (refusing a directory that
    holds one; writes config.json and vocab.json) or, with cfg.resume, the saved one."""
    cfg = cfg.validate()
    if cfg.resume:
        cfg = _resumed_config(cfg, given)
    run_dir = cfg.out_dir or default_out_dir(cfg)
    if not cfg.resume:
        check_new_run_dir(run_dir)
    check_task_memory(cfg)
    rng = np.random.default_rng([cfg.seed, 2])
    model = build_model(cfg, rng)
    optimizer = Adam(model, cfg.learning_rate)
    batcher = RecallBatcher(cfg.batch_size, cfg.length, cfg.symbols, cfg.seed, cfg.epoch_steps)
    val = held_out(cfg.length, cfg.symbols, cfg.val_size, cfg.seed)
    task = RecallTask(cfg, run_dir, model, optimizer, batcher, val, rng)
    prepare_run_dir(run_dir, new=not cfg.resume)
    vocab = recall_vocab(cfg.symbols)
    if not cfg.resume:
        write_run_metadata(run_dir, {
            "kind": "recall", "model": model.config(), "train": cfg.to_dict(),
            "data": {"classes": vocab.itos[1:1 + cfg.symbols]}}, vocab.to_json())
    return task


def train(cfg, given=frozenset(), log=None, progress=None, stop=None):
    """Train on the recall task as `cfg` says; returns (TrainResult, best evaluation row)."""
    return train_best(setup(cfg, given), given, log, progress, stop)


def load_recall(run_dir, which="best", batch=1, steps=1):
    """(model in eval mode, RecallConfig) of a recall run; every file checked, its memory
    on (batch, steps) inputs estimated first."""
    from lm.models.load import check_run_memory

    run_dir = check_run_dir(run_dir)
    cfg = RecallConfig.from_dict(run_config(run_dir)["train"],
                                 os.path.join(run_dir, "config.json"))
    check_run_memory(run_dir, batch, steps)
    if which == "best" and find_checkpoint(run_dir, "best") is None:
        which = "last"
    dtype = DTYPES[cfg.dtype]
    model, _, _, _ = load_model(run_dir, lambda d: SentimentClassifier.from_config(d, dtype),
                                which)
    return model.eval(), cfg


def recall_batch(cfg, batch_size, length=None, seed=None):
    """One batch of the task of `cfg` (held-out stream): Batch(ids (N, L + 1), labels)."""
    from lm.data.batch import Batch
    from lm.data.recall import recall_examples

    rng = np.random.default_rng([cfg.seed if seed is None else seed, 3])
    return Batch(*recall_examples(rng, batch_size, cfg.length if length is None else length,
                                  cfg.symbols))
