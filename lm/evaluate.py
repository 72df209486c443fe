"""Held-out loss of a language model: `python -m lm.evaluate --checkpoint DIR FILE`.

The scoring itself is lm.training.evaluation's `evaluate_loss`, the trainer's validation.
"""
import sys

if __name__ == "__main__":  # BLAS threads must be chosen before numpy loads
    from lm.cli import apply_threads
    apply_threads(sys.argv[1:])

import numpy as np  # noqa: E402


def main(file=None, *, checkpoint=None, which="best", batch_size=32, seq_length=128,
         cache_size=None, encoding="utf-8", encoding_errors="strict", threads="auto"):
    """Loss, perplexity and bits per character of a trained model on a text file.

    Bits per character compare models of any level: the loss of the file's tokens in
    bits, divided by its characters (at character level: the loss per token in bits).

    Args:
      file: the held-out text file to score
      checkpoint: run directory (default: the most recently trained run under checkpoints/)
      which: "best" (best validation loss) or "last" weights
      batch_size: parallel streams (or lines) per forward pass
      seq_length: tokens per window; the hidden state carries across windows
      cache_size: the continuous cache's size instead of the run's (0: the network alone)
      encoding: text encoding of FILE
      encoding_errors: "strict" or "replace" (invalid bytes become U+FFFD)
      threads: BLAS threads: auto (1 when the machine is already busy, else all CPUs) or N
    """
    from lm.cli import check_str
    from lm.config.checks import check_choice, check_int
    from lm.data.batchers import Lines
    from lm.training.evaluation import evaluate_loss
    from lm.training.metrics import bits_per_char, bits_per_token, perplexity
    from lm.storage.run_dir import check_run_dir, checkpoint_name, find_latest_run
    from lm.text.stream import load_corpus
    from lm.models.load import load_language_model as load_run

    if file is None:
        raise ValueError("give the text file to evaluate: python -m lm.evaluate "
                         "--checkpoint DIR FILE")
    from lm.cli import choose_threads as choose
    choose(check_str("threads", threads))  # range check; the count was set at start-up
    file = check_str("file", file)
    which = check_choice("which", which, ("best", "last"))
    batch_size = check_int("batch_size", batch_size, 1, 100000)
    seq_length = check_int("seq_length", seq_length, 1, 100000)
    run_dir = check_run_dir(check_str("checkpoint", checkpoint)) if checkpoint is not None \
        else find_latest_run()
    model, vocab, cfg = load_run(run_dir, which, batch=batch_size, steps=seq_length,
                                 cache_size=cache_size)
    corpus = load_corpus(file, vocab=vocab, line_mode=cfg.line_mode,
                         encoding=str(encoding), errors=str(encoding_errors))
    data = Lines(corpus.ids, corpus.offsets) if cfg.line_mode else corpus.ids
    if not cfg.line_mode and len(data) < 2:
        raise ValueError(f"{file} has fewer than 2 tokens: nothing to predict")
    unk = int(np.count_nonzero(corpus.ids == vocab.unk_id))
    if unk:
        print(f"warning: {unk:,} of {len(corpus.ids):,} tokens are not in the vocabulary "
              f"(scored as <unk>)", file=sys.stderr)
    loss = evaluate_loss(model, data, vocab, batch_size, seq_length)
    print(f"run        {checkpoint_name(run_dir, which)}")
    print(f"file       {file}: {len(corpus.ids):,} {cfg.level} tokens")
    cache = model.cache
    print("cache      " + (f"the last {cache.size:,} tokens of each stream (theta {cache.theta:g}, "
                           f"lambda {cache.lam:g})" if cache is not None else "off"))
    print(f"loss       {loss:.4f} nats per token")
    print(f"perplexity {perplexity(loss):.3f}")
    chars = count_chars(file, str(encoding), str(encoding_errors))
    print(f"bits       {bits_per_char(loss, len(corpus.ids), chars):.4f} per char")
    if cfg.level != "char":
        print(f"           {bits_per_token(loss):.4f} per token, "
              f"{chars / len(corpus.ids):.2f} chars per token")


def count_chars(path, encoding="utf-8", errors="strict"):
    """The number of characters (code points) of a text file, read in chunks."""
    from lm.text.files import iter_text

    return sum(len(chunk) for chunk in iter_text(path, encoding, errors))


if __name__ == "__main__":
    from lm.cli import run_cli
    run_cli(main)
