"""Sentiment classification CLI: `python -m lm.sentiment train|predict|evaluate`.

    python -m lm.sentiment train DATA [--test FILE] [--cell lstm] [...]
    python -m lm.sentiment predict --checkpoint RUN_DIR "some text" ...   (or lines on stdin)
    python -m lm.sentiment evaluate --checkpoint RUN_DIR FILE
"""
import os
import sys

if __name__ == "__main__":  # before numpy loads OpenBLAS: with these small matrices one
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # thread is ~4x faster than several

import numpy as np  # noqa: E402

from lm.cli import (EXIT_INTERRUPTED, CliError, check_str, config_command,  # noqa: E402
                    given_flags, raw_positionals, raw_texts, run_commands)
from lm.config.checks import check_int  # noqa: E402
from lm.config.sentiment import SentimentConfig  # noqa: E402
# fixed by the --init_from language model (its weights and vocabulary)
LM_FIXED = ("cell", "embed_size", "hidden_size", "num_layers", "level", "lowercase")


TRAIN_SUMMARY = """Train a sentiment classifier; prints train/validation/test loss and accuracy.

Evaluates after each epoch (or every --eval_every steps), keeps the best validation
accuracy in RUN_DIR/best.safetensors and writes config.json, vocab.json, metrics.jsonl,
last.safetensors and curves.png. Ctrl-C saves the last checkpoint; `--resume --out_dir RUN_DIR` continues exactly
(no data file needed: the run knows its data; --max_epochs/--time_budget may be given anew).
DATA: label<TAB>text lines (labels 0/1 or names; CSV-quoted fields allowed)."""


def run_train(values):
    """Check the flags, train, report (lm.training.classifier_task does the work)."""
    from lm.storage.checkpoint import checkpoint_path
    from lm.training.classifier_task import train as train_classifier
    from lm.training.trainer import TrainingDiverged

    argv = _CLI_ARGV or []
    raw_texts(values, ("data", "neg", "test", "init_from", "out_dir"), argv)
    if values["data"] and "data" not in given_flags({"data"}, argv):
        values["data"] = (_raw_positionals(1) or [values["data"]])[0]
    given = given_flags(set(values), argv) | ({"data"} if values["data"] else set())
    cfg = SentimentConfig(**values).validate()
    if cfg.resume and cfg.data:
        raise ValueError("--resume takes no data file: the run knows its data "
                         "(python -m lm.sentiment train --resume --out_dir RUN_DIR)")
    if cfg.init_from and not cfg.resume:
        _check_lm_flags(cfg, given & set(LM_FIXED))
    try:
        result, best = train_classifier(cfg, given)
    except TrainingDiverged as e:
        raise CliError(str(e), code=1) from None
    run = result.run_dir
    if best is not None:
        test_part = "" if best.get("test_acc") is None else \
            f", test accuracy {_pct(best['test_acc'])}"
        print(f"best epoch {best['epoch']:g} (step {best['step']}): validation accuracy "
              f"{_pct(best['val_acc'])}{test_part}; {best['elapsed']:.1f}s of training")
        print(f"saved {checkpoint_path(run, 'best')}")
    print(f"stopped at step {result.step:,}: {result.reason.replace('_', ' ')}; "
          f"saved {checkpoint_path(run, 'last')}")
    print(f"predict  python -m lm.sentiment predict --checkpoint {run} \"some text\"")
    print(f"resume   python -m lm.sentiment train --resume --out_dir {run}")
    sys.stdout.flush()
    if result.reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


train = config_command(SentimentConfig, run_train, TRAIN_SUMMARY, positional=("data",))


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _check_lm_flags(cfg, given):
    """Flags that the --init_from language model fixes may not ask for something else."""
    from lm.models.load import load_lm_encoder

    lm_model, vocab, _ = load_lm_encoder(cfg.init_from)
    have = dict(lm_model, level=vocab.level, lowercase=vocab.lowercase)
    for name in sorted(given):
        if getattr(cfg, name) != have.get(name, getattr(cfg, name)):
            raise ValueError(f"--{name} {getattr(cfg, name)} differs from the --init_from "
                             f"language model's {have[name]}; its weights fix it")


_CLI_ARGV = None  # the command line, when run as `python -m lm.sentiment` (see main)


def _raw_positionals(count):
    """The first `count` (0: all) positional arguments after the command, exactly as typed;
    None when not run from the command line."""
    return None if _CLI_ARGV is None else raw_positionals(_CLI_ARGV[1:], _SWITCHES, count)


_SWITCHES = {"lowercase", "bidirectional", "freeze_encoder", "resume", "nolowercase",
             "nobidirectional", "nofreeze_encoder", "noresume"}


# predict's bound on one text: its first MAX_TEXT_CHARS characters are read (the rest of
# a longer stdin line is skipped unread into memory), its first MAX_TEXT_TOKENS tokens used
MAX_TEXT_CHARS = 100_000
MAX_TEXT_TOKENS = 10_000


def stdin_lines(stream, limit):
    """The lines of `stream` without their newline, each cut to `limit` characters; the
    rest of a longer line is read in chunks and dropped, so memory stays bounded."""
    out = []
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return out
        if len(line) > limit and not line.endswith("\n"):
            while True:  # skip the rest of this line
                more = stream.readline(1 << 16)
                if not more or more.endswith("\n"):
                    break
        out.append(line.rstrip("\n")[:limit])


def predict(*texts, checkpoint=None, batch_size=64):
    """Print the predicted label and its probability for each text (or each stdin line).

    Args:
      texts: the texts to classify; none: read one text per line from stdin
      checkpoint: sentiment run directory (from `python -m lm.sentiment train`)
      batch_size: texts per forward pass
    """
    from lm.data.labeled import LabeledIds, encode_texts
    from lm.models.load import check_run_memory, load_classifier
    from lm.training.evaluation import evaluate_classifier as evaluate

    run = _checkpoint(checkpoint)
    batch_size = check_int("batch_size", batch_size, 1, 100000)
    model, vocab, config = load_classifier(run)
    if texts:
        texts = [t[:MAX_TEXT_CHARS] for t in (_raw_positionals(0) or [str(t) for t in texts])]
    else:
        texts = stdin_lines(sys.stdin, MAX_TEXT_CHARS)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("no text to classify: give texts as arguments or lines on stdin")
    ids = encode_texts(texts, vocab, config["data"]["drop_spaces"])
    for k, x in enumerate(ids):
        if len(x) > MAX_TEXT_TOKENS or len(texts[k]) >= MAX_TEXT_CHARS:
            print(f"warning: text {k + 1} is long: classified on its first "
                  f"{min(len(x), MAX_TEXT_TOKENS):,} tokens", file=sys.stderr)
            ids[k] = x[:MAX_TEXT_TOKENS]
    check_run_memory(run, min(batch_size, len(ids)), max(len(x) for x in ids))
    data = LabeledIds(texts, ids, np.zeros(len(texts), dtype=np.int64))
    probs = evaluate(model, data, batch_size)["probs"]
    classes = config["data"]["classes"]
    for text, p in zip(texts, probs):
        k = int(p.argmax())
        print(f"{classes[k]}\t{p[k]:.3f}\t{text}")


def evaluate(file=None, *, checkpoint=None, batch_size=64, max_errors=20):
    """Accuracy, confusion matrix and misclassified examples of a labelled file.

    Args:
      file: label<TAB>text file (same labels as the training data)
      checkpoint: sentiment run directory
      batch_size: texts per forward pass
      max_errors: misclassified examples to print (0 = all)
    """
    from lm.data.labeled import class_index, read_examples, subset
    from lm.models.load import check_run_memory, load_classifier
    from lm.training.evaluation import evaluate_classifier as run_eval

    if file is None:
        raise ValueError("give a labelled file: python -m lm.sentiment evaluate "
                         "--checkpoint RUN_DIR FILE")
    model, vocab, config = load_classifier(_checkpoint(checkpoint))
    batch_size = check_int("batch_size", batch_size, 1, 100000)
    max_errors = check_int("max_errors", max_errors, 0)
    file = (_raw_positionals(1) or [str(file)])[0]
    train_cfg = config.get("train", {})
    raw = read_examples(file, None, train_cfg.get("encoding", "utf-8"),
                        train_cfg.get("encoding_errors", "strict"), min_classes=1)
    classes = config["data"]["classes"]
    data = subset(raw.texts, class_index(raw, classes, file), np.arange(len(raw)), vocab,
                  config["data"]["drop_spaces"])
    check_run_memory(_checkpoint(checkpoint), min(batch_size, len(data)),
                     int(data.lengths.max()))
    ev = run_eval(model, data, batch_size)
    print(f"{file}: {len(data)} examples, accuracy {100 * ev['acc']:.2f}% "
          f"({int((ev['pred'] == data.labels).sum())}/{len(data)}), loss {ev['loss']:.4f}")
    print(format_confusion(data.labels, ev["pred"], classes))
    wrong = np.flatnonzero(ev["pred"] != data.labels)
    if len(wrong):
        shown = wrong if not max_errors else wrong[:max_errors]
        print(f"misclassified ({len(wrong)}):")
        for i in shown:
            k = ev["pred"][i]
            print(f"  true {classes[data.labels[i]]}, predicted {classes[k]} "
                  f"({ev['probs'][i, k]:.3f}): {data.texts[i]}")
        if len(shown) < len(wrong):
            print(f"  ... and {len(wrong) - len(shown)} more (--max_errors 0 shows all)")


def format_confusion(y_true, y_pred, classes):
    """A text confusion matrix: rows are the true classes, columns the predicted ones."""
    C = len(classes)
    m = np.zeros((C, C), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    width = max(8, *(len(c) for c in classes)) + 2
    lines = ["confusion matrix (rows: true, columns: predicted)",
             " " * width + "".join(f"{c:>{width}}" for c in classes)]
    for i, c in enumerate(classes):
        lines.append(f"{c:>{width}}" + "".join(f"{v:>{width}d}" for v in m[i]))
    return "\n".join(lines)


def _checkpoint(checkpoint):
    if checkpoint is None:
        raise ValueError("give the run directory: --checkpoint RUN_DIR (from "
                         "`python -m lm.sentiment train`)")
    return check_str("checkpoint", checkpoint)


COMMANDS = {"train": train, "predict": predict, "evaluate": evaluate}


USAGE = """usage: python -m lm.sentiment COMMAND [ARGS] [--FLAGS]   (COMMAND --help for its flags)

  train DATA [--test FILE] [--cell lstm|cnn|...] ...       train a classifier
  predict --checkpoint RUN_DIR "text" ...                  label and probability per text
  evaluate --checkpoint RUN_DIR FILE                        accuracy, confusion, errors"""


def main(argv=None):
    """Run the CLI on `argv` (default sys.argv[1:]): the first word picks the command."""
    global _CLI_ARGV
    _CLI_ARGV = list(sys.argv[1:] if argv is None else argv)
    run_commands(COMMANDS, USAGE, _CLI_ARGV, hint=f"\n{USAGE}")


if __name__ == "__main__":
    main()
