"""A model and one batch of its own data to diagnose: a trained run of any kind, or fresh
models on the recall task."""
import os

import numpy as np

from lm.config.recall import RecallConfig
from lm.data.batchers import BPTTBatcher, LineBatcher, Lines, split_corpus
from lm.data.labeled import TextBatcher, read_examples, subset, class_index
from lm.diagnostics.recall import (build_model, check_task_memory, load_recall, recall_batch,
                                   run_config)
from lm.models.load import check_run_memory, load_classifier, load_language_model
from lm.storage.checkpoint import read_json
from lm.storage.run_dir import check_run_dir
from lm.text.stream import load_corpus


def run_kind(run_dir):
    """"language_model", "sentiment" or "recall": what config.json says the run is."""
    run_dir = check_run_dir(run_dir)
    kind = read_json(os.path.join(run_dir, "config.json")).get("kind")
    if kind not in ("language_model", "sentiment", "recall"):
        raise ValueError(f"{run_dir}/config.json: unknown kind of run {kind!r}")
    return kind


def run_batch(run_dir, batch_size, length=None, which="best"):
    """(model in eval mode, Batch, a line saying what the batch is) of a trained run.

    language model: a window of `length` tokens (default: the run's --seq_length) from
    `batch_size` streams of its validation text (line mode: its longest validation lines);
    classifier: the `batch_size` longest texts of its data file; recall: `batch_size`
    held-out sequences of distance `length` (default: the run's --length).
    """
    kind = run_kind(run_dir)
    if kind == "recall":
        cfg = RecallConfig.from_dict(run_config(run_dir)["train"],
                                     os.path.join(run_dir, "config.json"))
        length = cfg.length if length is None else length
        model, cfg = load_recall(run_dir, which, batch_size, length + 1)
        return model, recall_batch(cfg, batch_size, length), \
            f"{batch_size} held-out recall sequences, distance {length}"
    if kind == "sentiment":
        if length is not None:
            raise ValueError("--length is for language-model and recall runs; a classifier "
                             "reads its texts whole")
        model, vocab, config = load_classifier(run_dir, which, batch_size)
        data = config["data"]
        path = (data.get("paths") or {}).get("data") or (data.get("files") or {}).get("data")
        neg = (data.get("paths") or {}).get("neg") or None
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(f"{run_dir}: its data file {path!r} is not there any more")
        train = config.get("train", {})
        raw = read_examples(path, neg, train.get("encoding", "utf-8"),
                            train.get("encoding_errors", "strict"))
        texts = subset(raw.texts, class_index(raw, data["classes"], path),
                       np.arange(len(raw)), vocab, data["drop_spaces"])
        longest = np.argsort(-texts.lengths, kind="stable")[:batch_size]
        check_run_memory(run_dir, len(longest), int(texts.lengths.max()))
        batch = TextBatcher(texts, batch_size, shuffle=False).make_batch(longest)
        return model, batch, f"the {len(longest)} longest texts of {path}"
    model, vocab, cfg = load_language_model(run_dir, which, batch_size, length or 1)
    meta = read_json(os.path.join(run_dir, "config.json"))
    path = meta.get("data", {}).get("path")
    if not isinstance(path, str) or not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: its corpus {path!r} is not there any more")
    corpus = load_corpus(path, vocab=vocab, line_mode=cfg.line_mode, encoding=cfg.encoding,
                         errors=cfg.encoding_errors)
    _, val = split_corpus(corpus, cfg.val_frac, cfg.seed if cfg.shuffle_lines else None)
    if isinstance(val, Lines):
        if length is not None:
            raise ValueError("--length is not for line-mode runs: each line is read whole")
        batcher = LineBatcher(val, batch_size, shuffle=False, bos_id=vocab.bos_id,
                              eos_id=vocab.eos_id)
        longest = np.argsort(-val.lengths, kind="stable")[:batch_size]
        check_run_memory(run_dir, len(longest), int(val.lengths.max()) + 1)
        return model, batcher.make_batch(longest), \
            f"the {len(longest)} longest validation lines of {path}"
    T = cfg.seq_length if length is None else length
    check_run_memory(run_dir, batch_size, T)
    batcher = BPTTBatcher(val, batch_size, T)
    if batcher.note:
        raise ValueError(f"the validation text of {path} is too short for --batch_size "
                         f"{batch_size} x --length {T}")
    return model, batcher.batch(0), \
        f"{batcher.batch_size} validation windows of {T} tokens of {path}"


def fresh_models(cells, length, batch_size, seed=0, forget_bias=1.0):
    """[(cell, freshly initialised recall model)] and one recall batch at distance `length`."""
    models = []
    for cell in cells:
        cfg = RecallConfig(cell=cell, length=length, seed=seed, forget_bias=forget_bias,
                           batch_size=batch_size).validate()
        check_task_memory(cfg)
        models.append((cell, build_model(cfg, np.random.default_rng([seed, 2])).eval()))
    batch = recall_batch(cfg, batch_size, length)
    return models, batch, f"{batch_size} recall sequences, distance {length}"
