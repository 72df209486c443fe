"""Flag rules: each value checked once, with one rule, and an error that names the flag.

Library code (configs, CLIs) calls these; they raise ValueError("--name ..."), which the
command-line layer (lm.cli) prints as one `error:` line with exit status 2.
"""
import math


def check_int(name, value, lo=None, hi=None):
    """`value` as an int in [lo, hi]; `ValueError('--name ...')` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"--{name} must be an integer, got {value!r}")
    try:
        f = float(value)
        iv = int(f)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"--{name} must be an integer, got {value!r}") from None
    if iv != f:
        raise ValueError(f"--{name} must be an integer, got {value!r}")
    _check_range(name, iv, lo, hi, lo_open=False, hi_open=False)
    return iv


def check_float(name, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """`value` as a finite float in the interval; `lo_open`/`hi_open` exclude the ends."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"--{name} must be a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"--{name} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"--{name} must be finite, got {value!r}")
    _check_range(name, f, lo, hi, lo_open, hi_open)
    return f


def _check_range(name, v, lo, hi, lo_open, hi_open):
    bad_lo = lo is not None and (v <= lo if lo_open else v < lo)
    bad_hi = hi is not None and (v >= hi if hi_open else v > hi)
    if bad_lo or bad_hi:
        left = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        right = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        if lo is not None and hi is not None:
            want = f"in {left}, {right}"
        elif lo is not None:
            want = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            want = f"{'<' if hi_open else '<='} {hi:g}"
        raise ValueError(f"--{name} must be {want}, got {v:g}")


def check_choice(name, value, choices):
    """`value` (a string) if it is one of `choices`, else an error listing them."""
    s = str(value).lower() if isinstance(value, str) else value
    if s not in choices:
        raise ValueError(f"--{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return s


def check_encoding(name, value):
    """The canonical name of text encoding `value` (a codec that decodes bytes to text:
    utf-8, latin-1, utf-16, ...); ValueError naming `--name` for an unknown codec or one
    that is not a text encoding (rot13 turns text into text, base64 or zlib bytes into
    bytes)."""
    import codecs

    try:
        info = codecs.lookup(value)
    except (LookupError, TypeError):
        raise ValueError(f"--{name}: unknown text encoding {value!r} "
                         "(for example utf-8, latin-1, utf-16, cp1252)") from None
    try:  # `undefined` and the bytes-to-bytes codecs fail here or return bytes
        ok = getattr(info, "_is_text_encoding", True) and isinstance(
            codecs.getincrementaldecoder(info.name)("strict").decode(b"", final=True), str)
    except Exception:  # noqa: BLE001 - any codec failure means "not a text encoding"
        ok = False
    if not ok:
        raise ValueError(f"--{name}: {value!r} is not a text encoding (it does not decode "
                         "bytes to text); use e.g. utf-8, latin-1, utf-16, cp1252")
    return info.name


def check_bool(name, value):
    """fire gives `--flag` as True; also accept true/false/1/0 written out."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ValueError(f"--{name} is a switch (--{name} or --no{name}), got {value!r}")


# The sizes of a model, and their one rule: an integer in [1, limit]. Flags, model
# constructors and a checkpoint's config.json all check a size with `check_size`.
SIZE_LIMITS = {"vocab_size": 2**31 - 1, "embed_size": 65536, "hidden_size": 65536,
               "num_layers": 64, "num_classes": 100, "filters": 65536, "kernel_size": 1024,
               "pool_size": 1024}


def check_size(name, value, flag=True):
    """`value` as an int in [1, SIZE_LIMITS[name]]; ValueError naming `--name` (a flag) or
    `name` (a constructor argument or config field) otherwise. Bools and fractions fail."""
    label = f"--{name}" if flag else name
    integral = isinstance(value, int) or (
        hasattr(value, "is_integer") and not isinstance(value, str) and value.is_integer()) \
        or type(value).__name__.startswith(("int", "uint"))
    if isinstance(value, bool) or not integral:
        raise ValueError(f"{label} must be an integer, got {value!r}")
    value, top = int(value), SIZE_LIMITS[name]
    if not 1 <= value <= top:
        raise ValueError(f"{label} must be in [1, {top}], got {value}")
    return value


def fields_from_json(cls, d, label="config.json", defaults=None):
    """An instance of dataclass `cls` from a JSON object, every field with its flag's JSON
    type (an int where the flag is an integer, true/false for a switch, text for text; a
    float field takes an int too); unknown names are refused. `defaults`: values for
    fields that files written before those fields existed lack. Then `validate()` checks
    the ranges. Raises ValueError naming the file and the field."""
    import dataclasses

    if not isinstance(d, dict):
        raise ValueError(f"{label}: \"train\" must be an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{label}: unknown training flag {unknown[0]!r}")
    kinds = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}
    for name, value in d.items():
        want = fields[name].type if isinstance(fields[name].type, type) else \
            type(fields[name].default)
        ok = isinstance(value, kinds[want]) and (want is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"{label}: train.{name} must be {want.__name__}, got {value!r}")
    try:
        return cls(**{**(defaults or {}), **d}).validate()
    except ValueError as e:
        raise ValueError(f"{label}: {e}") from None


# ---- what the task configs (sentiment, seq2seq, recall) share --------------------

# The largest --learning_rate (and optimiser lr in a checkpoint) of any model: plain SGD on
# words takes steps of ~20, as PyTorch's word_language_model does.
MAX_LEARNING_RATE = 100.0

# The budgets and the learning-rate schedule: a resumed run may be given them anew.
SCHEDULE = ("max_epochs", "max_steps", "time_budget", "learning_rate", "grad_clip", "lr_decay",
            "patience", "min_lr", "eval_every", "log_every")


def check_schedule(c):
    """Range-check the SCHEDULE fields of config `c` in place (ValueError naming the flag)."""
    c.max_epochs = check_float("max_epochs", c.max_epochs, 0, lo_open=True)
    c.max_steps = check_int("max_steps", c.max_steps, 0)
    c.time_budget = check_float("time_budget", c.time_budget, 0)
    c.learning_rate = check_float("learning_rate", c.learning_rate, 0, MAX_LEARNING_RATE,
                                  lo_open=True)
    c.grad_clip = check_float("grad_clip", c.grad_clip, 0)
    c.lr_decay = check_float("lr_decay", c.lr_decay, 0, 1, lo_open=True)
    c.patience = check_int("patience", c.patience, 0)
    c.min_lr = check_float("min_lr", c.min_lr, 0)
    c.eval_every = check_int("eval_every", c.eval_every, 0)
    c.log_every = check_int("log_every", c.log_every, 0)


def fixed_on_resume(cls, resumable=SCHEDULE):
    """The fields of config dataclass `cls` that a resumed run keeps from its config.json:
    all but `resumable`, resume and out_dir."""
    import dataclasses

    return tuple(f.name for f in dataclasses.fields(cls)
                 if f.name not in (*resumable, "resume", "out_dir"))


class JsonConfig:
    """to_dict/from_dict of a config dataclass: config.json's "train" section."""

    def to_dict(self):
        import dataclasses

        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, label="config.json"):
        """The config in `config.json`'s "train" part, every field checked as its flag is
        (fields_from_json; runs saved before a newer flag existed get its default)."""
        return fields_from_json(cls, d, label)
