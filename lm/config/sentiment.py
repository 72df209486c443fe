"""Classifier training configuration: the dataclass whose fields are the `lm.sentiment train`
flags and `config.json`'s "train" section."""
from dataclasses import dataclass

from lm.config.checks import (JsonConfig, check_bool, check_choice, check_encoding, check_float,
                              check_int, check_schedule, check_size, fixed_on_resume)
from lm.config.choices import DTYPES, ENCODERS, ENCODING_ERRORS, LEVELS, POOLS


@dataclass
class SentimentConfig(JsonConfig):
    """The `train` flags; config.json's "train" section."""
    # --- data ---
    data: str = ""                 # label<TAB>text file (plain or CSV-quoted), or with --neg
    neg: str = ""                  # a file of negative sentences: DATA then holds positive ones
    test: str = ""                 # a separate test file (then no --test_frac is taken from DATA)
    val_frac: float = 0.125        # random fraction of DATA for validation (picks the best epoch)
    test_frac: float = 0.125       # random fraction of DATA for test (800 rows -> 600/100/100)
    seed: int = 0                  # seeds the split, the initialisation, dropout and batch order
    level: str = "word"            # word (letters/digit runs and single symbols) or char
    lowercase: bool = True         # lowercase texts before tokenising
    min_count: int = 2             # rarer training tokens become <unk> (so <unk> is learnt)
    encoding: str = "utf-8"        # text encoding of the files
    encoding_errors: str = "strict"  # strict (fail on a bad byte) or replace (U+FFFD)
    # --- model ---
    cell: str = "lstm"             # encoder: bag, rnn, gru, lstm, cnn (conv, relu, max) or cnn-lstm
    bidirectional: bool = False    # read texts both ways (rnn, gru, lstm; the lstm of cnn-lstm)
    pool: str = "max"              # pool the encoder's states over the valid steps: mean, max, last
    embed_size: int = 32           # word (or character) embedding width
    hidden_size: int = 32          # recurrent state width (per direction)
    num_layers: int = 1            # stacked recurrent layers
    filters: int = 200             # cnn, cnn-lstm: convolution filters (the cnn's feature width)
    kernel_size: int = 3           # cnn, cnn-lstm: steps each filter reads (padding "same")
    pool_size: int = 3             # cnn-lstm: steps max-pooled into one before the lstm
    dropout: float = 0.3           # dropout on the embeddings, between layers and before the head
    # --- optimisation ---
    max_epochs: float = 40.0       # passes over the training set
    max_steps: int = 0             # stop after this many steps (0 = no limit)
    time_budget: float = 0.0       # stop after this many seconds of training, evaluate and save (0 = none)
    batch_size: int = 8            # examples per step (grouped by length)
    learning_rate: float = 1e-2    # Adam step size
    weight_decay: float = 1e-4     # L2 penalty on the weight matrices (biases are not decayed)
    grad_clip: float = 5.0         # clip the global gradient norm to this (0 = off)
    lr_decay: float = 1.0          # multiply the lr by this when validation stalls (1 = never)
    patience: int = 1              # evaluations without improvement before lowering the lr
    min_lr: float = 1e-5           # the lr is never lowered below this
    eval_every: int = 0            # evaluate and save every this many steps (0 = after each epoch)
    log_every: int = 10            # log the training loss to metrics.jsonl every this many steps (0 = off)
    # --- run directory ---
    init_from: str = ""            # a language model run: its vocabulary and encoder weights
    freeze_encoder: bool = False   # train only the head (with --init_from)
    out_dir: str = ""              # run directory (default checkpoints/sentiment-<data>-<cell>)
    resume: bool = False           # continue the run in --out_dir exactly where it stopped
    dtype: str = "float32"         # parameter dtype (float64 for exact tests)

    def validate(self):
        """Range-check every field (ValueError naming the flag); returns self."""
        c = self
        c.level = check_choice("level", c.level, LEVELS)
        c.cell = check_choice("cell", c.cell, ENCODERS)
        c.pool = check_choice("pool", c.pool, POOLS)
        c.dtype = check_choice("dtype", c.dtype, DTYPES)
        c.encoding_errors = check_choice("encoding_errors", c.encoding_errors, ENCODING_ERRORS)
        check_encoding("encoding", c.encoding)  # a codec that decodes bytes to text
        for name in ("lowercase", "bidirectional", "freeze_encoder", "resume"):
            setattr(c, name, check_bool(name, getattr(c, name)))
        c.val_frac = check_float("val_frac", c.val_frac, 0, 1, hi_open=True)
        c.test_frac = check_float("test_frac", c.test_frac, 0, 1, hi_open=True)
        c.seed = check_int("seed", c.seed, 0, 2**63 - 1)
        c.min_count = check_int("min_count", c.min_count, 1)
        c.embed_size = check_size("embed_size", c.embed_size)
        c.hidden_size = check_size("hidden_size", c.hidden_size)
        c.num_layers = check_size("num_layers", c.num_layers)
        for name in ("filters", "kernel_size", "pool_size"):
            setattr(c, name, check_size(name, getattr(c, name)))
        c.dropout = check_float("dropout", c.dropout, 0, 1, hi_open=True)
        check_schedule(c)
        c.batch_size = check_int("batch_size", c.batch_size, 1, 100000)
        c.weight_decay = check_float("weight_decay", c.weight_decay, 0)
        if c.bidirectional and c.cell in ("bag", "cnn"):
            raise ValueError(f"--bidirectional needs a recurrent --cell (rnn, gru, lstm, "
                             f"cnn-lstm), not {c.cell}")
        if c.cell == "cnn" and c.num_layers != 1:
            raise ValueError("--num_layers stacks recurrent layers: --cell cnn has one "
                             "convolution (cnn-lstm stacks lstm layers)")
        if c.freeze_encoder and not c.init_from:
            raise ValueError("--freeze_encoder needs --init_from LM_RUN_DIR (a frozen random "
                             "encoder would never learn)")
        if c.init_from and c.bidirectional:
            raise ValueError("--init_from takes a one-directional language model's encoder; "
                             "drop --bidirectional")
        return c


# What a resumed classifier run keeps: all but the budgets and the schedule.
FIXED_ON_RESUME = fixed_on_resume(SentimentConfig)
