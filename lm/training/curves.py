"""Learning curves of one or more runs on one labelled figure (PNG).

Language-model runs: a 2x2 grid, loss (the training loss logged every `log_every` steps,
smoothed, as a thin line; validation points on top) and validation bits per character
(char level) or perplexity (word level), against tokens seen and against training time.
Classifier runs (metrics with `val_acc`): loss and accuracy, training loss smoothed,
validation and test points, against epochs.
"""
import io
import os

from lm.training.metrics import read_metrics

SMOOTH = 0.8  # exponential moving average of the logged training loss


def _labels(run_dirs):
    """Short distinct labels: the directory names, with parents added where they collide."""
    parts = [os.path.normpath(os.path.abspath(d)).split(os.sep) for d in run_dirs]
    depth = 1
    while True:
        labels = [os.sep.join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
            return labels
        depth += 1


def _series(rows, x_key, y_key):
    pts = [(r[x_key], r[y_key]) for r in rows
           if isinstance(r.get(x_key), (int, float)) and isinstance(r.get(y_key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _train_rows(rows):
    """The rows of the training-loss log (no validation figures); older runs logged the
    training loss only beside each evaluation, so those rows serve then."""
    logged = [r for r in rows if "val_loss" not in r and "train_loss" in r]
    return logged or rows


def smooth(values, weight=SMOOTH):
    """Exponential moving average with bias correction (TensorBoard's smoothing)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def _eval_rows(rows):
    return [r for r in rows if "val_loss" in r]


def _is_sentiment(rows):
    return any("val_acc" in r or "train_acc" in r for r in rows)


def _scale(runs, key, units):
    """(divisor, name) of the largest unit in `units` that the data reach."""
    top = max((r.get(key) or 0 for _, rows in runs for r in rows), default=0)
    best = units[0]
    for div, name in units:
        if top >= 2 * div:
            best = (div, name)
    return best


def _draw_lm(fig, runs):
    axes = fig.subplots(2, 2)
    tok_div, tok_name = _scale(runs, "tokens", [(1, ""), (1e3, "thousands"), (1e6, "millions")])
    t_div, t_name = _scale(runs, "elapsed", [(1, "s"), (60, "min"), (3600, "h")])
    use_bpc = all(any("val_bpc" in r for r in rows) for _, rows in runs)
    metric, name = ("val_bpc", "validation bits per char") if use_bpc else \
        ("val_ppl", "validation perplexity")
    for i, (label, rows) in enumerate(runs):
        color = f"C{i % 10}"
        for col, (x_key, x_scale, x_name) in enumerate(
                [("tokens", tok_div, f"tokens seen ({tok_name})" if tok_name else "tokens seen"),
                 ("elapsed", t_div, f"training time ({t_name})")]):
            ax = axes[0, col]
            x, y = _series(_train_rows(rows), x_key, "train_loss")
            ax.plot([v / x_scale for v in x], smooth(y), "-", color=color, alpha=0.6,
                    linewidth=1, label=f"{label} train (smoothed)")
            x, y = _series(_eval_rows(rows), x_key, "val_loss")
            ax.plot([v / x_scale for v in x], y, "o", color=color, markersize=4,
                    label=f"{label} validation")
            ax.set_ylabel("loss (nats per token)")
            ax.set_xlabel(x_name)
            ax = axes[1, col]
            x, y = _series(_eval_rows(rows), x_key, metric)
            ax.plot([v / x_scale for v in x], y, "-", color=color, marker=".", label=label)
            ax.set_ylabel(name)
            ax.set_xlabel(x_name)
            if metric == "val_ppl":
                ax.set_yscale("log")
    for ax in axes.ravel():
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    axes[1, 0].legend(fontsize="small")
    axes[0, 0].set_title("loss vs tokens")
    axes[0, 1].set_title("loss vs time")


def _draw_sentiment(fig, runs):
    """Loss and accuracy (rows) for each split the runs evaluate (columns): train,
    validation and, where logged, test (a seq2seq or recall run has none)."""
    titles = {"train": "train", "val": "validation", "test": "test"}
    splits = [s for s in titles if s != "test" or any(
        "test_loss" in r or "test_acc" in r for _, rows in runs for r in rows)]
    axes = fig.subplots(2, len(splits), sharey="row")
    for i, (label, rows) in enumerate(runs):
        x_key = "epoch" if any("epoch" in r for r in rows) else "step"
        evals = _eval_rows(rows)
        x, y = _series([r for r in rows if "val_loss" not in r], x_key, "train_loss")
        if x:  # the logged training loss (dropout on), smoothed, under the train evaluations
            axes[0, 0].plot(x, smooth(y), "-", color=f"C{i % 10}", alpha=0.4, linewidth=1,
                            label=f"{label} (training batches, smoothed)")
        for col, split in enumerate(splits):
            for row, (kind, unit) in enumerate((("loss", "loss (nats)"), ("acc", "accuracy"))):
                x, y = _series(evals, x_key, f"{split}_{kind}")
                ax = axes[row, col]
                if x:
                    ax.plot(x, y, "-", color=f"C{i % 10}", marker=".", label=label)
                ax.set_xlabel(x_key)
                if col == 0:
                    ax.set_ylabel(unit)
    for col, split in enumerate(splits):
        axes[0, col].set_title(f"{titles[split]} loss")
        axes[1, col].set_title(f"{titles[split]} accuracy")
    for ax in axes.ravel():
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize="small")


def new_figure(figsize):
    """An empty matplotlib Figure drawn with Agg (no pyplot: no global figure state)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def figure_png(fig, dpi=90):
    """A matplotlib Figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def draw_figure(run_dirs, title=None):
    """The matplotlib Figure of `run_dirs` (raises FileNotFoundError/ValueError)."""
    if not run_dirs:
        raise ValueError("give at least one run directory")
    runs = []
    for label, d in zip(_labels(run_dirs), run_dirs):
        rows = read_metrics(d)
        if not rows:
            raise ValueError(f"{d}/metrics.jsonl has no evaluations yet")
        runs.append((label, rows))
    kinds = {_is_sentiment(rows) for _, rows in runs}
    if len(kinds) > 1:
        raise ValueError("cannot draw language-model and sentiment runs on one figure")
    sentiment = kinds.pop()
    fig = new_figure((15, 8) if sentiment else (12, 8))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.92, wspace=0.22, hspace=0.3)
    (_draw_sentiment if sentiment else _draw_lm)(fig, runs)
    fig.suptitle(title or ", ".join(label for label, _ in runs))
    return fig


def render_png(run_dirs, title=None):
    """The figure of `run_dirs` as PNG bytes."""
    return figure_png(draw_figure(run_dirs, title))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_target(path):
    """Refuse to replace anything at `path` but a PNG image (a text file given as --out by
    mistake, a directory): ValueError naming it. A missing file or a link is fine (the
    atomic write replaces a link, never writes through it)."""
    path = os.fspath(path)
    if not os.path.exists(path) or os.path.islink(path):
        return
    if not os.path.isfile(path):
        raise ValueError(f"--out {path} exists and is not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(PNG_SIGNATURE))
    except OSError:
        return  # the write will name the problem
    if head != PNG_SIGNATURE:
        raise ValueError(f"--out {path} exists and is not a PNG image; it is left as it is "
                         "(choose another file name)")


def plot_runs(run_dirs, out_path, title=None):
    """Draw the curves of `run_dirs` (a list of run directories) into `out_path` atomically."""
    from lm.storage.atomic import write_bytes

    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    check_png_target(out_path)
    data = render_png([os.fspath(d) for d in run_dirs], title=title)
    write_bytes(out_path, data)
    return out_path
