"""What every training run keeps up to date: curves.png, metrics.jsonl on resume, the ETA."""
import json
import math
import os

from lm.storage.checkpoint import atomic_write, read_jsonl


def redraw_curves(run_dir, log):
    """curves.png from metrics.jsonl; a plotting failure is reported, never fatal."""
    try:
        from lm.training.curves import plot_runs
        plot_runs([run_dir], os.path.join(run_dir, "curves.png"))
    except Exception as e:  # noqa: BLE001 - the training run matters more than its figure
        log(f"warning: could not draw curves.png: {e}")


def trim_metrics(run_dir, step):
    """On resume: drop metrics lines logged after the saved step (a crash after the log),
    and the `final` evaluation of a run that stopped at that step off the schedule (an
    uninterrupted run has no such row), so the log equals an uninterrupted run's."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return
    rows = read_jsonl(path)
    keep = [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= step
            and not (r["step"] == step and r.get("final"))]
    if len(keep) != len(rows):
        with atomic_write(path, "w") as f:
            for r in keep:
                f.write(json.dumps(r, allow_nan=False, separators=(",", ":")) + "\n")


def eta_text(steps_done, steps_left, seconds, budget):
    """Time left as m:ss: by the step rate so far, capped by the time budget."""
    left = steps_left * seconds / steps_done if steps_done else float("inf")
    if budget:
        left = min(left, max(0.0, budget - seconds))
    if not math.isfinite(left):
        return "?"
    m, sec = divmod(int(left), 60)
    return f"{m // 60}:{m % 60:02d}:{sec:02d}" if m >= 60 else f"{m}:{sec:02d}"
