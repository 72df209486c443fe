"""What a run's config.json and vocab.json may hold: their validation (types, ranges,
choices, required fields per model kind), a bound on the weights a config implies (checked
against a checkpoint's size before anything is read), and writing them.

Every problem is a CheckpointError naming the file and the failed check.
"""
import os

from lm.config import choices
from lm.config.checks import SIZE_LIMITS, check_size
from lm.storage import safe_npz
from lm.storage.atomic import write_json
from lm.storage.safe_json import MAX_JSON_BYTES, parse_json, read_bytes_bounded
from lm.storage.safe_zip import CheckpointError

CONFIG_NAME, VOCAB_NAME = "config.json", "vocab.json"
KINDS = ("language_model", "sentiment", "recall", "seq2seq")

# Types of the "model" fields of config.json that lm knows; others pass unchecked.
_BOOL_FIELDS = ("tie_weights", "bidirectional", "reverse", "feed_state")
_CHOICE_FIELDS = {"cell": choices.ENCODERS, "dtype": choices.DTYPES, "pool": choices.POOLS,
                  "decoder_input": choices.DECODER_INPUTS, "softmax": choices.SOFTMAXES}
_REQUIRED = {"language_model": ("vocab_size", "embed_size", "hidden_size", "cell"),
             "sentiment": ("vocab_size", "embed_size"),
             "recall": ("vocab_size", "embed_size", "hidden_size", "cell"),
             "seq2seq": ("vocab_size", "embed_size", "hidden_size", "cell", "decoder_input")}


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def validate_config(config, label=CONFIG_NAME):
    """Check the schema of a run's config.json dict; returns it or raises CheckpointError.

    {"kind": "language_model"|"sentiment"|"recall", "model": {...}, "train": {...}, "data": {...}}
    (train and data optional). In "model": sizes (vocab_size, embed_size, hidden_size,
    num_layers, num_classes) are ints in [1, 2**31); dropout a number in [0, 1);
    tie_weights/bidirectional booleans; cell, dtype, pool from their choices.
    """
    if not isinstance(config, dict):
        raise CheckpointError(label, "config must be a JSON object")
    kind = config.get("kind")
    if kind not in KINDS:
        raise CheckpointError(label, f"'kind' must be one of {list(KINDS)}, got {kind!r}")
    for section in ("train", "data"):
        if section in config and not isinstance(config[section], dict):
            raise CheckpointError(label, f"'{section}' must be an object")
    model = config.get("model")
    if not isinstance(model, dict):
        raise CheckpointError(label, "'model' must be an object")
    for key in _REQUIRED[kind]:
        if key not in model:
            raise CheckpointError(label, f"'model' lacks the required field {key!r}")
    for key in SIZE_LIMITS:
        if key in model:
            if not _is_int(model[key]):  # JSON: 3.0 is not a size
                raise CheckpointError(label, f"model.{key} must be an integer, got {model[key]!r}")
            try:
                check_size(key, model[key], flag=False)
            except ValueError as e:
                raise CheckpointError(label, f"model.{e}") from None
    for key in _BOOL_FIELDS:
        if key in model and not isinstance(model[key], bool):
            raise CheckpointError(label, f"model.{key} must be true or false")
    for key, allowed in _CHOICE_FIELDS.items():
        if key in model and model[key] not in allowed:
            raise CheckpointError(label, f"model.{key} must be one of {list(allowed)}, "
                                  f"got {model[key]!r}")
    p = model.get("dropout", 0.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise CheckpointError(label, f"model.dropout must be a number in [0, 1), got {p!r}")
    return config


def validate_vocab(vocab, vocab_size=None, label=VOCAB_NAME):
    """Check a vocab.json dict (Vocab.to_json): "itos" a list of distinct strings, of
    vocab_size if given; "specials" strings, "lowercase" a bool, "level" char|word, and
    "tokenizer" one of the level's (absent in lm 0.1's files)."""
    if not isinstance(vocab, dict):
        raise CheckpointError(label, "vocabulary must be a JSON object")
    itos = vocab.get("itos")
    if not isinstance(itos, list) or not itos:
        raise CheckpointError(label, "'itos' must be a non-empty list of tokens")
    if not all(isinstance(t, str) for t in itos):
        raise CheckpointError(label, "every token in 'itos' must be a string")
    if len(set(itos)) != len(itos):
        raise CheckpointError(label, "'itos' holds a token twice")
    if "lowercase" in vocab and not isinstance(vocab["lowercase"], bool):
        raise CheckpointError(label, "'lowercase' must be true or false")
    if "level" in vocab and vocab["level"] not in choices.TOKENIZERS:
        raise CheckpointError(label, f"'level' must be 'char' or 'word', got {vocab['level']!r}")
    known = choices.TOKENIZERS[vocab.get("level", "char")]
    if "tokenizer" in vocab and vocab["tokenizer"] not in known:
        raise CheckpointError(label, f"'tokenizer' must be one of {', '.join(known)}, "
                              f"got {vocab['tokenizer']!r}")
    specials = vocab.get("specials", [])
    if not isinstance(specials, list) or not all(isinstance(t, str) for t in specials):
        raise CheckpointError(label, "'specials' must be a list of strings")
    if vocab_size is not None and len(itos) != vocab_size:
        raise CheckpointError(label, f"vocabulary has {len(itos)} tokens but the config "
                              f"says vocab_size={vocab_size}")
    return vocab


VOCAB_SLACK = 64  # strings of vocab.json besides its tokens: keys, level, specials


def read_vocab(run_dir, model, label=None):
    """The vocab.json dict of a run whose config.json "model" is `model`, checked with
    validate_vocab against model["vocab_size"]. Before it is parsed, a cheap count of its
    quote characters bounds how many strings it holds: a file with far more tokens than
    the weights can hold (5 million in 54 MB) is refused in milliseconds, before the
    ~800 MB its strings would take."""
    path = os.path.join(os.fspath(run_dir), VOCAB_NAME)
    data = read_bytes_bounded(path, MAX_JSON_BYTES)
    V = model["vocab_size"]
    strings = (data.count(b'"') - data.count(b'\\"')) // 2  # a lower bound
    if strings > V + VOCAB_SLACK:
        raise CheckpointError(path, f"holds at least {strings - VOCAB_SLACK:,} tokens but "
                              f"config.json says vocab_size={V:,}")
    return validate_vocab(parse_json(data, path), V, path)


def check_fits_checkpoint(config, path, label=CONFIG_NAME):
    """Refuse a config.json whose model needs more weights than checkpoint `path` can hold
    (4 bytes a value at least; lm 0.1's .npz may be deflated up to 100x), from the file's
    size alone: cheap, and before the vocabulary or any weight is read."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return  # the loader names the problem
    capacity = size * safe_npz.MAX_RATIO + (1 << 20) if path.endswith(".npz") else size
    implied = implied_weights(config)
    if implied * 4 > capacity:
        raise CheckpointError(label, f"implies at least {implied:,} weights "
                              f"({implied * 4:,} bytes) but {os.path.basename(path)} holds "
                              f"{size:,} bytes")


def write_run_metadata(run_dir, config, vocab):
    """Validate, then atomically write config.json and vocab.json into run_dir."""
    validate_config(config)
    validate_vocab(vocab, config["model"]["vocab_size"])
    os.makedirs(run_dir, exist_ok=True)
    write_json(os.path.join(run_dir, CONFIG_NAME), config)
    write_json(os.path.join(run_dir, VOCAB_NAME), vocab)


def implied_encoder_weights(model):
    """A lower bound on the weights of a validated model config's encoder: V*E (embedding),
    K*E*F (the convolution of cnn, cnn-lstm), I*H + L*H*H (recurrent layers reading
    I = E inputs, or F after cnn-lstm's convolution; none for bag and cnn)."""
    E, cell = model["embed_size"], model.get("cell", "bag")
    H = model.get("hidden_size", E)
    implied, inputs = model["vocab_size"] * E, E
    if cell in ("cnn", "cnn-lstm"):
        inputs = model.get("filters", 1)
        implied += model.get("kernel_size", 1) * E * inputs
    if cell not in ("bag", "cnn"):
        implied += inputs * H + model.get("num_layers", 1) * H * H
    return implied


def implied_weights(config):
    """A lower bound on the weights a validated config implies: the encoder's
    (implied_encoder_weights), V*H (an untied language-model head; V for an adaptive
    softmax, whose clusters are narrower)."""
    model = config["model"]
    implied = implied_encoder_weights(model)
    if config["kind"] == "language_model" and not model.get("tie_weights", False):
        V = model["vocab_size"]
        implied += V if model.get("softmax") == "adaptive" else V * model.get(
            "hidden_size", model["embed_size"])
    return implied
