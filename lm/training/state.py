"""Everything a resumed run needs, as one flat dict of arrays for `last.npz`.

Layout (names as stored in the npz):
    param/<name>          model weights (`embed.W`, `rnn0.Wx`, ..., `head.b`)
    optim/<key>           optimiser state (`adam.m.embed.W`, `adam.t`, `adam.lr`, ...)
    state/<scalar>        step, tokens, elapsed, best_val, ... (0-d arrays)
    state/best_key        the best evaluation's score (the task's tuple, larger is better)
    state/rng             the training Generator's PCG64 state as 6 uint64 words
    state/data.<key>      the batcher's position
    state/carry.<l>.<i>   hidden state carried between BPTT windows: layer l, (h, c)[i]
    state/average.<name>  the running average of weight <name> (runs with --average)
Weights, optimiser, RNG, data position and step are written together in one atomic file,
so a crash can never pair the weights of one step with the counters of another.
"""
import numpy as np

from lm.storage.checkpoint import (CheckpointError, copy_into_params, rng_from_array,
                                   rng_to_array)

# scalar training state and its type: ints are exact, floats are float64
SCALARS = {"step": int, "tokens": int, "elapsed": float, "best_val": float,
           "best_step": int, "bad_evals": int, "loss_sum": float, "loss_count": int,
           "nonfinite_restarts": int, "last_eval_step": int,
           "log_sum": float, "log_count": int}
OPTIONAL = ("log_sum", "log_count")  # added after lm 0.1: 0 when absent


def new_scalars():
    """The scalars of a run that has not taken a step yet."""
    sc = {k: typ(0) for k, typ in SCALARS.items()}
    sc["best_val"] = float("inf")
    sc["best_key"] = None  # no evaluation yet
    return sc


def pack_state(model, optimizer, scalars, data_state, carry, rng, average=None):
    """The flat dict written to last.npz (arrays are copies: safe to keep as a snapshot).
    average: {param name: array}, the weight average of a run with --average (or None)."""
    out = {f"param/{k}": np.array(v, copy=True) for k, v in model.params.items()}
    out.update({f"optim/{k}": np.array(v, copy=True) for k, v in optimizer.state_dict().items()})
    for k, typ in SCALARS.items():
        v = typ(scalars[k])
        if typ is float and not np.isfinite(v):
            v = -1.0  # "none yet" (best_val = inf): checkpoints hold finite numbers only
        out[f"state/{k}"] = np.asarray(v, dtype=np.int64 if typ is int else np.float64)
    if scalars.get("best_key") is not None:
        out["state/best_key"] = np.asarray(scalars["best_key"], dtype=np.float64)
    out["state/rng"] = rng_to_array(rng)
    for k, v in (data_state or {}).items():
        out[f"state/data.{k}"] = np.array(v, copy=True)
    for layer, tensors in enumerate(carry or ()):
        for i, t in enumerate(tensors):
            out[f"state/carry.{layer}.{i}"] = np.array(t, copy=True)
    for k, v in (average or {}).items():
        out[f"state/average.{k}"] = np.array(v, copy=True)
    return out


def check_state(arrays, data_keys, num_layers, label="last.npz"):
    """Every `state/` entry of a saved run is one `pack_state` writes, with its type and
    range: scalars 0-d and finite (counters integers >= 0), the data position plain ints
    under exactly `data_keys`, carried states `carry.<layer < num_layers>.<0|1>`.
    Raises CheckpointError naming the file and the entry."""
    def bad(key, want):
        return CheckpointError(label, f"{key} must be {want}")

    missing = [f"state/{k}" for k in SCALARS if f"state/{k}" not in arrays and k not in OPTIONAL]
    missing += [f"state/{k}" for k in ["rng"] + [f"data.{d}" for d in data_keys]
                if f"state/{k}" not in arrays]
    if missing:
        raise CheckpointError(label, f"lacks {', '.join(missing[:4])}"
                              + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    for key, a in arrays.items():
        if not key.startswith("state/"):
            continue
        name, a = key[len("state/"):], np.asarray(a)
        if name in SCALARS:
            if a.shape != () or a.dtype.kind not in ("iu" if SCALARS[name] is int else "f"):
                raise bad(key, f"a 0-d {'integer' if SCALARS[name] is int else 'float'}")
            if not np.isfinite(a) or (name not in ("best_val", "loss_sum", "log_sum") and a < 0):
                raise bad(key, "finite and >= 0")
        elif name == "best_key":
            if a.ndim != 1 or not 1 <= a.size <= 4 or a.dtype.kind != "f" or \
                    not np.isfinite(a).all():
                raise bad(key, "1 to 4 finite floats")
        elif name.startswith("data."):
            if name[5:] not in data_keys or a.shape != () or a.dtype.kind not in "iu" or a < 0:
                raise bad(key, f"one of state/data.{{{', '.join(data_keys)}}}, an integer >= 0")
        elif name.startswith("carry."):
            parts = name.split(".")
            if len(parts) != 3 or not all(p.isdigit() for p in parts[1:]) or \
                    int(parts[1]) >= num_layers or int(parts[2]) > 1 or a.ndim != 2 or \
                    a.dtype.kind != "f" or not np.isfinite(a).all():
                raise bad(key, f"a finite (N, H) state of one of {num_layers} layers")
        elif name != "rng" and not name.startswith("average."):  # averages: see unpack_state
            raise CheckpointError(label, f"unexpected entry {key!r}")


def unpack_state(arrays, model, optimizer, rng, label="last.npz", data_keys=None):
    """Load `pack_state`'s dict into model, optimizer and rng (in place), every entry
    checked first (see `check_state`; weights as `lm.sample` checks them).

    Returns (scalars, data_state, carry, average); carry is None when none was saved,
    average ({name: array} like model.params, checked as weights are) None when the run
    kept no weight average. Runs saved
    before `best_key` existed (language models) get it from best_val. Raises
    CheckpointError (a ValueError) naming the file and what is missing or wrong.
    """
    if data_keys is None:
        data_keys = [k[len("state/data."):] for k in arrays if k.startswith("state/data.")]
    num_layers = len(getattr(getattr(model, "encoder", None), "layers", ())) or 64
    check_state(arrays, data_keys, num_layers, label)
    unknown = [k for k in arrays if not k.startswith(("param/", "optim/", "state/"))]
    if unknown:
        raise CheckpointError(label, f"unexpected entry {unknown[0]!r}")
    try:
        optimizer.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items()
                                   if k.startswith("optim/")}, check_only=True)
    except ValueError as e:
        raise CheckpointError(label, str(e)) from None
    average = None
    if any(k.startswith("state/average.") for k in arrays):
        average = {k: np.empty_like(v) for k, v in model.params.items()}
        copy_into_params(average, {k: v for k, v in arrays.items()
                                   if k.startswith("state/average.")},
                         prefix="state/average.", label=label)
    copy_into_params(model.params, arrays, label=label)
    optimizer.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items()
                               if k.startswith("optim/")})
    rng_from_array(arrays["state/rng"], label, into=rng)
    scalars = {k: typ(np.asarray(arrays.get(f"state/{k}", 0)).item()) for k, typ in SCALARS.items()}
    if scalars["best_val"] < 0:
        scalars["best_val"] = float("inf")
    if "state/best_key" in arrays:
        scalars["best_key"] = tuple(float(v) for v in np.asarray(arrays["state/best_key"]).ravel())
    else:  # lm 0.1: the best was the lowest validation loss
        scalars["best_key"] = None if scalars["best_val"] == float("inf") \
            else (-scalars["best_val"],)
    data_state = {k[len("state/data."):]: np.asarray(v) for k, v in arrays.items()
                  if k.startswith("state/data.")}
    layers = {}
    for k, v in arrays.items():
        if k.startswith("state/carry."):
            layer, i = (int(x) for x in k[len("state/carry."):].split("."))
            layers.setdefault(layer, {})[i] = np.array(v, copy=True)
    carry = [tuple(layers[l][i] for i in sorted(layers[l])) for l in sorted(layers)] or None
    return scalars, data_state, carry, average
