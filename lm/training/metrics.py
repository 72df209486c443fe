"""Loss units (nats, bits per token, perplexity) and reading a run's metrics.jsonl."""
import io
import json
import math
import os

import numpy as np

LN2 = math.log(2.0)


def bits_per_token(nats):
    """Mean negative log-likelihood in bits: nats / ln 2 (bits per character at char level)."""
    return nats / LN2


def bits_per_char(nats_per_token, num_tokens, num_chars):
    """Bits per character of a text of `num_tokens` tokens and `num_chars` characters whose
    tokens cost `nats_per_token` on average: the total loss in bits over the characters,
    nats * tokens / ln 2 / chars. The figure that compares char and word models; at char
    level (a token per character) it is the loss per token in bits."""
    return nats_per_token * num_tokens / LN2 / max(1, num_chars)


def perplexity(nats):
    """exp(nats), capped so that a diverged loss prints as a large number, not an overflow."""
    return math.exp(min(nats, 700.0))


def unigram_entropy(ids):
    """Entropy in nats of the token frequencies of `ids`: the loss of a model with no context."""
    counts = np.bincount(np.asarray(ids).ravel().astype(np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def read_metrics(run_dir):
    """The evaluations logged in `run_dir/metrics.jsonl`, oldest first.

    A truncated or garbled line (a run killed while appending), or a row whose values
    have the wrong types (see `well_typed`), is skipped, not fatal.
    Raises FileNotFoundError if the run has no metrics file.
    """
    path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.isdir(run_dir) is False:
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl (no evaluation logged yet)")
    from lm.storage.safe_zip import open_regular_file  # a FIFO must not block the reader

    rows = []
    raw, _ = open_regular_file(path, "metrics file")
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if well_typed(row):
                rows.append(row)
    return rows


def best_row(run_dir, step):
    """The evaluation logged at `step` (a TrainResult's best_step) with a val_acc; None
    if there is none. The last one wins (a resumed run may log a step again)."""
    rows = [r for r in read_metrics(run_dir) if r.get("step") == step and "val_acc" in r]
    return rows[-1] if rows else None


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def well_typed(row):
    """Whether `row` is a metrics row as the trainer writes it: an object with an integer
    `step` >= 0, `final` true/false if present, and every other value a finite number or
    null (a string, list or NaN where a figure belongs makes the row garbled)."""
    if not isinstance(row, dict):
        return False
    step = row.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return False
    return all(isinstance(v, bool) if k == "final" else (v is None or _number(v))
               for k, v in row.items())


def format_eval_line(m, is_best, level):
    """One line per evaluation: step, epoch, losses, ppl or bpc, tokens/s, lr, elapsed, best."""
    unit = f"val bpc {m['val_bpc']:.3f}" if level == "char" else f"val ppl {m['val_ppl']:.2f}"
    if level != "char" and m.get("val_bpc") is not None:  # the figure that compares levels
        unit += f" | val bpc {m['val_bpc']:.3f}"
    mins, secs = divmod(int(m["elapsed"]), 60)
    train = "   -  " if m.get("train_loss") is None else f"{m['train_loss']:.4f}"
    return (f"step {m['step']:>6d} | epoch {m['epoch']:6.2f} | train {train} | "
            f"val {m['val_loss']:.4f} | {unit} | {m['tok_per_s']:>7.0f} tok/s | "
            f"lr {m['lr']:.2e} | {mins:d}m{secs:02d}s" + (" | best" if is_best else ""))
