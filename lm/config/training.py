"""Training configuration: the dataclass whose fields are the `lm.train` flags and `config.json`.

`config.json` in a run directory holds
    {"kind": "language_model", "model": {...LanguageModelRNN constructor args...},
     "train": asdict(TrainConfig), "data": {...what the corpus turned out to be...}}
so a run can be resumed, sampled and evaluated with nothing else.
"""
import dataclasses
from dataclasses import dataclass

from lm.config.checks import (MAX_LEARNING_RATE, check_bool, check_choice, check_encoding,
                              check_float, check_int, check_size, fields_from_json)
from lm.config.choices import (CELLS, DTYPES, ENCODING_ERRORS, LEGACY_TOKENIZERS, LEVELS,
                               OPTIMIZERS, SOFTMAXES, TOKENIZERS)

# The one rule for the defaults that depend on --level (a field left at None takes the
# value for its level; config.json always holds the value used). Word level, measured on
# Penn Treebank and tinyshakespeare words (README, "Word level"): the classic recipe of
# word-level LSTMs (Zaremba et al. 2014; PyTorch's word_language_model), two tied layers
# trained by plain SGD with a large step and tight clipping, on shorter windows, evaluated
# every 100 steps (the lr lowered after two without improvement), and words seen once as
# <unk> (so that <unk>, which held-out words outside the vocabulary become, is learnt);
# see `level_default` for the tie and embed rules.
LEVEL_DEFAULTS = {
    "char": {"min_count": 1, "embed_size": 64, "hidden_size": 512, "num_layers": 1,
             "dropout": 0.1, "tie_weights": False, "seq_length": 64, "batch_size": 32,
             "optimizer": "adam", "eval_every": 200, "average": 0.0, "cache_size": 0},
    "word": {"min_count": 2, "embed_size": "hidden_size", "hidden_size": 256, "num_layers": 2,
             "dropout": 0.45, "tie_weights": True, "seq_length": 35, "batch_size": 20,
             "optimizer": "sgd", "eval_every": 100, "average": 0.99, "cache_size": 1000},
}
# The one rule for the defaults that depend on --optimizer (filled after the level's):
# Adam's small steps, or plain SGD's large ones kept in check by clipping the gradient norm
# at 0.25 and dividing the step by 4 at a stall.
OPTIMIZER_DEFAULTS = {
    "adam": {"learning_rate": 3e-3, "grad_clip": 5.0, "lr_decay": 0.5},
    "sgd": {"learning_rate": 20.0, "grad_clip": 0.25, "lr_decay": 0.25},
}
# --softmax auto: the adaptive softmax above this many words, the tied full one up to it.
# Measured (README, "Word level"): speed (scripts/bench_softmax.py, 1-layer LSTM E = H = 256,
# N*T = 20*35, one thread): the adaptive training step is 1.1-1.2x the full one at
# V = 1000-2000, 2.0x at 4000, 2.1x at 6000 and 2.7x at 10,000; quality (the word defaults,
# 2 layers, plain SGD): on Penn Treebank (4,167 words) the tied full softmax reaches a
# validation loss 0.18 nats lower in 5 minutes, on tinyshakespeare words (10,211) the two
# score the same held-out bits per char after 9 minutes, the adaptive one at 2.1x the speed.
ADAPTIVE_ABOVE = 8000
# The continuous cache (lm.models.cache) at word level: size 1,000, theta 0.6, lambda 0.2,
# chosen on the validation splits of round 6's runs (Penn Treebank, tinyshakespeare words,
# pydoc: the grid 1,000-8,000 x 0.6-1.5 x 0.1-0.3, the lowest sum of log loss ratios).
CACHE_THETA, CACHE_LAMBDA = 0.6, 0.2
MAX_CACHE_SIZE = 10 ** 6


def check_cache_size(value):
    """--cache_size as an int in [0, MAX_CACHE_SIZE] (0 = no cache)."""
    return check_int("cache_size", value, 0, MAX_CACHE_SIZE)


@dataclass
class TrainConfig:
    # --- data ---
    corpus: str = "pydoc"          # text file path or a corpus name (pydoc, tinyshakespeare, names)
    level: str = "char"            # "char": Unicode code points; "word": words with the space before them, punctuation, line breaks
    tokenizer: str = ""            # word level: "lines" (default: str.split()'s words as " the", " end."; a line break is a token with the next line's indentation), "split" (indentation apart), "words" (punctuation apart) or "runs" (lm 0.1)
    lowercase: bool = False        # lowercase the text before tokenising
    min_count: int = None          # tokens seen fewer times become <unk> (by level: char 1, word 2)
    max_vocab: int = 0             # keep only the most frequent tokens (0 = no limit)
    line_mode: bool = False        # each line is one sample, framed by <bos>/<eos>, padded, masked
    val_frac: float = 0.1          # the last fraction of the token stream (or lines) is validation
    shuffle_lines: bool = True     # line mode: shuffle the lines with --seed before the split
    encoding: str = "utf-8"        # text encoding of the corpus
    encoding_errors: str = "strict"  # "strict" fails on invalid bytes, "replace" uses U+FFFD
    # --- model ---
    cell: str = "lstm"             # recurrent cell: lstm, gru or rnn (vanilla tanh)
    embed_size: int = None         # token embedding width (by level: char 64, word = hidden_size)
    hidden_size: int = None        # recurrent state width (by level: char 512, word 256)
    num_layers: int = None         # stacked recurrent layers (by level: char 1, word 2)
    dropout: float = None          # dropout on embeddings, between layers, before the output layer (by level: char 0.1, word 0.45)
    tie_weights: bool = None       # share embedding and output matrix, needs embed == hidden (by level: char off, word on with the full softmax)
    softmax: str = "auto"          # output layer: full, adaptive (frequent words in a head, rare ones in clusters), auto (by vocabulary size, see above)
    cache_size: int = None         # scoring and sampling mix in a continuous cache of the last this many positions, 0 = off (by level: char 0, word 1000)
    cache_theta: float = CACHE_THETA  # the cache's sharpness: its weights are softmax(theta * h_t . h_i)
    cache_lambda: float = CACHE_LAMBDA  # the cache's share of the mixture, (1 - lambda) p_model + lambda p_cache
    # --- optimisation ---
    seq_length: int = None         # BPTT window: tokens per stream per step (by level: char 64, word 35)
    batch_size: int = None         # parallel streams (or lines) per step (by level: char 32, word 20)
    optimizer: str = None          # adam or sgd (with --momentum) (by level: char adam, word sgd)
    learning_rate: float = None    # initial step size (by optimizer: adam 3e-3, sgd 20)
    momentum: float = 0.0          # SGD momentum (ignored by Adam)
    weight_decay: float = 0.0      # L2 penalty added by the optimiser
    grad_clip: float = None        # clip the global gradient norm to this, 0 = off (by optimizer: adam 5, sgd 0.25)
    lr_decay: float = None         # multiply the lr by this when validation stalls (by optimizer: adam 0.5, sgd 0.25)
    patience: int = 1              # evaluations without improvement before lowering the lr
    average: float = None          # evaluate and keep the moving average of the weights, this decay per step, 0 = off (by level: char 0, word 0.99)
    min_lr: float = 1e-5           # the lr is never lowered below this
    # --- schedule ---
    max_epochs: float = 50.0       # stop after this many passes over the training tokens
    max_steps: int = 0             # stop after this many steps (0 = no limit)
    time_budget: float = 0.0       # stop after this many seconds of training (0 = no limit)
    eval_every: int = None         # evaluate, log, save and sample every this many steps (by level: char 200, word 100)
    log_every: int = 10            # log the training loss to metrics.jsonl every this many steps (0 = off)
    eval_tokens: int = 1_000_000   # validation tokens per evaluation, the first ones (0 = all)
    sample_length: int = 200       # tokens (lines in line mode: up to 5) of the sample after eval
    seed: int = 0                  # seeds initialisation, dropout and line shuffling
    # --- run directory ---
    out_dir: str = ""              # run directory (default checkpoints/<corpus>-<level>-<cell>)
    resume: bool = False           # continue the run in out_dir exactly where it stopped
    init_from: str = ""            # start from the weights (and vocabulary) of another run
    dtype: str = "float32"         # parameter dtype; float64 for exact-resume tests (undocumented)

    def validate(self):
        """Range-check every field; returns self with normalised values (the level's
        defaults filled in where a field is None, see LEVEL_DEFAULTS)."""
        c = self
        c.corpus = str(c.corpus)
        c.level = check_choice("level", c.level, LEVELS)
        c.tokenizer = "" if c.tokenizer is None else str(c.tokenizer)
        c.tokenizer = c.tokenizer or TOKENIZERS[c.level][0]
        check_choice("tokenizer", c.tokenizer, TOKENIZERS[c.level])
        c.softmax = check_choice("softmax", c.softmax, SOFTMAXES + ("auto",))
        if not hasattr(c, "_tie_given"):  # asked for, or a level default (resolve_softmax)
            c._tie_given = c.tie_weights is not None
        for name in LEVEL_DEFAULTS[c.level]:
            if getattr(c, name) is None:
                setattr(c, name, level_default(c, name))
        c.cell = check_choice("cell", c.cell, CELLS)
        c.optimizer = check_choice("optimizer", c.optimizer, OPTIMIZERS)
        for name, value in OPTIMIZER_DEFAULTS[c.optimizer].items():
            if getattr(c, name) is None:
                setattr(c, name, value)
        c.dtype = check_choice("dtype", c.dtype, DTYPES)
        c.encoding_errors = check_choice("encoding_errors", c.encoding_errors, ENCODING_ERRORS)
        check_encoding("encoding", c.encoding)  # a codec that decodes bytes to text
        for name in ("lowercase", "line_mode", "shuffle_lines", "tie_weights", "resume"):
            setattr(c, name, check_bool(name, getattr(c, name)))
        c.min_count = check_int("min_count", c.min_count, lo=1)
        c.max_vocab = check_int("max_vocab", c.max_vocab, lo=0)
        if 0 < c.max_vocab < 2:
            raise ValueError("--max_vocab must be 0 (no limit) or at least 2")
        c.val_frac = check_float("val_frac", c.val_frac, 0, 1, lo_open=True, hi_open=True)
        c.embed_size = check_size("embed_size", c.embed_size)
        c.hidden_size = check_size("hidden_size", c.hidden_size)
        c.num_layers = check_size("num_layers", c.num_layers)
        c.dropout = check_float("dropout", c.dropout, 0, 1, hi_open=True)
        if c.tie_weights and c.embed_size != c.hidden_size:
            raise ValueError(f"--tie_weights needs --embed_size == --hidden_size "
                             f"(got {c.embed_size} and {c.hidden_size})")
        if c.tie_weights and c.softmax == "adaptive":
            raise ValueError("--tie_weights needs --softmax full (the adaptive softmax has "
                             "its own output weights)")
        c.seq_length = check_int("seq_length", c.seq_length, 1, 100000)
        c.batch_size = check_int("batch_size", c.batch_size, 1, 100000)
        c.learning_rate = check_float("learning_rate", c.learning_rate, 0, MAX_LEARNING_RATE,
                                      lo_open=True)
        c.momentum = check_float("momentum", c.momentum, 0, 1, hi_open=True)
        c.weight_decay = check_float("weight_decay", c.weight_decay, 0)
        c.grad_clip = check_float("grad_clip", c.grad_clip, 0)
        c.lr_decay = check_float("lr_decay", c.lr_decay, 0, 1, lo_open=True)
        c.patience = check_int("patience", c.patience, 0)
        c.average = check_float("average", c.average, 0, 1, hi_open=True)
        c.cache_size = check_cache_size(c.cache_size)
        c.cache_theta = check_float("cache_theta", c.cache_theta, 0)
        c.cache_lambda = check_float("cache_lambda", c.cache_lambda, 0, 1, hi_open=True)
        c.min_lr = check_float("min_lr", c.min_lr, 0)
        c.max_epochs = check_float("max_epochs", c.max_epochs, 0, lo_open=True)
        c.max_steps = check_int("max_steps", c.max_steps, 0)
        c.time_budget = check_float("time_budget", c.time_budget, 0)
        c.eval_every = check_int("eval_every", c.eval_every, 1)
        c.log_every = check_int("log_every", c.log_every, 0)
        c.eval_tokens = check_int("eval_tokens", c.eval_tokens, 0)
        c.sample_length = check_int("sample_length", c.sample_length, 0, 100000)
        c.seed = check_int("seed", c.seed, 0, 2**63 - 1)
        c.out_dir = "" if c.out_dir is None else str(c.out_dir)
        c.init_from = "" if c.init_from is None else str(c.init_from)
        return c

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, label="config.json"):
        """The config in `config.json`'s "train" part, every field checked as its flag is
        (see lm.config.checks.fields_from_json); runs saved before `--shuffle_lines` and
        `--log_every` existed keep file order and log no training-loss rows; a field missing
        from it takes the default of lm 0.1, not today's level default."""
        old = {"shuffle_lines": False, "log_every": 0, "softmax": "full", "tokenizer":
               LEGACY_TOKENIZERS.get(d.get("level", "char"), "") if isinstance(d, dict) else "",
               "num_layers": 1, "batch_size": 32, "optimizer": "adam", "learning_rate": 3e-3,
               "momentum": 0.9, "grad_clip": 5.0, "lr_decay": 0.5, "eval_every": 200,
               "average": 0.0, "cache_size": 0}
        return fields_from_json(cls, d, label, defaults=old)

    def resolve_softmax(self, vocab_size):
        """`softmax` once the vocabulary is known: "auto" becomes adaptive above
        ADAPTIVE_ABOVE words (untied: then tie_weights is switched off unless it was
        asked for, which is an error), else full."""
        if self.softmax == "auto":
            self.softmax = "adaptive" if vocab_size > ADAPTIVE_ABOVE and not (
                self.tie_weights and self._tie_given) else "full"
        if self.softmax == "adaptive" and self.tie_weights:
            if self._tie_given:
                raise ValueError("--tie_weights needs --softmax full (the adaptive softmax "
                                 "has its own output weights)")
            self.tie_weights = False
        return self


def level_default(cfg, name):
    """The default of field `name` at `cfg.level` (LEVEL_DEFAULTS; "hidden_size" means
    the same as --hidden_size; a tie only where embed == hidden)."""
    value = LEVEL_DEFAULTS[cfg.level][name]
    if value == "hidden_size":
        return cfg.hidden_size if cfg.hidden_size is not None else level_default(cfg, value)
    if name == "tie_weights" and value:
        embed = cfg.embed_size if cfg.embed_size is not None else level_default(cfg, "embed_size")
        hidden = cfg.hidden_size if cfg.hidden_size is not None else \
            level_default(cfg, "hidden_size")
        return embed == hidden and cfg.softmax != "adaptive"
    return value


def level_defaults_help():
    """One line per level- or optimizer-dependent flag for --help, from LEVEL_DEFAULTS and
    OPTIMIZER_DEFAULTS."""
    lines = []
    for name in LEVEL_DEFAULTS["char"]:
        vals = ", ".join(f"{lv} {_shown(LEVEL_DEFAULTS[lv][name])}" for lv in LEVEL_DEFAULTS)
        lines.append(f"  --{name}: {vals}")
    for name in OPTIMIZER_DEFAULTS["adam"]:
        vals = ", ".join(f"{opt} {_shown(OPTIMIZER_DEFAULTS[opt][name])}"
                         for opt in OPTIMIZER_DEFAULTS)
        lines.append(f"  --{name}: {vals} (by --optimizer)")
    return "\n".join(lines)


def _shown(v):
    return {True: "on", False: "off", "hidden_size": "= hidden_size"}.get(v, v) \
        if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:g}"


# Flags that define the model or the data: a resumed run keeps its own values.
FIXED_ON_RESUME = ("corpus", "level", "tokenizer", "softmax", "lowercase", "min_count", "max_vocab", "line_mode",
                   "shuffle_lines", "val_frac", "encoding", "encoding_errors", "cell",
                   "embed_size", "hidden_size", "num_layers", "dropout", "tie_weights",
                   "seq_length", "batch_size", "optimizer", "average", "cache_size", "cache_theta",
                   "cache_lambda", "seed", "dtype")
# Flags taken from the source run with --init_from (they define the weights' shapes).
MODEL_FLAGS = ("cell", "embed_size", "hidden_size", "num_layers", "tie_weights", "softmax")


def resume_config(saved, new, given, fixed=FIXED_ON_RESUME):
    """The config of a resumed run: the saved one, with the run-control flags given now.

    Flags that define the model or data (`fixed`) keep their saved values; giving a
    different value for one of them is an error rather than a silent change. Works for
    every config dataclass with `resume` and `out_dir` fields (TrainConfig, SentimentConfig).
    """
    merged = dataclasses.replace(saved)
    for name in given:
        value = getattr(new, name)
        if name in fixed:
            if value != getattr(saved, name) and name != "corpus":
                raise ValueError(f"--{name} {value} differs from the resumed run's "
                                 f"{getattr(saved, name)}; a resumed run keeps its model and "
                                 f"data settings (use --init_from to start a new run from it)")
        elif name not in ("resume", "out_dir", "init_from"):
            setattr(merged, name, value)
    merged.resume = True
    merged.out_dir = new.out_dir
    return merged.validate()


def init_from_config(source_cfg, new, given):
    """A new run's config that starts from another run: the source's model shape and text
    handling (its vocabulary is reused), everything else from `new`."""
    fixed = MODEL_FLAGS + ("level", "tokenizer", "lowercase")
    merged = dataclasses.replace(new)
    for name in fixed:
        if name in given and getattr(new, name) != getattr(source_cfg, name):
            raise ValueError(f"--{name} {getattr(new, name)} differs from the --init_from run's "
                             f"{getattr(source_cfg, name)}; the weights fix it")
        setattr(merged, name, getattr(source_cfg, name))
    return merged.validate()


def train_config_from_json(d, label="config.json"):
    """The TrainConfig saved in a language model's config.json, every field checked."""
    if not isinstance(d, dict) or not isinstance(d.get("train"), dict):
        raise ValueError(f"{label} has no \"train\" section")
    if d.get("kind") != "language_model":
        raise ValueError(f"{label}: this is a {d.get('kind')!r} run, not a language model")
    return TrainConfig.from_dict(d["train"], label)
