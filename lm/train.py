"""Train a recurrent language model: `python -m lm.train [CORPUS] [flags]`."""
import sys

if __name__ == "__main__":  # BLAS threads must be chosen before anything imports numpy
    from lm.cli import apply_threads
    THREADS_LINE = apply_threads(sys.argv[1:])

import dataclasses  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402

from lm.cli import EXIT_INTERRUPTED, given_flags, raw_flag, run_cli  # noqa: E402
from lm.config.training import TrainConfig

_D = TrainConfig()
FLAGS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def main(corpus=None, level=_D.level, cell=_D.cell, embed_size=_D.embed_size,
         hidden_size=_D.hidden_size, num_layers=_D.num_layers, dropout=_D.dropout,
         tie_weights=_D.tie_weights, seq_length=_D.seq_length, batch_size=_D.batch_size,
         learning_rate=_D.learning_rate, optimizer=_D.optimizer, momentum=_D.momentum,
         weight_decay=_D.weight_decay, grad_clip=_D.grad_clip, lr_decay=_D.lr_decay,
         patience=_D.patience, min_lr=_D.min_lr, max_epochs=_D.max_epochs,
         max_steps=_D.max_steps, time_budget=_D.time_budget, eval_every=_D.eval_every,
         eval_tokens=_D.eval_tokens, sample_length=_D.sample_length, val_frac=_D.val_frac,
         shuffle_lines=_D.shuffle_lines,
         seed=_D.seed, out_dir=None, resume=False, init_from=None, line_mode=_D.line_mode,
         lowercase=_D.lowercase, min_count=_D.min_count, max_vocab=_D.max_vocab,
         encoding=_D.encoding, encoding_errors=_D.encoding_errors, dtype=_D.dtype,
         threads="auto"):
    """Train a character- or word-level recurrent language model on a text file.

    Saves a self-contained run directory (config.json, vocab.json, best.npz, last.npz,
    metrics.jsonl, curves.png). Ctrl-C saves last.npz and prints how to resume.

    Args:
      corpus: text file, or a corpus name: pydoc (default, no download), tinyshakespeare, names
      level: char (Unicode code points) or word (words, numbers, punctuation, spaces)
      cell: recurrent cell: lstm, gru or rnn (vanilla tanh RNN)
      embed_size: token embedding width
      hidden_size: recurrent state width
      num_layers: stacked recurrent layers
      dropout: dropout on embeddings, between layers and before the output layer
      tie_weights: share the embedding and output matrices (needs embed_size == hidden_size)
      seq_length: BPTT window: tokens per stream per step (gradients stop at its edge)
      batch_size: parallel streams (lines in --line_mode) per step
      learning_rate: initial learning rate
      optimizer: adam or sgd (with --momentum)
      momentum: SGD momentum
      weight_decay: L2 penalty
      grad_clip: clip the global gradient norm to this (0 = off)
      lr_decay: multiply the learning rate by this when validation loss stalls
      patience: evaluations without improvement tolerated before lowering the lr
      min_lr: the learning rate is never lowered below this
      max_epochs: stop after this many passes over the training text
      max_steps: stop after this many steps (0 = no limit)
      time_budget: stop after this many seconds of training, then evaluate and save (0 = none)
      eval_every: evaluate, save, log and sample every this many steps
      eval_tokens: validation tokens per evaluation (0 = the whole validation split)
      sample_length: tokens of the sample printed after each evaluation (0 = none)
      val_frac: the last fraction of the text (or lines) is the validation split
      shuffle_lines: in --line_mode, shuffle the lines with --seed before the split (--noshuffle_lines: file order)
      seed: random seed (initialisation, dropout, line order)
      out_dir: run directory (default checkpoints/<corpus>-<level>-<cell>)
      resume: continue the run in --out_dir exactly where it stopped
      init_from: start from another run's weights and vocabulary
      line_mode: each line is one sample (names, titles): framed, padded, masked
      lowercase: lowercase the text first
      min_count: tokens seen fewer times become <unk>
      max_vocab: keep at most this many tokens, specials included (0 = no limit)
      encoding: text encoding of the corpus (utf-8, latin-1, utf-16, ...)
      encoding_errors: strict (fail with the byte offset) or replace (U+FFFD)
      threads: BLAS threads: auto (1 when the machine is already busy, else all CPUs) or N
    """
    from lm.cli import choose_threads as choose
    from lm.training.trainer import train

    choose(raw_flag("threads") or threads)  # range check; the count was set at start-up
    values = dict(locals())
    values.pop("train")
    values.pop("choose")
    values["corpus"] = raw_flag("corpus") or ("pydoc" if corpus is None else str(corpus))
    for name in ("out_dir", "init_from"):
        values[name] = "" if values[name] is None else (raw_flag(name) or str(values[name]))
    given = given_flags(set(FLAGS))
    if corpus is not None:
        given.add("corpus")
    cfg = TrainConfig(**{k: v for k, v in values.items() if k in FLAGS})
    if globals().get("THREADS_LINE"):
        print(THREADS_LINE, flush=True)
    result = train(cfg, given=given)
    report(result)
    if result.reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


def report(r):
    """Where the run stopped, its best checkpoint, and the commands to go on."""
    why = {"max_epochs": "reached --max_epochs", "max_steps": "reached --max_steps",
           "time_budget": "time budget used", "interrupted": "interrupted"}[r.reason]
    run = shlex.quote(r.run_dir)
    print(f"stopped at step {r.step:,}: {why}; saved {r.run_dir}/last.npz")
    if math.isfinite(r.best_val):
        print(f"best    {r.run_dir}/best.npz: validation loss {r.best_val:.4f} "
              f"at step {r.best_step:,}")
    print(f"resume  python -m lm.train --resume --out_dir {run}")
    print(f"sample  python -m lm.sample --checkpoint {run}")
    sys.stdout.flush()


if __name__ == "__main__":
    run_cli(main)
