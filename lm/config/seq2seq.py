"""Sequence-to-sequence training configuration: the dataclass whose fields are the
`lm.seq2seq train` flags and `config.json`'s "train" section."""
from dataclasses import dataclass

from lm.config.checks import (SCHEDULE, JsonConfig, check_bool, check_choice, check_float,
                              check_int, check_schedule, check_size, fixed_on_resume)
from lm.config.choices import CELLS, DECODER_INPUTS, DTYPES, ENCODING_ERRORS, SEQ2SEQ_TASKS

MAX_DIGITS = 9  # addition: sums stay exact in int64 and questions short


@dataclass
class Seq2SeqConfig(JsonConfig):
    """The `train` flags; config.json's "train" section."""
    # --- data ---
    data: str = ""                 # a source<TAB>target file (then --task is pairs)
    task: str = "addition"         # addition (built-in questions) or pairs (the DATA file)
    digits: int = 3                # addition: each number has 1 to this many digits
    num_questions: int = 50000     # addition: distinct questions (a question and its swapped twin count once)
    val_frac: float = 0.1          # fraction of the distinct sources held out (never seen in training)
    seed: int = 0                  # seeds the questions, the split, the initialisation and batch order
    encoding: str = "utf-8"        # text encoding of DATA
    encoding_errors: str = "strict"  # strict (fail on a bad byte) or replace (U+FFFD)
    # --- model ---
    cell: str = "lstm"             # recurrent cell of encoder and decoder: lstm, gru or rnn
    bidirectional: bool = False    # a bidirectional encoder (the decoder gets 2 * hidden_size units)
    decoder_input: str = "teacher"  # teacher (previous target token) or repeat (the encoder's state at every step)
    reverse: bool = True           # the model reads each source backwards (users never reverse)
    feed_state: bool = True        # teacher: the decoder also reads the encoder's final state at every step
    embed_size: int = 32           # character embedding width (encoder and decoder)
    hidden_size: int = 128         # recurrent state width (per direction)
    num_layers: int = 1            # stacked encoder layers (the decoder starts from the top one)
    dropout: float = 0.0           # dropout on the embeddings, between layers and before the output layer
    # --- optimisation ---
    max_epochs: float = 100.0      # passes over the training pairs
    max_steps: int = 0             # stop after this many steps (0 = no limit)
    time_budget: float = 570.0     # stop after this many seconds of training, evaluate and save (0 = none)
    target_acc: float = 0.995      # stop once held-out exact-match accuracy reaches this (0 = never)
    batch_size: int = 128          # pairs per step (grouped by length)
    learning_rate: float = 1e-2    # Adam step size
    grad_clip: float = 5.0         # clip the global gradient norm to this (0 = off)
    lr_decay: float = 0.5          # multiply the lr by this when validation stalls (1 = never)
    patience: int = 0              # evaluations without improvement before lowering the lr
    min_lr: float = 1e-4           # the lr is never lowered below this
    eval_every: int = 200          # evaluate and save every this many steps (0 = after each epoch)
    log_every: int = 50            # log the training loss to metrics.jsonl every this many steps (0 = off)
    # --- run directory ---
    out_dir: str = ""              # run directory (default checkpoints/seq2seq-<task>-<cell>)
    resume: bool = False           # continue the run in --out_dir exactly where it stopped
    dtype: str = "float32"         # parameter dtype (float64 for exact tests)

    def validate(self):
        """Range-check every field (ValueError naming the flag); returns self."""
        c = self
        c.data = "" if c.data is None else str(c.data)
        c.out_dir = "" if c.out_dir is None else str(c.out_dir)
        c.task = check_choice("task", c.task, SEQ2SEQ_TASKS)
        c.cell = check_choice("cell", c.cell, CELLS)
        c.decoder_input = check_choice("decoder_input", c.decoder_input, DECODER_INPUTS)
        c.dtype = check_choice("dtype", c.dtype, DTYPES)
        c.encoding_errors = check_choice("encoding_errors", c.encoding_errors, ENCODING_ERRORS)
        for name in ("bidirectional", "reverse", "feed_state", "resume"):
            setattr(c, name, check_bool(name, getattr(c, name)))
        c.digits = check_int("digits", c.digits, 1, MAX_DIGITS)
        c.num_questions = check_int("num_questions", c.num_questions, 2, 10_000_000)
        c.val_frac = check_float("val_frac", c.val_frac, 0, 1, hi_open=True)
        c.seed = check_int("seed", c.seed, 0, 2**63 - 1)
        c.embed_size = check_size("embed_size", c.embed_size)
        c.hidden_size = check_size("hidden_size", c.hidden_size)
        c.num_layers = check_size("num_layers", c.num_layers)
        c.dropout = check_float("dropout", c.dropout, 0, 1, hi_open=True)
        check_schedule(c)
        c.target_acc = check_float("target_acc", c.target_acc, 0, 1)
        c.batch_size = check_int("batch_size", c.batch_size, 1, 100000)
        if c.data and not c.resume:
            c.task = "pairs"
        if c.task == "pairs" and not c.data and not c.resume:
            raise ValueError("--task pairs needs a source<TAB>target file: "
                             "python -m lm.seq2seq train pairs.tsv")
        return c


# What a resumed run keeps: all but the budgets, the schedule and --target_acc.
FIXED_ON_RESUME = fixed_on_resume(Seq2SeqConfig, SCHEDULE + ("target_acc",))
