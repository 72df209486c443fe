"""Sequence-to-sequence CLI: `python -m lm.seq2seq train|predict|evaluate`.

    python -m lm.seq2seq train --task addition --digits 3      (the adder: "231+432" -> " 663")
    python -m lm.seq2seq train pairs.tsv                         (any source<TAB>target file)
    python -m lm.seq2seq predict --checkpoint RUN_DIR "231+432"  (or one question per stdin line)
    python -m lm.seq2seq evaluate --checkpoint RUN_DIR [FILE]    (default: the held-out pairs)
"""
import os
import shlex
import sys

if __name__ == "__main__":  # before numpy loads OpenBLAS: with these small matrices one
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # thread is faster than several

from lm.cli import (EXIT_INTERRUPTED, CliError, check_str, config_command,  # noqa: E402
                    given_flags, raw_positionals, raw_texts, run_commands)
from lm.config.checks import check_int  # noqa: E402
from lm.config.seq2seq import Seq2SeqConfig  # noqa: E402

TRAIN_SUMMARY = """Train a sequence-to-sequence model: the adder (--task addition) or a pairs file.

Evaluates after each epoch (or every --eval_every steps): held-out exact-match and
per-character accuracy of the greedy answers. Stops at --target_acc, --time_budget or
--max_epochs, whichever comes first; keeps the best in RUN_DIR/best.safetensors and writes
config.json, vocab.json, metrics.jsonl, last.safetensors and curves.png. Ctrl-C saves the
last checkpoint; `--resume --out_dir RUN_DIR` continues exactly.
DATA: source<TAB>target lines (then --task is pairs)."""

STOPS = {"max_epochs": "reached --max_epochs", "max_steps": "reached --max_steps",
         "time_budget": "time budget used", "target": "reached --target_acc",
         "interrupted": "interrupted"}


def run_train(values):
    """Check the flags, train, report (lm.training.seq2seq_task does the work)."""
    from lm.storage.checkpoint import checkpoint_path
    from lm.training.seq2seq_task import train as train_seq2seq
    from lm.training.trainer import TrainingDiverged

    argv = _CLI_ARGV or []
    raw_texts(values, ("data", "out_dir"), argv)
    if values["data"] and "data" not in given_flags({"data"}, argv):
        values["data"] = (_raw_positionals(1) or [values["data"]])[0]
    given = given_flags(set(values), argv) | ({"data"} if values["data"] else set())
    cfg = Seq2SeqConfig(**values).validate()
    if cfg.resume and cfg.data:
        raise ValueError("--resume takes no data file: the run knows its data "
                         "(python -m lm.seq2seq train --resume --out_dir RUN_DIR)")
    if cfg.data and "task" in given and values["task"] != "pairs":
        raise ValueError(f"--task {values['task']} takes no data file; a DATA file is "
                         f"--task pairs")
    try:
        result, best = train_seq2seq(cfg, given)
    except TrainingDiverged as e:
        raise CliError(str(e), code=1) from None
    run = shlex.quote(result.run_dir)
    if best is not None:
        print(f"best epoch {best['epoch']:g} (step {best['step']:,}): held-out exact match "
              f"{100 * best['val_acc']:.2f}%, characters {100 * best['val_char_acc']:.2f}%; "
              f"{best['elapsed']:.1f}s of training")
        print(f"saved {checkpoint_path(result.run_dir, 'best')}")
    print(f"stopped at step {result.step:,}: {STOPS[result.reason]}; saved "
          f"{checkpoint_path(result.run_dir, 'last')}")
    print(f"predict  python -m lm.seq2seq predict --checkpoint {run} \"231+432\""
          if cfg.task == "addition" else
          f"predict  python -m lm.seq2seq predict --checkpoint {run} \"some source\"")
    print(f"evaluate python -m lm.seq2seq evaluate --checkpoint {run}")
    print(f"resume   python -m lm.seq2seq train --resume --out_dir {run}")
    sys.stdout.flush()
    if result.reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


train = config_command(Seq2SeqConfig, run_train, TRAIN_SUMMARY, positional=("data",))


_CLI_ARGV = None  # the command line, when run as `python -m lm.seq2seq` (see main)
_SWITCHES = {"bidirectional", "reverse", "feed_state", "resume", "nobidirectional",
             "noreverse", "nofeed_state", "noresume"}


def _raw_positionals(count):
    """The first `count` (0: all) positional arguments after the command, exactly as typed;
    None when not run from the command line."""
    return None if _CLI_ARGV is None else raw_positionals(_CLI_ARGV[1:], _SWITCHES, count)


def _checkpoint(checkpoint):
    if checkpoint is None:
        raise ValueError("give the run directory: --checkpoint RUN_DIR (from "
                         "`python -m lm.seq2seq train`)")
    return check_str("checkpoint", checkpoint)


def _sources(texts, config):
    """The model's sources for what a user typed: addition questions padded, others as is."""
    from lm.data.pairs import format_question

    data = config["data"]
    if data["task"] == "addition":
        return [format_question(t, data["digits"]) for t in texts]
    return list(texts)


def predict(*questions, checkpoint=None, top_k=1, seed=0, batch_size=256):
    """Print each question and the model's answer (questions as arguments or stdin lines).

    Args:
      questions: e.g. "231+432" (no padding, never reversed); none: one per stdin line
      checkpoint: seq2seq run directory (from `python -m lm.seq2seq train`)
      top_k: 1 = greedy; K > 1 samples each character from the K most likely
      seed: seeds the sampling (top_k > 1)
      batch_size: questions per forward pass
    """
    import numpy as np

    from lm.data.pairs import encode_pairs
    from lm.data.batch import pad_batch
    from lm.models.load import load_seq2seq
    from lm.training.evaluation import decode_targets

    model, vocab, config = load_seq2seq(_checkpoint(checkpoint))
    top_k = check_int("top_k", top_k, 1, len(vocab))
    seed = check_int("seed", seed, 0, 2**63 - 1)
    batch_size = check_int("batch_size", batch_size, 1, 100000)
    if questions:
        texts = _raw_positionals(0) or [str(q) for q in questions]
    else:
        texts = [line.rstrip("\n").rstrip("\r") for line in sys.stdin]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("no question to answer: give questions as arguments or lines on stdin")
    sources = _sources(texts, config)
    data = encode_pairs([(s, "") for s in sources], vocab)
    rng = np.random.default_rng(seed)
    addition = config["data"]["task"] == "addition"
    for a in range(0, len(texts), batch_size):
        ids, mask = pad_batch(data.src_ids[a:a + batch_size])
        answers = decode_targets(model.generate(ids, mask, top_k=top_k, rng=rng), vocab)
        for text, answer in zip(texts[a:a + batch_size], answers):
            print(f"{text.strip()}  {answer.strip()}" if addition else f"{text}\t{answer}")


def evaluate(file=None, checkpoint=None, batch_size=256, max_errors=10):
    """Exact-match and per-character accuracy, and some wrong answers.

    Args:
      file: a source<TAB>target file (addition: "231+432<TAB>663" lines); none: the run's
        own held-out pairs
      checkpoint: seq2seq run directory
      batch_size: pairs per forward pass
      max_errors: wrong answers to print (0 = all)
    """
    from lm.config.seq2seq import Seq2SeqConfig
    from lm.data.pairs import encode_pairs, split_pairs
    from lm.models.load import load_seq2seq
    from lm.text.pairs import read_pairs
    from lm.training.evaluation import evaluate_seq2seq
    from lm.training.seq2seq_task import load_pairs

    run_dir = _checkpoint(checkpoint)
    model, vocab, config = load_seq2seq(run_dir)
    batch_size = check_int("batch_size", batch_size, 1, 100000)
    max_errors = check_int("max_errors", max_errors, 0)
    cfg = Seq2SeqConfig.from_dict(config.get("train", {}), os.path.join(run_dir, "config.json"))
    if file is None:
        path = config["data"].get("path")
        if cfg.task == "pairs" and isinstance(path, str) and os.path.isfile(path):
            cfg.data = path
        pairs = load_pairs(cfg)
        _, held = split_pairs([s for s, _ in pairs], cfg.val_frac, cfg.seed)
        pairs, label = [pairs[i] for i in held], "held-out pairs"
        if not pairs:
            raise ValueError(f"{run_dir} was trained with --val_frac 0: give a pairs file")
    else:
        file = (_raw_positionals(1) or [str(file)])[0]
        pairs, label = read_pairs(file, cfg.encoding, cfg.encoding_errors), file
        if cfg.task == "addition":
            width = cfg.digits + 1
            pairs = [(s, t.strip().rjust(width)) for s, t in zip(_sources(
                [s for s, _ in pairs], config), [t for _, t in pairs])]
    data = encode_pairs(pairs, vocab)
    ev = evaluate_seq2seq(model, data, vocab, batch_size)
    right = round(ev["acc"] * len(data))
    print(f"{label}: {len(data):,} pairs, exact match {100 * ev['acc']:.2f}% "
          f"({right:,}/{len(data):,}), characters {100 * ev['char_acc']:.2f}%, "
          f"loss {ev['loss']:.4f}")
    wrong = [i for i, (p, t) in enumerate(zip(ev["pred"], data.targets)) if p != t]
    if wrong:
        shown = wrong if not max_errors else wrong[:max_errors]
        print(f"wrong answers ({len(wrong):,}):")
        for i in shown:
            print(f"  {data.sources[i].strip()!s}  expected {data.targets[i].strip()!r}, "
                  f"got {ev['pred'][i].strip()!r}")
        if len(shown) < len(wrong):
            print(f"  ... and {len(wrong) - len(shown):,} more (--max_errors 0 shows all)")


COMMANDS = {"train": train, "predict": predict, "evaluate": evaluate}

USAGE = """usage: python -m lm.seq2seq COMMAND [ARGS] [--FLAGS]   (COMMAND --help for its flags)

  train [DATA] [--task addition --digits 3] ...   train the adder, or on source<TAB>target pairs
  predict --checkpoint RUN_DIR "231+432" ...        the answer to each question
  evaluate --checkpoint RUN_DIR [FILE]              exact-match and character accuracy, errors"""


def main(argv=None):
    """Run the CLI on `argv` (default sys.argv[1:]): the first word picks the command."""
    global _CLI_ARGV
    _CLI_ARGV = list(sys.argv[1:] if argv is None else argv)
    run_commands(COMMANDS, USAGE, _CLI_ARGV, hint=" (python -m lm.seq2seq --help)")


if __name__ == "__main__":
    main()
