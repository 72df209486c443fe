"""Train a recurrent language model: `python -m lm.train [CORPUS] [flags]`.

The flags are lm.config.training.TrainConfig's fields (their comments are the --help text).
"""
import sys

if __name__ == "__main__":  # BLAS threads must be chosen before anything imports numpy
    from lm.cli import apply_threads
    THREADS_LINE = apply_threads(sys.argv[1:])

import math  # noqa: E402
import shlex  # noqa: E402

from lm.cli import (EXIT_INTERRUPTED, CliError, config_command, given_flags,  # noqa: E402
                    raw_flag, run_cli)
from lm.config.training import ADAPTIVE_ABOVE, TrainConfig, level_defaults_help  # noqa: E402

SUMMARY = """Train a character- or word-level recurrent language model on a text file.

Saves a self-contained run directory (config.json, vocab.json, best.safetensors,
last.safetensors, metrics.jsonl, curves.png). Ctrl-C saves the last checkpoint and prints
how to resume. CORPUS is a
text file or a corpus name: pydoc (the default, on every machine), tinyshakespeare, names.

Defaults that depend on --level, then on --optimizer (a flag given keeps its value;
config.json records the values used); with --softmax auto a vocabulary above """ + f"{ADAPTIVE_ABOVE:,}" + """ tokens gets the
adaptive softmax, untied:
""" + level_defaults_help()
THREADS = ("threads", "auto", "BLAS threads: auto (1 when the machine is already busy, "
           "else all CPUs) or N")


def run(values):
    """Check the flags, train, report; the library does the work (lm.training.lm_task)."""
    from lm.cli import choose_threads
    from lm.training.lm_task import train
    from lm.training.trainer import TrainingDiverged

    threads = values.pop("threads")
    choose_threads(raw_flag("threads") or threads)  # a range check: the count was set at start-up
    corpus = values["corpus"]
    values["corpus"] = raw_flag("corpus") or ("pydoc" if corpus is None else str(corpus))
    for name in ("out_dir", "init_from"):  # paths as typed (fire turns "1e3" into 1000.0)
        values[name] = "" if values[name] is None else (raw_flag(name) or str(values[name]))
    given = given_flags(set(values))
    if corpus is not None:
        given.add("corpus")
    cfg = TrainConfig(**values)
    if globals().get("THREADS_LINE"):
        print(THREADS_LINE, flush=True)
    try:
        result = train(cfg, given=given)
    except TrainingDiverged as e:
        raise CliError(str(e), code=1) from None
    report(result)
    if result.reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


main = config_command(TrainConfig, run, SUMMARY, positional=("corpus",),
                      extra=(THREADS,))


def report(r):
    """Where the run stopped, its best checkpoint, and the commands to go on."""
    why = {"max_epochs": "reached --max_epochs", "max_steps": "reached --max_steps",
           "time_budget": "time budget used", "interrupted": "interrupted"}[r.reason]
    run_dir = shlex.quote(r.run_dir)
    from lm.storage.checkpoint import checkpoint_path

    print(f"stopped at step {r.step:,}: {why}; saved {checkpoint_path(r.run_dir, 'last')}")
    if math.isfinite(r.best_val):
        print(f"best    {checkpoint_path(r.run_dir, 'best')}: validation loss {r.best_val:.4f} "
              f"at step {r.best_step:,}")
    print(f"resume  python -m lm.train --resume --out_dir {run_dir}")
    print(f"sample  python -m lm.sample --checkpoint {run_dir}")
    sys.stdout.flush()


if __name__ == "__main__":
    run_cli(main)
