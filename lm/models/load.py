"""Loading trained models from run directories: a language model, a classifier, a seq2seq
model, and a language model's vocabulary and encoder weights for a classifier
(`--init_from`).

Every file is read through lm.storage.checkpoint's checked loaders. A classifier's
config.json: {"kind": "sentiment", "model": SentimentClassifier.config(), "train": the
flags, "data": {"classes": [...], "drop_spaces": bool, sizes, files}}.
"""
import os

import numpy as np

from lm.config.training import check_cache_size, train_config_from_json
from lm.models.classifier import SentimentClassifier
from lm.models.language_model import LanguageModelRNN
from lm.models.memory import check_memory, count_params, estimate_memory
from lm.models.seq2seq import Seq2Seq
from lm.storage.checkpoint import (CheckpointError, copy_into_params, find_checkpoint,
                                   load_checkpoint, load_model, read_json, validate_config)
from lm.storage.run_dir import check_run_dir
from lm.text.labeled import MAX_LABEL_CHARS
from lm.text.vocab import Vocab

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_run_memory(run_dir, batch=1, steps=1, cache_size=None):
    """Refuse (NotEnoughMemory) a run whose model, run on (batch, steps) inputs, would not
    fit in the memory available: estimated from its config.json before any weight is read
    or allocated (with `cache_size` instead of its cache's, when given)."""
    label = os.path.join(run_dir, "config.json")
    config = validate_config(read_json(label), label)
    dtype = config.get("train", {}).get("dtype", "float32")
    model = config["model"] if cache_size is None else {**config["model"],
                                                        "cache_size": cache_size}
    est = estimate_memory(model, dtype, batch, steps)
    check_memory(est, f"the model of {run_dir} ({count_params(config['model'])[0]:,} "
                 f"parameters) on {batch:,} x {steps:,} tokens",
                 "the run is too large for this machine" if batch * steps == 1 else
                 "choose a smaller --batch_size or shorter texts")


def load_classifier(run_dir, which="best", batch=1, steps=1):
    """(model in eval mode, vocab, config) of a sentiment run; every file checked, its
    memory on (batch, steps) inputs estimated first (check_run_memory).

    Falls back to the last checkpoint when there is no best. CheckpointError /
    FileNotFoundError (one line) for anything missing or malformed.
    """
    run_dir = os.fspath(run_dir)
    which = _available(run_dir, which)
    if os.path.isdir(run_dir):
        check_run_memory(run_dir, batch, steps)
    model, vocab, config = _load_run(run_dir, which, "sentiment", SentimentClassifier,
                                     "a sentiment classifier (train one with "
                                     "`python -m lm.sentiment train DATA`)")
    classes = config.get("data", {}).get("classes")
    if not isinstance(classes, list) or len(classes) != model.num_classes:
        raise CheckpointError(os.path.join(run_dir, "config.json"),
                              f"data.classes must list the {model.num_classes} class names")
    if len(set(map(str, classes))) != len(classes) or not all(
            isinstance(c, str) and c.strip() == c and 0 < len(c) <= MAX_LABEL_CHARS
            and c.isprintable() for c in classes):
        raise CheckpointError(os.path.join(run_dir, "config.json"),
                              f"data.classes must be distinct names of 1 to {MAX_LABEL_CHARS} "
                              "printable characters")
    model.eval()
    return model, vocab, config


def load_seq2seq(run_dir, which="best"):
    """(model in eval mode, vocab, config) of a seq2seq run; every file checked.

    Falls back to the last checkpoint when there is no best. config["data"] says the task
    ("addition" with its "digits", or "pairs").
    """
    run_dir = check_run_dir(run_dir)
    which = _available(run_dir, which)
    model, vocab, config = _load_run(run_dir, which, "seq2seq", Seq2Seq,
                                     "a seq2seq model (train one with "
                                     "`python -m lm.seq2seq train`)")
    data = config.get("data", {})
    digits = data.get("digits")
    if data.get("task") not in ("addition", "pairs") or (
            data.get("task") == "addition" and not (isinstance(digits, int) and 1 <= digits <= 9)):
        raise CheckpointError(os.path.join(run_dir, "config.json"),
                              "data.task must be addition (with digits 1..9) or pairs")
    if vocab.bos_id is None or vocab.eos_id is None:
        raise CheckpointError(os.path.join(run_dir, "vocab.json"), "the vocabulary lacks "
                              "<bos> and <eos>")
    model.eval()
    return model, vocab, config


def _load_run(run_dir, which, kind, model_class, what):
    """(model, Vocab, config) of a `kind` run built by `model_class.from_config` in its
    training dtype; ValueError `RUN is a K run, not WHAT` for another kind of run."""
    config, _, _ = load_checkpoint(run_dir, which)
    if config["kind"] != kind:
        raise ValueError(f"{run_dir} is a {config['kind']} run, not {what}")
    dtype = DTYPES.get(config.get("train", {}).get("dtype", "float32"), np.float32)
    model, config, vocab_json, _ = load_model(
        run_dir, lambda d: model_class.from_config(d, dtype=dtype), which)
    try:
        vocab = Vocab.from_json(vocab_json)
    except ValueError as e:
        raise CheckpointError(os.path.join(run_dir, "vocab.json"), str(e)) from None
    return model, vocab, config


def load_lm_encoder(lm_dir):
    """A language-model run's (model config, Vocab, encoder arrays) for --init_from.

    The arrays are the LM's `embed.*` and `rnn<i>.*` weights, keyed by parameter name;
    the LM's own head is not used. Weights come from the best checkpoint (else the last).
    """
    lm_dir = os.fspath(lm_dir)
    if not os.path.isdir(lm_dir):
        raise FileNotFoundError(f"--init_from {lm_dir}: no such run directory")
    config, vocab_json, arrays = load_checkpoint(lm_dir, _available(lm_dir, "best"))
    if config["kind"] != "language_model":
        raise ValueError(f"--init_from {lm_dir} is a {config['kind']} run; give a language "
                         f"model run directory (from `python -m lm.train`)")
    try:
        vocab = Vocab.from_json(vocab_json)
    except ValueError as e:
        raise CheckpointError(os.path.join(lm_dir, "vocab.json"), str(e)) from None
    enc = {k[len("param/"):]: a for k, a in arrays.items()
           if k.startswith(("param/embed.", "param/rnn"))}
    return config["model"], vocab, enc


def copy_encoder_weights(model, enc_arrays, source="--init_from"):
    """Copy the LM's encoder arrays into the classifier's parameters of the same names.

    Every encoder parameter of the classifier (`embed.*`, `rnn*.*`) must be present with
    the same shape; returns the list of names copied.
    """
    names = [n for n in model.params if n.startswith(("embed.", "rnn"))]
    missing = [n for n in names if n not in enc_arrays]
    if missing:
        raise ValueError(f"{source}: the language model has no weight {missing[0]!r} "
                         f"(its weights: {', '.join(sorted(enc_arrays))})")
    return copy_into_params(model.params, enc_arrays, prefix="", label=source, names=names)


def _available(run_dir, which):
    """`which`, or "last" when "best" is asked for and the run has no best checkpoint."""
    if which == "best" and os.path.isdir(run_dir) and find_checkpoint(run_dir, "best") is None \
            and find_checkpoint(run_dir, "last") is not None:
        return "last"
    return which


def load_language_model(run_dir, which="best", batch=1, steps=1, cache_size=None):
    """(model, vocab, TrainConfig) of a language-model run; weights from its `which`
    checkpoint ("best" falls back to "last"), every file checked by lm.storage.checkpoint,
    its memory on (batch, steps) inputs estimated first (check_run_memory).
    cache_size: the continuous cache's size instead of the run's (0: the network alone)."""
    run_dir = check_run_dir(run_dir)
    name = _available(run_dir, which)
    meta = read_json(os.path.join(run_dir, "config.json"))
    if meta.get("kind") != "language_model":
        raise ValueError(f"{run_dir} is a {meta.get('kind')} run, not a language model")
    cfg = train_config_from_json(meta)
    cache_size = None if cache_size is None else check_cache_size(cache_size)
    check_run_memory(run_dir, batch, steps, cache_size)
    dtype = DTYPES[cfg.dtype]
    model, _, vocab_json, _ = load_model(
        run_dir, lambda d: LanguageModelRNN.from_config(d, dtype=dtype), name)
    vocab = Vocab.from_json(vocab_json)
    if cache_size is not None:
        model.set_cache(cache_size, cfg.cache_theta, cfg.cache_lambda)
    model.eval()
    return model, vocab, cfg
