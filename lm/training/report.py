"""What a training run reports: the banner, samples, curves.png, and metrics on resume."""
import json
import os

import numpy as np

from lm.storage.checkpoint import atomic_write, read_jsonl


def sample_text(s, length, temperature=0.8):
    """A short sample from the model for the eval log (its own RNG: training is unaffected)."""
    rng = np.random.default_rng([s.cfg.seed, s.scalars["step"]])
    v = s.vocab
    if s.cfg.line_mode:
        lines = [v.decode_text(s.model.sample([v.bos_id], 100, temperature, rng=rng,
                                              stop_id=v.eos_id)) for _ in range(5)]
        return "\n".join(lines)
    prompt = np.asarray(s.val_data[:1], dtype=np.int64)
    ids = s.model.sample(prompt, length, temperature, rng=rng)
    return v.decode_text(np.concatenate([prompt, np.asarray(ids, dtype=np.int64)]))


def indent(text):
    return "\n".join("    " + line for line in text.split("\n"))


def redraw_curves(s, log):
    """curves.png from metrics.jsonl; a plotting failure is reported, never fatal."""
    try:
        from lm.plot import plot_runs
        plot_runs([s.run_dir], os.path.join(s.run_dir, "curves.png"))
    except Exception as e:  # noqa: BLE001 - the training run matters more than its figure
        log(f"warning: could not draw curves.png: {e}")


def trim_metrics(run_dir, step):
    """On resume: drop metrics lines logged after the saved step (a crash after the log)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return
    rows = read_jsonl(path)
    keep = [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= step]
    if len(keep) != len(rows):
        with atomic_write(path, "w") as f:
            for r in keep:
                f.write(json.dumps(r, allow_nan=False, separators=(",", ":")) + "\n")


def banner(s):
    """The start-up lines: corpus, vocabulary, parameters, tokens per step, seed."""
    cfg, c, b = s.cfg, s.corpus, s.batcher
    split = f"{len(s.train_data):,} train / {len(s.val_data):,} validation"
    if cfg.line_mode:
        split += " lines, " + ("shuffled with the seed" if cfg.shuffle_lines else "file order")
    lines = [f"corpus  {c.path}: {c.num_bytes:,} bytes, {len(c.ids):,} {cfg.level} tokens"
             + (f" in {c.num_lines:,} lines" if cfg.line_mode else "")
             + f" ({split})",
             f"vocab   {len(s.vocab):,} tokens"
             + (f" (min_count {cfg.min_count})" if cfg.min_count > 1 else ""),
             f"model   {cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, embed {cfg.embed_size}, "
             f"dropout {cfg.dropout:g}: {s.model.num_params():,} parameters ({cfg.dtype})"]
    if cfg.line_mode:
        per_step = f"{b.batch_size} lines per step ({len(b)} steps per epoch)"
    else:
        per_step = (f"{b.batch_size} x {b.seq_length} = {b.batch_size * b.seq_length:,} tokens "
                    f"per step ({len(b):,} steps per epoch)")
    lines.append(f"batch   {per_step}; {cfg.optimizer} lr {s.optimizer.lr:.2e}, "
                 f"grad_clip {cfg.grad_clip:g}")
    lines.append(f"seed    {cfg.seed}; run directory {s.run_dir}"
                 + (f" (resumed at step {s.scalars['step']:,})" if s.resumed else ""))
    return lines + [f"note    {n}" for n in s.notes]
