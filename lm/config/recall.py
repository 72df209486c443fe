"""The recall task's configuration: the dataclass whose fields are the `lm.diagnose recall`
flags and `config.json`'s "train" section."""
from dataclasses import dataclass

from lm.config.checks import (JsonConfig, check_bool, check_choice, check_float, check_int,
                              check_schedule, check_size, fixed_on_resume)
from lm.config.choices import CELLS, DTYPES

MAX_SYMBOLS = 26  # symbols are the letters A..Z, the noise tokens a..z


@dataclass
class RecallConfig(JsonConfig):
    """The `recall` flags; config.json's "train" section."""
    # --- task ---
    length: int = 20               # distance: noise steps between the symbol to recall and the loss
    symbols: int = 8               # symbols that may have to be recalled (chance = 1 / symbols)
    val_size: int = 1000           # held-out sequences scored at every evaluation
    # --- model ---
    cell: str = "lstm"             # recurrent cell: lstm, gru or rnn (vanilla tanh)
    embed_size: int = 16           # token embedding width
    hidden_size: int = 32          # recurrent state width
    num_layers: int = 1            # stacked recurrent layers
    forget_bias: float = 1.0       # LSTM forget-gate bias at initialisation (Keras's 1; PyTorch's 0)
    # --- optimisation ---
    batch_size: int = 32           # fresh sequences per step
    epoch_steps: int = 250         # steps per epoch (every batch is new: an epoch is a schedule unit)
    max_epochs: float = 8.0        # stop after this many epochs
    max_steps: int = 0             # stop after this many steps (0 = no limit)
    time_budget: float = 0.0       # stop after this many seconds of training (0 = none)
    learning_rate: float = 1e-2    # Adam step size
    grad_clip: float = 5.0         # clip the global gradient norm to this (0 = off)
    lr_decay: float = 1.0          # multiply the lr by this when validation stalls (1 = never)
    patience: int = 1              # evaluations without improvement before lowering the lr
    min_lr: float = 1e-5           # the lr is never lowered below this
    eval_every: int = 0            # evaluate and save every this many steps (0 = after each epoch)
    log_every: int = 10            # log the training loss to metrics.jsonl every this many steps (0 = off)
    seed: int = 0                  # seeds the data, the initialisation and the held-out set
    # --- run directory ---
    out_dir: str = ""              # run directory (default checkpoints/recall-<cell>-<length>)
    resume: bool = False           # continue the run in --out_dir exactly where it stopped
    dtype: str = "float32"         # parameter dtype (float64 for exact tests)

    def validate(self):
        """Range-check every field (ValueError naming the flag); returns self."""
        c = self
        c.length = check_int("length", c.length, 1, 100000)
        c.symbols = check_int("symbols", c.symbols, 2, MAX_SYMBOLS)
        c.val_size = check_int("val_size", c.val_size, 1, 10**6)
        c.cell = check_choice("cell", c.cell, CELLS)
        c.dtype = check_choice("dtype", c.dtype, DTYPES)
        c.resume = check_bool("resume", c.resume)
        c.embed_size = check_size("embed_size", c.embed_size)
        c.hidden_size = check_size("hidden_size", c.hidden_size)
        c.num_layers = check_size("num_layers", c.num_layers)
        c.forget_bias = check_float("forget_bias", c.forget_bias, -20, 20)
        c.batch_size = check_int("batch_size", c.batch_size, 1, 100000)
        c.epoch_steps = check_int("epoch_steps", c.epoch_steps, 1, 10**9)
        check_schedule(c)
        c.seed = check_int("seed", c.seed, 0, 2**63 - 1)
        c.out_dir = "" if c.out_dir is None else str(c.out_dir)
        return c


# What a resumed recall run keeps: all but the budgets and the schedule.
FIXED_ON_RESUME = fixed_on_resume(RecallConfig)
