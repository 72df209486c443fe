"""Why LSTMs: the vanishing gradient, measured. `python -m lm.diagnose gradients|recall`.

    python -m lm.diagnose gradients [--checkpoint RUN_DIR] [--cell rnn,gru,lstm] [--length 50]
    python -m lm.diagnose recall --cell lstm --length 50 [...]
"""
import os
import sys

if __name__ == "__main__":  # before numpy loads OpenBLAS: with these small matrices one
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # thread is fastest

from lm.cli import (EXIT_INTERRUPTED, CliError, check_str, config_command,  # noqa: E402
                    given_flags, raw_texts, run_commands)
from lm.config.recall import RecallConfig  # noqa: E402

DISTANCES = (1, 10, 20, 50, 100, 200)  # the ratios printed, where the batch reaches
MAX_LENGTH = 2000  # gradients --length


def gradients(checkpoint=None, cell="rnn,gru,lstm", length=None, batch_size=32, seed=0,
              forget_bias=1.0, which="best", out=None):
    """Plot the norm of d loss / d h_t against the distance from the loss, per layer.

    With --checkpoint: the run's model on one batch of its own data (language model: the
    loss of the last token of a window of its validation text; classifier: its loss on its
    longest texts; recall run: held-out sequences), drawn into RUN_DIR/gradients.png.
    Without: freshly initialised models of each --cell on the recall task, into
    gradients.png. Prints the figure's path and the norms' ratios by distance.

    Args:
      checkpoint: a run directory (language model, sentiment or recall run); none: fresh models
      cell: fresh models: the cells to compare, comma-separated (rnn, gru, lstm)
      length: steps back from the loss (at most 2000): the recall distance (fresh: 50) or an LM's window
      batch_size: rows averaged over
      seed: fresh models: initialisation and data seed
      forget_bias: fresh LSTMs: forget-gate bias at initialisation (Keras's 1; PyTorch's 0)
      which: with --checkpoint: "best" or "last" weights
      out: the PNG to write (default RUN_DIR/gradients.png, or gradients.png)
    """
    from lm.config.checks import check_choice, check_float, check_int
    from lm.config.choices import CELLS
    from lm.diagnostics.gradients import gradient_norms
    from lm.diagnostics.plots import gradients_png
    from lm.diagnostics.runs import fresh_models, run_batch
    from lm.storage.atomic import write_bytes

    batch_size = check_int("batch_size", batch_size, 1, 100000)
    # a window of T steps costs T extra passes of up to T steps
    length = None if length is None else check_int("length", length, 1, MAX_LENGTH)
    which = check_choice("which", which, ("best", "last"))
    given = given_flags({"cell", "seed", "forget_bias", "which"}, _CLI_ARGV or [])
    wrong = sorted(given - {"which"} if checkpoint is not None else given & {"which"})
    if wrong:
        raise ValueError(f"--{wrong[0]} is for " + ("fresh models; a run has its own"
                         if checkpoint is not None else "a run: give --checkpoint RUN_DIR"))
    if checkpoint is not None:
        run_dir = check_str("checkpoint", checkpoint)
        out = _png_path(out, os.path.join(run_dir, "gradients.png"))
        model, batch, what = run_batch(run_dir, batch_size, length, which)
        curves = [(os.path.basename(os.path.normpath(run_dir)), gradient_norms(model, batch))]
        title = f"{os.path.normpath(run_dir)}: {what}"
    else:
        cells = [check_choice("cell", c.strip(), CELLS)
                 for c in (check_str("cell", cell) or "").split(",") if c.strip()]
        if not cells:
            raise ValueError(f"--cell must name one or more of {', '.join(CELLS)}")
        seed = check_int("seed", seed, 0, 2**63 - 1)
        forget_bias = check_float("forget_bias", forget_bias, -20, 20)
        out = _png_path(out, "gradients.png")
        models, batch, what = fresh_models(cells, 50 if length is None else length, batch_size,
                                           seed, forget_bias)
        curves = [(c, gradient_norms(m, batch)) for c, m in models]
        title = f"freshly initialised models: {what}"
    write_bytes(out, gradients_png(curves, title))
    print(f"wrote {out}")
    print(f"{what}: mean ||d loss / d h_t|| at distance 0 and its ratio at distance k")
    for label, norms in curves:
        for line in ratio_lines(label, norms):
            print(line)


def ratio_lines(label, norms):
    """One line per layer: the norm at distance 0, then norm(k) / norm(0) for DISTANCES."""
    from lm.diagnostics.plots import layer_names

    out = []
    for name in layer_names(norms):
        y = norms[name]
        parts = [f"{label:>12} {name}: {y[0]:.3e} at 0"]
        parts += [f"{y[k] / y[0]:.1e} at {k}" for k in DISTANCES if k < len(y) and y[0] > 0]
        out.append(", ".join(parts))
    return out


def _png_path(out, default):
    """The figure's path: a .png name where nothing but a PNG image is replaced."""
    from lm.training.curves import check_png_target

    path = default if out is None else check_str("out", out)
    if not path.lower().endswith(".png"):
        raise ValueError(f"--out must name a .png file, got {path!r}")
    check_png_target(path)
    return path


RECALL_SUMMARY = """Train a recurrent classifier to recall the first token after --length noise tokens.

Every step draws new sequences; evaluations score a fixed held-out set, keep the best
accuracy in RUN_DIR/best.safetensors and write config.json, vocab.json, metrics.jsonl,
last.safetensors and curves.png. Ctrl-C saves the last checkpoint; `--resume --out_dir
RUN_DIR` continues exactly. Then `python -m lm.diagnose gradients --checkpoint RUN_DIR`."""


def run_recall(values):
    """Check the flags, train, report (lm.diagnostics.recall does the work)."""
    from lm.diagnostics.recall import train
    from lm.storage.checkpoint import checkpoint_path
    from lm.training.trainer import TrainingDiverged

    argv = _CLI_ARGV or []
    raw_texts(values, ("out_dir",), argv)
    given = given_flags(set(values), argv)
    cfg = RecallConfig(**values).validate()
    try:
        result, best = train(cfg, given)
    except TrainingDiverged as e:
        raise CliError(str(e), code=1) from None
    run = result.run_dir
    if best is not None:
        print(f"best held-out accuracy {100 * best['val_acc']:.1f}% at step {best['step']} "
              f"(chance {100 / cfg.symbols:.1f}%); {best['elapsed']:.1f}s of training")
        print(f"saved {checkpoint_path(run, 'best')}")
    print(f"stopped at step {result.step:,}: {result.reason.replace('_', ' ')}; "
          f"saved {checkpoint_path(run, 'last')}")
    print(f"gradients python -m lm.diagnose gradients --checkpoint {run}")
    print(f"resume    python -m lm.diagnose recall --resume --out_dir {run}")
    sys.stdout.flush()
    if result.reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


recall = config_command(RecallConfig, run_recall, RECALL_SUMMARY)
COMMANDS = {"gradients": gradients, "recall": recall}
_CLI_ARGV = None  # the command line after the command word (see main)

USAGE = """usage: python -m lm.diagnose COMMAND [--FLAGS]   (COMMAND --help for its flags)

  gradients [--checkpoint RUN_DIR] [--cell rnn,gru,lstm] [--length N]   ||d loss / d h_t|| by distance
  recall --cell lstm --length 50 ...                                    train on the recall task"""


def main(argv=None):
    """Run the CLI on `argv` (default sys.argv[1:]): the first word picks the command."""
    global _CLI_ARGV
    argv = list(sys.argv[1:] if argv is None else argv)
    _CLI_ARGV = argv[1:]
    run_commands(COMMANDS, USAGE, argv, hint=" (python -m lm.diagnose --help)")


if __name__ == "__main__":
    main()
