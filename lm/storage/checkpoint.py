"""Run directories: save and load checkpoints, validate their metadata against the model.

A run directory holds `config.json`, `vocab.json`, `best.safetensors`,
`last.safetensors`, `metrics.jsonl` and `curves.png`. A checkpoint stores model weights
as `param/<name>` (e.g. `param/rnn0.Wx`), optimiser state as `optim/<name>` and
everything else needed to resume (step, RNG, data position) as `state/<name>`, all in
one file so no crash can pair weights of one step with a counter of another. Runs saved
by lm 0.1 hold `best.npz` / `last.npz` instead: they are read (never written) through
the bounded .npz reader; `find_checkpoint` prefers a .safetensors file.

Everything loads through `load_arrays` / `read_json` (never pickle) and every problem
with the content is a CheckpointError naming the file and the failed check; a missing
file or directory is a FileNotFoundError. The low-level pieces, and config.json / vocab.json validation (lm.storage.run_config), are
re-exported here.
"""
import os
import re

import numpy as np

from lm.storage.atomic import (AtomicWriteError, append_jsonl, atomic_write, clean_stale_tmp,
                       write_json)
from lm.storage.safe_json import parse_json, read_json, read_jsonl
from lm.storage import safe_npz, safe_tensors
from lm.storage.run_config import (CONFIG_NAME, check_fits_checkpoint, implied_encoder_weights,
                                   implied_weights, read_vocab, validate_config,
                                   validate_vocab, write_run_metadata)
from lm.storage.safe_zip import CheckpointError

__all__ = ["CheckpointError", "AtomicWriteError", "atomic_write", "save_arrays",
           "load_arrays", "write_json", "read_json", "parse_json", "append_jsonl",
           "read_jsonl", "clean_stale_tmp", "save_checkpoint", "load_checkpoint",
           "write_run_metadata", "validate_config", "validate_vocab", "sections",
           "verify_against_model", "copy_into_params", "load_model", "rng_to_array",
           "rng_from_array", "checkpoint_path", "find_checkpoint", "read_vocab",
           "check_fits_checkpoint", "implied_encoder_weights"]

PREFIXES = ("param/", "optim/", "state/")
_CKPT_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.(npz|safetensors)\Z")
CHECKPOINT_EXT = ".safetensors"   # what lm writes
LEGACY_EXT = ".npz"               # what lm 0.1 wrote: read only


def save_arrays(path, arrays, allow_nonfinite=False):
    """Atomically write a checkpoint: safetensors (.safetensors), or .npz for tests and
    tools that make lm 0.1 files."""
    if os.fspath(path).endswith(LEGACY_EXT):
        return safe_npz.save_arrays(path, arrays, allow_nonfinite=allow_nonfinite)
    return safe_tensors.save_tensors(path, arrays, allow_nonfinite=allow_nonfinite)


def load_arrays(path, allow_nonfinite=False, **kw):
    """{name: array} of a checkpoint, every check first: a safetensors file (or its bytes),
    or the .npz of a run saved by lm 0.1 (a path or an open binary file)."""
    if isinstance(path, (bytes, bytearray)):
        return safe_tensors.load_tensors(path, allow_nonfinite=allow_nonfinite, **kw)
    if hasattr(path, "read") or os.fspath(path).endswith(LEGACY_EXT):
        return safe_npz.load_arrays(path, allow_nonfinite=allow_nonfinite, **kw)
    return safe_tensors.load_tensors(path, allow_nonfinite=allow_nonfinite, **kw)


def checkpoint_path(run_dir, which):
    """Where the `which` ("best" or "last") checkpoint of a run is written."""
    return os.path.join(os.fspath(run_dir), which + CHECKPOINT_EXT)


def find_checkpoint(run_dir, which):
    """The `which` checkpoint file of a run to read (.safetensors, else lm 0.1's .npz), or
    None when the run has none."""
    for ext in (CHECKPOINT_EXT, LEGACY_EXT):
        path = os.path.join(os.fspath(run_dir), which + ext)
        if os.path.isfile(path):
            return path
    return None

def _checkpoint_path(run_dir, name):
    """run_dir/name for a file name, or the checkpoint `name` ("best", "last") resolves to."""
    if name in ("best", "last"):
        path = find_checkpoint(run_dir, name)
        if path is None:
            raise FileNotFoundError(2, f"no {name} checkpoint", os.fspath(run_dir))
        return path
    if not isinstance(name, str) or not _CKPT_NAME_RE.match(name):
        raise ValueError(f"checkpoint name {name!r} must be best, last or a plain file name "
                         "ending in .safetensors or .npz")
    return os.path.join(os.fspath(run_dir), name)


def save_checkpoint(run_dir, name, params, optim=None, state=None):
    """Atomically write run_dir/name with `param/`, `optim/` and `state/` members.

    params, optim, state: dicts name -> array or number (e.g. Adam's state_dict(), or
    {"step": 1200, "rng": rng_to_array(rng)}). NaN/inf weights are refused (ValueError).
    Returns the path written.
    """
    path = checkpoint_path(run_dir, name) if name in ("best", "last") else \
        _checkpoint_path(run_dir, name)
    arrays = {}
    for prefix, d in zip(PREFIXES, (params, optim or {}, state or {})):
        for key, value in d.items():
            arrays[prefix + key] = value
    save_arrays(path, arrays)
    return path


def sections(arrays):
    """{"param": {...}, "optim": {...}, "state": {...}} with the prefixes stripped."""
    out = {p[:-1]: {} for p in PREFIXES}
    for key, a in arrays.items():
        head, _, rest = key.partition("/")
        if head in out and rest:
            out[head][rest] = a
    return out


def load_checkpoint(run_dir, which="best"):
    """(config, vocab, arrays) of a run directory, every file checked.

    config.json and vocab.json are read strictly and checked with validate_config and
    validate_vocab; the arrays (flat, keys like "param/embed.W") come from load_arrays.
    Only "param/", "optim/" and "state/" members are accepted, `param/embed.W` must have
    (vocab_size, embed_size) and the config may not imply more weights than are stored.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        if os.path.exists(run_dir):
            raise CheckpointError(run_dir, "not a directory (expected a run directory)")
        raise FileNotFoundError(2, "checkpoint directory not found", run_dir)
    config = validate_config(read_json(os.path.join(run_dir, CONFIG_NAME)),
                             os.path.join(run_dir, CONFIG_NAME))
    model = config["model"]
    path = _checkpoint_path(run_dir, which)
    check_fits_checkpoint(config, path, os.path.join(run_dir, CONFIG_NAME))
    vocab = read_vocab(run_dir, model)
    arrays = load_arrays(path)
    for key in arrays:
        if not key.startswith(PREFIXES):
            raise CheckpointError(path, f"array {key!r} is not under param/, optim/ "
                                  "or state/")
    embed = arrays.get("param/embed.W")
    shape = (model["vocab_size"], model["embed_size"])
    if embed is None or embed.shape != shape:
        found = "missing" if embed is None else f"has shape {embed.shape}"
        raise CheckpointError(path, f"'param/embed.W' {found}; config.json and "
                              f"vocab.json imply {shape}")
    _check_config_size(config, arrays, path)
    return config, vocab, arrays


def _check_config_size(config, arrays, path):
    """Refuse a config that implies more weights than are stored, before anything is
    built from it (a lying config could exhaust memory; the bound: implied_weights)."""
    stored = sum(a.size for k, a in arrays.items() if k.startswith("param/"))
    implied = implied_weights(config)
    if implied > stored:
        raise CheckpointError(path, f"config.json implies at least {implied} weights "
                              f"but the checkpoint stores {stored}")


def verify_against_model(arrays, model_params, vocab_size=None, label="checkpoint",
                         prefix="param/"):
    """Every model parameter stored under `prefix` with its shape, finite; nothing extra.

    model_params: dict name -> array (model.params). vocab_size: if given, the rows of
    embed.W must equal it. Raises CheckpointError naming the first offending array.
    """
    for name, p in model_params.items():
        key = prefix + name
        a = arrays.get(key)
        if a is None:
            raise CheckpointError(label, f"missing parameter {key!r}")
        if a.shape != p.shape:
            raise CheckpointError(label, f"parameter {key!r} has shape {a.shape}, the "
                                  f"model needs {p.shape}")
        if a.dtype.kind != "f":
            raise CheckpointError(label, f"parameter {key!r} has dtype {a.dtype}, "
                                  "expected floats")
        if not np.isfinite(a).all():
            raise CheckpointError(label, f"parameter {key!r} holds NaN or inf")
    extra = [k for k in arrays if k.startswith(prefix) and k[len(prefix):] not in model_params]
    if extra:
        raise CheckpointError(label, f"unexpected parameter {extra[0]!r} (not in the model)")
    if vocab_size is not None:
        embed = model_params.get("embed.W")
        if embed is None or embed.shape[0] != vocab_size:
            rows = None if embed is None else embed.shape[0]
            raise CheckpointError(label, f"vocabulary has {vocab_size} tokens but the "
                                  f"embedding has {rows} rows")


def copy_into_params(params, arrays, prefix="param/", label="checkpoint", names=None):
    """Write arrays[prefix + name] into params[name] in place, after checking every name,
    shape, dtype and value (so a failure leaves params untouched). The one way `lm`
    copies weights: loading a run, resuming, --init_from, a classifier's encoder.

    names: copy only these parameters (then other stored arrays are not refused).
    """
    if names is None:
        verify_against_model(arrays, params, label=label, prefix=prefix)
        names = list(params)
    else:
        verify_against_model({prefix + n: arrays[prefix + n] for n in names if prefix + n in arrays},
                             {n: params[n] for n in names}, label=label, prefix=prefix)
    for name in names:
        params[name][...] = arrays[prefix + name]
    return names


def load_model(run_dir, build, which="best"):
    """(model, config, vocab, arrays): build(config["model"]) then load the weights.

    build: e.g. LanguageModelRNN.from_config. A config the constructor refuses is a
    CheckpointError on config.json; weights are verified, then copied in place.
    """
    config, vocab, arrays = load_checkpoint(run_dir, which)
    try:
        model = build(config["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(os.path.join(os.fspath(run_dir), CONFIG_NAME),
                              f"model cannot be built from it: {e}") from e
    label = _checkpoint_path(run_dir, which)
    verify_against_model(arrays, model.params, len(vocab["itos"]), label=label)
    copy_into_params(model.params, arrays, label=label)
    return model, config, vocab, arrays


def rng_to_array(rng):
    """A PCG64 Generator's full state as uint64 (6,): state hi/lo, inc hi/lo, has_uint32,
    uinteger. Store it as state/<name>; rng_from_array gives the generator back."""
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise ValueError(f"only PCG64 generators can be saved, got {st.get('bit_generator')}")
    s, inc, m = st["state"]["state"], st["state"]["inc"], (1 << 64) - 1
    return np.array([s >> 64, s & m, inc >> 64, inc & m, st["has_uint32"],
                     st["uinteger"]], dtype=np.uint64)


def rng_from_array(a, label="checkpoint", into=None):
    """The np.random.Generator saved by rng_to_array (CheckpointError if malformed).

    into: restore this Generator in place instead (so every holder of it, e.g. the
    dropout layers of a model, continues the same stream) and return it.
    """
    a = np.asarray(a)
    if a.shape != (6,) or a.dtype != np.uint64 or int(a[4]) > 1 or int(a[5]) >= 2**32 \
            or int(a[3]) % 2 == 0:
        raise CheckpointError(label, "saved random generator state is malformed")
    v = [int(x) for x in a]
    state = {"bit_generator": "PCG64", "state": {"state": (v[0] << 64) | v[1],
                                                 "inc": (v[2] << 64) | v[3]},
             "has_uint32": v[4], "uinteger": v[5]}
    if into is not None:
        into.bit_generator.state = state
        return into
    bg = np.random.PCG64()
    bg.state = state
    return np.random.Generator(bg)
