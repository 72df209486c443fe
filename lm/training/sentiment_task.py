"""Sentiment training loop: length-bucketed padded batches, per-epoch evaluation, best model kept.

One epoch = one pass over the training set in batches of similar lengths:

    shuffle -> cut into pools of POOL_BATCHES batches -> sort each pool by length
    -> cut into batches -> shuffle the batch order

so that a batch holds sentences of nearly equal length (little padding) while the order
stays random. After each epoch the train, validation and test sets are evaluated
(evaluation mode, no dropout), one line is printed and appended to `metrics.jsonl`, and
the weights are written to `best.npz` when validation accuracy improves (ties broken by
the lower validation loss).
"""
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from lm.cli import CliError
from lm.training.optim import Adam, clip_grad_norm

POOL_BATCHES = 20


@dataclass
class LabeledIds:
    """One split: the texts, their token ids (one 1-D int array each) and labels (n,)."""
    texts: list
    ids: list
    labels: np.ndarray
    lengths: np.ndarray = field(init=False)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.lengths = np.array([len(x) for x in self.ids], dtype=np.int64)

    def __len__(self):
        return len(self.ids)


def pad_batch(seqs, pad_id=0):
    """seqs: list of N 1-D int arrays -> ids (N, T) int64, mask (N, T) bool (True = token).

    T is the longest sequence; shorter ones are padded with `pad_id` (after the tokens,
    so the valid steps are a prefix of each row, as the recurrent layers require).
    """
    T = max(1, max((len(s) for s in seqs), default=1))
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), T), dtype=bool)
    for n, s in enumerate(seqs):
        ids[n, :len(s)] = s
        mask[n, :len(s)] = True
    return ids, mask


def length_batches(lengths, batch_size, rng=None):
    """Lists of indices into `lengths`, batches of similar lengths.

    rng None: every index in increasing length order (evaluation). Otherwise a random
    order bucketed as described in the module docstring (training).
    """
    lengths = np.asarray(lengths)
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    pool = batch_size * POOL_BATCHES
    batches = []
    for a in range(0, n, pool):
        chunk = order[a:a + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def evaluate(model, data, batch_size=64):
    """Mean cross-entropy, accuracy and probabilities (n, C) of `model` on `data`.

    Returns {"loss", "acc", "probs", "pred"}; loss and acc are None for an empty set.
    """
    C = model.num_classes
    probs = np.zeros((len(data), C))
    for idx in length_batches(data.lengths, batch_size):
        ids, mask = pad_batch([data.ids[i] for i in idx])
        probs[idx] = model.predict_proba(ids, mask)
    if not len(data):
        return {"loss": None, "acc": None, "probs": probs, "pred": np.zeros(0, np.int64)}
    p_true = probs[np.arange(len(data)), data.labels]
    pred = probs.argmax(axis=1)
    return {"loss": float(-np.mean(np.log(np.maximum(p_true, 1e-300)))),
            "acc": float(np.mean(pred == data.labels)), "probs": probs, "pred": pred}


def is_better(cur, best):
    """Higher validation accuracy wins; on a tie, lower validation loss."""
    if best is None:
        return True
    return (cur[0], -cur[1]) > (best[0], -best[1])


def train_classifier(model, splits, cfg, rng, out_dir=None, frozen=(), log=print,
                     progress=None):
    """Train `model` on splits["train"], evaluating every split after each epoch.

    splits: {"train", "val", "test"} -> LabeledIds (val/test may be empty). cfg needs
    max_epochs, batch_size, learning_rate, weight_decay, grad_clip, time_budget. `frozen`:
    parameter names the optimiser leaves alone. With `out_dir`, metrics.jsonl is appended
    and best.npz / last.npz written (see lm.models.load). Returns a summary dict: the
    metrics row of the best epoch and "elapsed" (training seconds, evaluation excluded).
    The best weights are loaded back into `model` before returning.
    """
    from lm.models.load import append_metrics, save_weights

    train, val = splits["train"], splits["val"]
    if not len(train):
        raise ValueError("the training set is empty")
    opt = Adam(model, lr=cfg.learning_rate, frozen=frozen)  # L2 is in model.loss
    bar = _progress(progress)
    step, elapsed, best_key, best_row, best_params = 0, 0.0, None, None, None
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        t0 = time.perf_counter()
        batches = length_batches(train.lengths, cfg.batch_size, rng)
        batches = bar(batches, desc=f"epoch {epoch}/{cfg.max_epochs}")
        for b, idx in enumerate(batches):
            ids, mask = pad_batch([train.ids[i] for i in idx])
            loss, _ = model.loss(ids, train.labels[idx], mask, cfg.weight_decay)
            if not math.isfinite(loss):
                raise CliError(f"training diverged (loss {loss}) at epoch {epoch}; "
                               f"try a lower --learning_rate")
            if b % 10 == 0 and hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{loss:.3f}", refresh=False)
            if cfg.grad_clip:
                clip_grad_norm(model.grads, cfg.grad_clip)
            opt.step()
            step += 1
        elapsed += time.perf_counter() - t0
        row = {"epoch": epoch, "step": step}
        for name in ("train", "val", "test"):
            ev = evaluate(model, splits[name], cfg.batch_size)
            row[f"{name}_loss"], row[f"{name}_acc"] = ev["loss"], ev["acc"]
        row["elapsed"] = round(elapsed, 3)
        key_split = "val" if len(val) else "train"
        key = (row[f"{key_split}_acc"], row[f"{key_split}_loss"])
        best = is_better(key, best_key)
        if best:
            best_key, best_row = key, dict(row)
            best_params = {k: v.copy() for k, v in model.params.items()}
        if out_dir:
            append_metrics(out_dir, row)
            if best:
                save_weights(os.path.join(out_dir, "best.npz"), model, {"epoch": epoch})
        log(format_row(row, best))
        if cfg.time_budget and elapsed >= cfg.time_budget:
            log(f"time budget of {cfg.time_budget:g} s reached after epoch {epoch}")
            break
    if out_dir:
        save_weights(os.path.join(out_dir, "last.npz"), model, {"epoch": epoch},
                     optimizer=opt)
    for k, v in best_params.items():
        np.copyto(model.params[k], v)
    return dict(best_row, elapsed=round(elapsed, 3), epochs_run=epoch)


def format_row(row, best=False):
    """One line per epoch: losses and accuracies of each split (absent splits skipped)."""
    parts = [f"epoch {row['epoch']:3d}", f"step {row['step']:5d}"]
    for name in ("train", "val", "test"):
        if row.get(f"{name}_loss") is not None:
            parts.append(f"{name} loss {row[f'{name}_loss']:.4f} acc "
                         f"{100 * row[f'{name}_acc']:5.1f}%")
    parts.append(f"{row['elapsed']:.1f}s")
    return " | ".join(parts) + (" | best" if best else "")


def _progress(enabled):
    """A tqdm wrapper over an epoch's batches (stderr; off when stderr is not a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return lambda it, desc=None: it
    from tqdm import tqdm
    return lambda it, desc=None: tqdm(it, desc=desc, leave=False, unit="batch",
                                      file=sys.stderr)


# ---- a whole run: data, vocabulary, model, training, run directory ----------------------

def default_out_dir(cfg):
    """checkpoints/sentiment-<data>-<cell>[-bi], or sentiment-<data>-from-<LM run name>."""
    from lm.storage.run_dir import RUNS_ROOT, corpus_label

    name = f"sentiment-{corpus_label(cfg.data)}-"
    if cfg.init_from:
        name += f"from-{corpus_label(cfg.init_from)}"
    else:
        name += cfg.cell + ("-bi" if cfg.bidirectional else "")
    return os.path.join(RUNS_ROOT, name)


def train_run(cfg, log=print, progress=None):
    """Train a classifier as `cfg` (a validated lm.sentiment.SentimentConfig) says.

    Reads the data, splits it, builds the vocabulary (or takes the --init_from language
    model's), builds and trains the model, and writes the run directory: config.json,
    vocab.json, metrics.jsonl, best.npz, last.npz, curves.png. Returns the summary of
    `train_classifier` plus "run_dir" and the split sizes.
    """
    from lm.storage.checkpoint import clean_stale_tmp
    from lm.models.classifier import SentimentClassifier
    from lm.storage.run_dir import has_checkpoint
    from lm.data.labeled import (build_vocab, class_index, read_examples, split_indices,
                                   subset, unk_rate)
    from lm.models.load import copy_encoder_weights, load_lm_encoder, write_run

    run_dir = cfg.out_dir or default_out_dir(cfg)
    if os.path.exists(run_dir) and (not os.path.isdir(run_dir) or has_checkpoint(run_dir)):
        raise ValueError(f"{run_dir} already holds a run (or is a file); pass --out_dir "
                         f"NEW_DIR (nothing was changed)")
    data = read_examples(cfg.data, cfg.neg, cfg.encoding, cfg.encoding_errors)
    classes = list(data.label_names)
    tr, va, te = split_indices(len(data), cfg.val_frac, 0.0 if cfg.test else cfg.test_frac,
                               cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    if cfg.init_from:
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
    model = SentimentClassifier.build(
        len(vocab), cfg.embed_size, cfg.hidden_size, cell=cfg.cell, num_layers=cfg.num_layers,
        bidirectional=cfg.bidirectional, pool=cfg.pool, dropout=cfg.dropout,
        num_classes=len(classes), dtype=dtype, rng=rng)
    if cfg.init_from:
        copied = copy_encoder_weights(model, enc_arrays)
        log(f"init_from {cfg.init_from}: {len(copied)} encoder weights and a vocabulary of "
            f"{len(vocab):,} {vocab.level} tokens")
    labels = class_index(data, classes, cfg.data)
    splits = {name: subset(data.texts, labels, idx, vocab, drop_spaces)
              for name, idx in (("train", tr), ("val", va), ("test", te))}
    if cfg.test:
        test = read_examples(cfg.test, None, cfg.encoding, cfg.encoding_errors, min_classes=1)
        splits["test"] = subset(test.texts, class_index(test, classes, cfg.test),
                                np.arange(len(test)), vocab, drop_spaces)
    frozen = [n for n in model.params if n.startswith(("embed.", "rnn"))] \
        if cfg.freeze_encoder else []
    sizes = {name: len(s) for name, s in splits.items()}
    data_info = {"classes": classes, "drop_spaces": drop_spaces, "sizes": sizes,
                 "files": {"data": cfg.data, "neg": cfg.neg, "test": cfg.test},
                 "unk_rate": {n: round(unk_rate(s, vocab), 4) for n, s in splits.items()}}
    os.makedirs(run_dir, exist_ok=True)
    clean_stale_tmp(run_dir)
    write_run(run_dir, model, vocab, cfg.to_dict(), data_info)
    log(f"{cfg.data}: {sizes['train']} train, {sizes['val']} validation, {sizes['test']} "
        f"test examples; classes {', '.join(classes)}; vocabulary {len(vocab):,} "
        f"{vocab.level} tokens; {model.num_params():,} parameters"
        + (f" ({sum(model.params[n].size for n in frozen):,} frozen)" if frozen else ""))
    summary = train_classifier(model, splits, cfg, rng, run_dir, frozen, log, progress)
    try:
        from lm.plot import plot_runs
        plot_runs([run_dir], os.path.join(run_dir, "curves.png"))
    except Exception as e:  # a figure is never worth losing a trained model over
        log(f"warning: could not draw curves.png: {e}")
    return dict(summary, run_dir=run_dir, sizes=sizes)
