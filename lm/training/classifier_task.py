"""The classifier's task for the Trainer: labelled data, splits, vocabulary (its own or a
language model's), model, optimiser; its evaluation of every split, banner and log line.

`train(cfg)` runs it. An evaluation scores the train, validation and test splits (dropout
off); the best is the highest validation accuracy, ties broken by the lower validation
loss. Resume (`cfg.resume`) rebuilds the same splits, vocabulary and model from the run's
own config.json, then continues from the last checkpoint exactly.
"""
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lm.config.sentiment import FIXED_ON_RESUME, SentimentConfig
from lm.config.training import resume_config
from lm.data.labeled import (TextBatcher, build_vocab, class_index, read_examples, split_indices,
                             subset, unk_rate)
from lm.models.classifier import SentimentClassifier
from lm.models.memory import check_memory, count_params, estimate_memory
from lm.models.load import copy_encoder_weights, load_lm_encoder
from lm.storage.checkpoint import (check_fits_checkpoint, find_checkpoint, read_json,
                                   read_vocab, validate_config, write_run_metadata)
from lm.storage.run_dir import (RUNS_ROOT, check_new_run_dir, corpus_label, prepare_run_dir,
                                resumed_run_config)
from lm.text.vocab import Vocab
from lm.training.evaluation import evaluate_classifier
from lm.training.optim import Adam
from lm.training.trainer import train_best

DTYPES = {"float32": np.float32, "float64": np.float64}
SPLITS = ("train", "val", "test")


@dataclass
class ClassifierTask:
    """What the Trainer trains (see lm.training.trainer)."""
    cfg: SentimentConfig
    run_dir: str
    splits: dict           # "train" / "val" / "test" -> lm.data.labeled.LabeledIds
    classes: list
    vocab: Vocab
    model: SentimentClassifier
    optimizer: Any
    batcher: TextBatcher
    rng: np.random.Generator
    frozen: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    count_name = "examples"
    improve_eps = 0.0      # accuracy steps are discrete: any gain counts
    carries_state = False

    def evaluate(self, should_stop):
        row = {}
        for name in SPLITS:
            ev = evaluate_classifier(self.model, self.splits[name], self.cfg.batch_size,
                                     should_stop)
            if ev is None:
                return None
            row[f"{name}_loss"], row[f"{name}_acc"] = ev["loss"], ev["acc"]
        key = "val" if len(self.splits["val"]) else "train"  # no validation set: train
        row["val_loss"] = row[f"{key}_loss"]
        if key == "train":
            row["val_acc"] = row["train_acc"]
        return row

    def score(self, row):
        return (row["val_acc"], -row["val_loss"])

    def format_eval(self, row, is_best):
        return format_row(row, is_best)

    def after_eval(self, step):
        return None

    def banner(self, resumed_at=None):
        sizes = {n: len(s) for n, s in self.splits.items()}
        frozen = sum(self.model.params[n].size for n in self.frozen)
        lines = [f"data    {self.cfg.data}: {sizes['train']} train, {sizes['val']} validation, "
                 f"{sizes['test']} test examples; classes {', '.join(self.classes)}",
                 f"vocab   {len(self.vocab):,} {self.vocab.level} tokens",
                 f"model   {self.cfg.cell}{' bidirectional' if self.cfg.bidirectional else ''}"
                 + "".join(f" {k} {v}" for k, v in self.model.encoder.conv_config().items())
                 + ", "
                 f"{self.model.num_params():,} parameters"
                 + (f" ({frozen:,} frozen)" if frozen else "") + f" ({self.cfg.dtype})",
                 f"batch   {self.batcher.batch_size} texts per step ({len(self.batcher)} steps "
                 f"per epoch); adam lr {self.optimizer.lr:.2e}",
                 f"seed    {self.cfg.seed}; run directory {self.run_dir}"
                 + (f" (resumed at step {resumed_at:,})" if resumed_at is not None else "")]
        return lines + [f"note    {n}" for n in self.notes]


def format_row(row, best=False):
    """One line per evaluation: losses and accuracies of each split (absent splits skipped)."""
    parts = [f"epoch {row['epoch']:6.2f}", f"step {row['step']:5d}"]
    for name in SPLITS:
        if row.get(f"{name}_loss") is not None:
            parts.append(f"{name} loss {row[f'{name}_loss']:.4f} acc "
                         f"{100 * row[f'{name}_acc']:5.1f}%")
    parts.append(f"{row['elapsed']:.1f}s")
    return " | ".join(parts) + (" | best" if best else "")


def default_out_dir(cfg):
    """checkpoints/sentiment-<data>-<cell>[-bi], or sentiment-<data>-from-<LM run name>."""
    name = f"sentiment-{corpus_label(cfg.data)}-"
    if cfg.init_from:
        name += f"from-{corpus_label(cfg.init_from)}"
    else:
        name += cfg.cell + ("-bi" if cfg.bidirectional else "")
    return os.path.join(RUNS_ROOT, name)


def _resumed_config(cfg, given):
    """The saved run's config with the budgets and schedule given now (--resume)."""
    meta, label = resumed_run_config(cfg.out_dir, "sentiment", "a classifier")
    saved = SentimentConfig.from_dict(meta["train"], label)
    files = meta.get("data", {}).get("paths")
    files = files if isinstance(files, dict) else {}
    for name in ("data", "neg", "test"):  # the same files, whatever the current directory
        path = files.get(name)
        if isinstance(path, str) and os.path.isfile(path):
            setattr(saved, name, path)
    given = set(given) - {"data", "neg", "test"}
    return resume_config(saved, cfg, given, fixed=FIXED_ON_RESUME)


def check_classifier_memory(cfg, vocab_size, num_classes, texts):
    """Refuse (NotEnoughMemory) a classifier whose training step on a batch of the longest
    training text would not fit in the memory available (characters bound its tokens)."""
    model = {"vocab_size": vocab_size, "embed_size": cfg.embed_size,
             "hidden_size": cfg.hidden_size, "cell": cfg.cell, "num_layers": cfg.num_layers,
             "bidirectional": cfg.bidirectional, "num_classes": num_classes}
    longest = max((len(t) for t in texts), default=1)
    est = estimate_memory(model, cfg.dtype, min(cfg.batch_size, len(texts) or 1), longest,
                          training=True)
    check_memory(est, f"training a {cfg.cell} classifier of {cfg.hidden_size:,} units "
                 f"({count_params(model)[0]:,} parameters, {vocab_size:,} tokens, "
                 f"texts of up to {longest:,} characters)",
                 "choose a smaller --hidden_size, --num_layers, --embed_size or --batch_size")


def setup(cfg, given=frozenset(), log=print):
    """Build the ClassifierTask for `cfg` (validated here): data, splits, vocabulary, model.

    New run: refuses a directory that already holds a run, writes config.json and
    vocab.json. --resume: the run's own config; the Trainer then loads the last checkpoint.
    """
    cfg = cfg.validate()
    if cfg.resume:
        cfg = _resumed_config(cfg, given)
    if not cfg.data:
        raise ValueError("give the training data: python -m lm.sentiment train DATA "
                         "(label<TAB>text lines)")
    run_dir = cfg.out_dir or default_out_dir(cfg)
    if not cfg.resume:
        check_new_run_dir(run_dir)
    data = read_examples(cfg.data, cfg.neg, cfg.encoding, cfg.encoding_errors)
    classes = list(data.label_names)
    tr, va, te = split_indices(len(data), cfg.val_frac, 0.0 if cfg.test else cfg.test_frac,
                               cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    notes = []
    if cfg.resume:  # the run's own vocabulary (its --init_from model may be gone)
        label = os.path.join(run_dir, "config.json")
        meta = validate_config(read_json(label), label)
        check_fits_checkpoint(meta, find_checkpoint(run_dir, "last"), label)
        vocab = Vocab.from_json(read_vocab(run_dir, meta["model"]))
        drop_spaces = bool(meta["data"]["drop_spaces"])
    elif cfg.init_from:
        lm_model, vocab, enc_arrays = load_lm_encoder(cfg.init_from)
        cfg = dataclasses.replace(  # config.json records what the language model fixed
            cfg, cell=lm_model["cell"], embed_size=lm_model["embed_size"],
            hidden_size=lm_model["hidden_size"], num_layers=lm_model.get("num_layers", 1),
            level=vocab.level, lowercase=vocab.lowercase)
        drop_spaces = False  # the LM read whitespace tokens: give it the same sequences
    else:
        drop_spaces = cfg.level == "word"
        vocab = build_vocab([data.texts[i] for i in tr], cfg.level, cfg.lowercase,
                            cfg.min_count, drop_spaces)
    check_classifier_memory(cfg, len(vocab), len(classes), [data.texts[i] for i in tr])
    model = SentimentClassifier.build(
        len(vocab), cfg.embed_size, cfg.hidden_size, cell=cfg.cell, num_layers=cfg.num_layers,
        bidirectional=cfg.bidirectional, pool=cfg.pool, dropout=cfg.dropout,
        num_classes=len(classes), dtype=DTYPES[cfg.dtype], rng=rng, filters=cfg.filters,
        kernel_size=cfg.kernel_size, pool_size=cfg.pool_size)
    if cfg.init_from and not cfg.resume:
        copied = copy_encoder_weights(model, enc_arrays)
        notes.append(f"init_from {cfg.init_from}: {len(copied)} encoder weights and a "
                     f"vocabulary of {len(vocab):,} {vocab.level} tokens")
    labels = class_index(data, classes, cfg.data)
    splits = {name: subset(data.texts, labels, idx, vocab, drop_spaces)
              for name, idx in zip(SPLITS, (tr, va, te))}
    if cfg.test:
        test = read_examples(cfg.test, None, cfg.encoding, cfg.encoding_errors, min_classes=1)
        splits["test"] = subset(test.texts, class_index(test, classes, cfg.test),
                                np.arange(len(test)), vocab, drop_spaces)
    if not len(splits["train"]):
        raise ValueError("the training set is empty")
    frozen = [n for n in model.params if n.startswith(("embed.", "rnn"))] \
        if cfg.freeze_encoder else []
    optimizer = Adam(model, cfg.learning_rate, weight_decay=cfg.weight_decay, frozen=frozen,
                     decay=model.decayed_names())
    batcher = TextBatcher(splits["train"], cfg.batch_size, rng)
    if batcher.note:
        notes.append(batcher.note)
    task = ClassifierTask(cfg, run_dir, splits, classes, vocab, model, optimizer, batcher, rng,
                          frozen, notes)
    prepare_run_dir(run_dir, new=not cfg.resume)
    sizes = {name: len(s) for name, s in splits.items()}
    paths = {n: os.path.abspath(getattr(cfg, n)) if getattr(cfg, n) else ""
             for n in ("data", "neg", "test")}
    write_run_metadata(run_dir, {
        "kind": "sentiment", "model": model.config(), "train": cfg.to_dict(),
        "data": {"classes": classes, "drop_spaces": drop_spaces, "sizes": sizes,
                 "files": {"data": cfg.data, "neg": cfg.neg, "test": cfg.test}, "paths": paths,
                 "unk_rate": {n: round(unk_rate(s, vocab), 4) for n, s in splits.items()}}},
        vocab.to_json())
    return task


def train(cfg, given=frozenset(), log=None, progress=None, stop=None):
    """Train a classifier as `cfg` says; returns (TrainResult, the best evaluation's row)."""
    return train_best(setup(cfg, given), given, log, progress, stop)
