"""Everything a resumed run needs, as one flat dict of arrays for `last.npz`.

Layout (names as stored in the npz):
    param/<name>          model weights (`embed.W`, `rnn0.Wx`, ..., `head.b`)
    optim/<key>           optimiser state (`adam.m.embed.W`, `adam.t`, `adam.lr`, ...)
    state/<scalar>        step, tokens, elapsed, best_val, ... (0-d arrays)
    state/rng             the training Generator's PCG64 state as 6 uint64 words
    state/data.<key>      the batcher's position
    state/carry.<l>.<i>   hidden state carried between BPTT windows: layer l, (h, c)[i]
Weights, optimiser, RNG, data position and step are written together in one atomic file,
so a crash can never pair the weights of one step with the counters of another.
"""
import numpy as np

_MASK64 = (1 << 64) - 1

# scalar training state and its type: ints are exact, floats are float64
SCALARS = {"step": int, "tokens": int, "elapsed": float, "best_val": float,
           "best_step": int, "bad_evals": int, "loss_sum": float, "loss_count": int,
           "nonfinite_restarts": int, "last_eval_step": int}


def rng_to_array(rng):
    """A PCG64 Generator's state as (6,) uint64: state hi/lo, inc hi/lo, has_uint32, uinteger."""
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise ValueError(f"only PCG64 generators can be saved, got {st.get('bit_generator')}")
    s, inc = st["state"]["state"], st["state"]["inc"]
    words = [s >> 64, s & _MASK64, inc >> 64, inc & _MASK64, st["has_uint32"], st["uinteger"]]
    return np.array(words, dtype=np.uint64)


def rng_from_array(rng, arr):
    """Restore `rng` in place (so every holder of this Generator continues the same stream)."""
    w = [int(v) for v in np.asarray(arr, dtype=np.uint64).reshape(-1)]
    if len(w) != 6:
        raise ValueError(f"RNG state must have 6 words, got {len(w)}")
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4], "uinteger": w[5]}


def pack_state(model, optimizer, scalars, data_state, carry, rng):
    """The flat dict written to last.npz (arrays are copies: safe to keep as a snapshot)."""
    out = {f"param/{k}": np.array(v, copy=True) for k, v in model.params.items()}
    out.update({f"optim/{k}": np.array(v, copy=True) for k, v in optimizer.state_dict().items()})
    for k, typ in SCALARS.items():
        v = typ(scalars[k])
        if typ is float and not np.isfinite(v):
            v = -1.0  # "none yet" (best_val = inf): checkpoints hold finite numbers only
        out[f"state/{k}"] = np.asarray(v, dtype=np.int64 if typ is int else np.float64)
    out["state/rng"] = rng_to_array(rng)
    for k, v in (data_state or {}).items():
        out[f"state/data.{k}"] = np.array(v, copy=True)
    for layer, tensors in enumerate(carry or ()):
        for i, t in enumerate(tensors):
            out[f"state/carry.{layer}.{i}"] = np.array(t, copy=True)
    return out


def unpack_state(arrays, model, optimizer, rng):
    """Load `pack_state`'s dict into model, optimizer and rng (in place).

    Returns (scalars, data_state, carry); carry is None when none was saved.
    Raises ValueError naming what is missing or mismatched.
    """
    missing = [f"param/{k}" for k in model.params if f"param/{k}" not in arrays]
    missing += [f"state/{k}" for k in SCALARS if f"state/{k}" not in arrays]
    if "state/rng" not in arrays:
        missing.append("state/rng")
    if missing:
        raise ValueError(f"checkpoint lacks {', '.join(missing[:4])}"
                         + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    for k, p in model.params.items():
        src = np.asarray(arrays[f"param/{k}"])
        if src.shape != p.shape:
            raise ValueError(f"checkpoint param/{k} has shape {src.shape}, model has {p.shape}")
        np.copyto(p, src, casting="unsafe")
    optimizer.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items()
                               if k.startswith("optim/")})
    rng_from_array(rng, arrays["state/rng"])
    scalars = {k: typ(np.asarray(arrays[f"state/{k}"]).item()) for k, typ in SCALARS.items()}
    if scalars["best_val"] < 0:
        scalars["best_val"] = float("inf")
    data_state = {k[len("state/data."):]: np.asarray(v) for k, v in arrays.items()
                  if k.startswith("state/data.")}
    layers = {}
    for k, v in arrays.items():
        if k.startswith("state/carry."):
            layer, i = (int(x) for x in k[len("state/carry."):].split("."))
            layers.setdefault(layer, {})[i] = np.array(v, copy=True)
    carry = [tuple(layers[l][i] for i in sorted(layers[l])) for l in sorted(layers)] or None
    return scalars, data_state, carry


def copy_params(model, arrays, prefix="param/"):
    """Copy weights `prefix<name>` from `arrays` into the model (shapes must match)."""
    for k, p in model.params.items():
        key = prefix + k
        if key not in arrays:
            raise ValueError(f"checkpoint lacks {key}")
        src = np.asarray(arrays[key])
        if src.shape != p.shape:
            raise ValueError(f"checkpoint {key} has shape {src.shape}, model has {p.shape}")
        np.copyto(p, src, casting="unsafe")
