"""PyTorch-layout safetensors files: export a run, read one back with every check, import it.

A file holds the model's weights as a PyTorch state dict (see torch_layout; no optimiser
state) and, as safetensors string metadata:
    format "lm.pytorch", format_version "1",
    kind (config.json's: language_model|sentiment|recall|seq2seq),
    model, train, data: config.json's sections as JSON,
    itos: the vocabulary's tokens as a JSON list, vocab: the rest of vocab.json as JSON.
So `lm.import_torch` rebuilds config.json and vocab.json exactly, and a PyTorch program
builds the module from `model` (lm.interop.torch_model). Files written by PyTorch lack
lm's checksum: they are read with require_checksum=False, everything else checked.
"""
import os

import numpy as np

from lm.interop.torch_layout import layout
from lm.storage.atomic import write_bytes
from lm.storage.checkpoint import (CheckpointError, copy_into_params,
                                   implied_encoder_weights, load_model, save_checkpoint,
                                   validate_config, validate_vocab, write_run_metadata)
from lm.storage.safe_json import parse_json
from lm.storage.safe_tensors import dumps_metadata, load_tensors, save_tensors
from lm.text.vocab import Vocab

FORMAT, VERSION = "lm.pytorch", "1"
SECTIONS = ("model", "train", "data")


def make_metadata(config, vocab):
    """safetensors metadata (str -> str) of a run's config.json and vocab.json dicts."""
    meta = {"format": FORMAT, "format_version": VERSION, "kind": config["kind"],
            "itos": dumps_metadata(vocab["itos"]),
            "vocab": dumps_metadata({k: v for k, v in vocab.items() if k != "itos"})}
    for s in SECTIONS:
        meta[s] = dumps_metadata(config.get(s, {}))
    return meta


def read_metadata(meta, label):
    """(config.json dict, vocab.json dict) from a file's metadata, both validated as a
    run directory's own are (CheckpointError naming the file otherwise)."""
    if meta.get("format") != FORMAT or meta.get("format_version") != VERSION:
        raise CheckpointError(label, f"metadata lacks format {FORMAT!r} version {VERSION} "
                              "(not written by `python -m lm.export --format pytorch` or "
                              "lm.interop.torch_model.save_file)")
    parsed = {}
    for key in SECTIONS + ("itos", "vocab"):
        if key not in meta:
            raise CheckpointError(label, f"metadata lacks {key!r}")
        parsed[key] = parse_json(meta[key], f"{label} metadata {key!r}",
                                 require_object=key != "itos")
    config = validate_config({"kind": meta.get("kind"),
                              **{s: parsed[s] for s in SECTIONS}}, label)
    vocab = validate_vocab({**parsed["vocab"], "itos": parsed["itos"]},
                           config["model"]["vocab_size"], label)
    try:
        Vocab.from_json(vocab)
        if config["kind"] == "language_model":
            from lm.config.training import train_config_from_json
            train_config_from_json(config, label)
    except ValueError as e:
        raise CheckpointError(label, str(e)) from None
    return config, vocab


def _dtype_of(state, label):
    """The one float dtype of a state dict's tensors."""
    dtypes = {a.dtype for a in state.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (np.float32, np.float64):
        raise CheckpointError(label, "tensors must all be float32 or all float64, got "
                              f"{', '.join(sorted(str(d) for d in dtypes))}")
    return dtypes.pop()


def _check_size(config, state, label):
    """Refuse a config implying more weights than are stored before building the model
    (a lying config could exhaust memory): the encoder's lower bound
    (lm.storage.checkpoint.implied_encoder_weights)."""
    implied = implied_encoder_weights(config["model"])
    stored = sum(a.size for a in state.values())
    if implied > stored:
        raise CheckpointError(label, f"the config implies at least {implied} weights but "
                              f"the file stores {stored}")


def check_state(kind, model, state, label):
    """Every key the model's PyTorch layout has, with its shape, and no other."""
    expected = layout(kind).to_torch(model.config(), model.params)
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(label, f"missing key {missing[0]!r} ({len(missing)} missing; "
                              f"the config needs {', '.join(expected)})")
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointError(label, f"unexpected key {extra[0]!r} (not in the model the "
                              "config describes)")
    for k, a in expected.items():
        if state[k].shape != a.shape:
            raise CheckpointError(label, f"{k!r} has shape {tuple(state[k].shape)}, the "
                                  f"config needs {a.shape}")


def read_checked(path):
    """(config, vocab, state dict, lm model holding the weights) of a PyTorch-layout file.

    Read through lm's safetensors reader (bounded header, offsets, dtypes, non-finite
    values refused; lm's checksum checked when present), then the metadata validated,
    the names and shapes checked against the model the config describes, the weights
    mapped and copied in. Anything wrong: CheckpointError naming the file.
    """
    label = os.fspath(path)
    state, meta = load_tensors(label, with_metadata=True, require_checksum=False)
    config, vocab = read_metadata(meta, label)
    kind = config["kind"]
    dtype = _dtype_of(state, label)
    _check_size(config, state, label)
    try:
        model = layout(kind).build(config["model"], dtype=dtype)
    except (TypeError, ValueError) as e:
        raise CheckpointError(label, f"model cannot be built from its config: {e}") from None
    check_state(kind, model, state, label)
    try:
        params = layout(kind).from_torch(config["model"], state)
    except ValueError as e:
        raise CheckpointError(label, str(e)) from None
    copy_into_params(model.params, params, prefix="", label=label)
    return config, vocab, state, model


def _refuse_existing(path, overwrite):
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; give the .safetensors file to write")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} already exists (nothing was written); pass --overwrite "
                         "to replace it")
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise FileNotFoundError(f"{os.path.dirname(path)}: no such directory")


def save_torch_layout(path, serialize, config, vocab, overwrite=False):
    """Write serialize(metadata) -> bytes to `path` atomically; an existing file is
    refused unless `overwrite`."""
    path = os.fspath(path)
    _refuse_existing(path, overwrite)
    write_bytes(path, serialize(make_metadata(config, vocab)))


def export_run(run_dir, out_path, which="best", overwrite=False):
    """Write a run's `which` weights as a PyTorch-layout file; returns (config, state)."""
    from lm.storage.checkpoint import load_checkpoint

    out_path = os.fspath(out_path)
    _refuse_existing(out_path, overwrite)
    config, _, _ = load_checkpoint(run_dir, which)
    dtype = np.float64 if config.get("train", {}).get("dtype") == "float64" else np.float32
    kind = config["kind"]
    model, config, vocab, _ = load_model(
        run_dir, lambda d: layout(kind).build(d, dtype=dtype), which)
    try:
        state = layout(kind).to_torch(model.config(), model.params)
    except KeyError as e:  # a model the layout does not describe: one line, not a traceback
        raise ValueError(f"{run_dir}: no PyTorch layout for this {kind} model (it has no "
                         f"parameter {e})") from None
    _refuse_existing(out_path, overwrite)
    save_tensors(out_path, state, metadata=make_metadata(config, vocab))
    return config, state


def import_run(path, out_dir):
    """Turn a PyTorch-layout file into an lm run directory (config.json, vocab.json,
    best.safetensors). out_dir must not exist or be an empty directory."""
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise ValueError(f"--out_dir {out_dir} exists and is not an empty directory "
                         "(nothing was written)")
    config, vocab, state, model = read_checked(path)
    if "dtype" in config.get("train", {}):  # the dtype the weights are stored in
        config["train"]["dtype"] = str(next(iter(state.values())).dtype)
    write_run_metadata(out_dir, config, vocab)
    save_checkpoint(out_dir, "best", model.params)
    return config, model
