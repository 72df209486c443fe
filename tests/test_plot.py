"""Learning-curve figures: language-model and sentiment runs, several runs on one figure."""
import json
import os
import subprocess
import sys

import pytest

from lm.training.curves import _labels, plot_runs, render_png

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "metrics.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write('{"step": 99, "val_lo')  # a line torn by a crash is skipped
    return str(path)


def lm_rows(scale=1.0, char=True):
    rows = []
    for k in range(1, 6):
        val = scale * (2.0 / k + 1.0)
        r = {"step": 100 * k, "epoch": 0.1 * k, "tokens": 409600 * k, "elapsed": 30.0 * k,
             "lr": 3e-3, "train_loss": val + 0.05, "val_loss": val, "val_ppl": 2.718 ** val}
        if char:
            r["val_bpc"] = val / 0.6931
        rows.append(r)
    return rows


def sentiment_rows():
    return [{"epoch": e, "step": 10 * e, "train_loss": 0.7 / e, "train_acc": 1 - 0.3 / e,
             "val_loss": 0.8 / e, "val_acc": 1 - 0.35 / e, "test_loss": 0.8 / e,
             "test_acc": 1 - 0.4 / e} for e in range(1, 6)]


def png_size(data):
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_several_language_model_runs_on_one_figure(tmp_path):
    a = write_run(tmp_path / "rnn", lm_rows(1.2))
    b = write_run(tmp_path / "lstm", lm_rows(1.0))
    out = tmp_path / "curves.png"
    plot_runs([a, b], str(out))
    w, h = png_size(out.read_bytes())
    assert w > 600 and h > 400
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]  # written atomically


def test_word_level_runs_plot_perplexity_and_single_path_is_accepted(tmp_path):
    run = write_run(tmp_path / "w", lm_rows(char=False))
    plot_runs(run, str(tmp_path / "w.png"))
    assert (tmp_path / "w.png").read_bytes()[:8] == PNG_MAGIC


def test_sentiment_runs_get_six_panels(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from lm.training.curves import _draw_sentiment
    fig = Figure()
    _draw_sentiment(fig, [("s", sentiment_rows())])
    axes = fig.get_axes()
    assert len(axes) == 6
    titles = sorted(ax.get_title() for ax in axes)
    assert titles == sorted(f"{s} {k}" for s in ("train", "validation", "test")
                            for k in ("loss", "accuracy"))
    assert all(len(ax.get_lines()) == 1 for ax in axes)
    data = render_png([write_run(tmp_path / "s", sentiment_rows())])
    assert png_size(data)[0] > 800


def test_runs_without_a_test_split_get_four_panels():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from lm.training.curves import _draw_sentiment
    rows = [{k: v for k, v in r.items() if not k.startswith("test_")} for r in sentiment_rows()]
    fig = Figure()
    _draw_sentiment(fig, [("s2s", rows)])
    titles = sorted(ax.get_title() for ax in fig.get_axes())
    assert titles == sorted(f"{s} {k}" for s in ("train", "validation")
                            for k in ("loss", "accuracy"))


def test_mixed_or_missing_runs_are_clear_errors(tmp_path):
    lm_run = write_run(tmp_path / "a", lm_rows())
    s_run = write_run(tmp_path / "b", sentiment_rows())
    with pytest.raises(ValueError, match="sentiment"):
        render_png([lm_run, s_run])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render_png([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        render_png([str(tmp_path / "empty")])


def test_labels_are_distinct():
    assert _labels(["x/a/run", "y/b/run"]) == ["a/run", "b/run"]
    assert _labels(["runs/gru", "runs/lstm"]) == ["gru", "lstm"]


def test_plot_cli(tmp_path):
    write_run(tmp_path / "gru", lm_rows(1.1))
    write_run(tmp_path / "lstm", lm_rows(1.0))
    e = dict(os.environ, MPLBACKEND="Agg")
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "lm.plot", "gru", "lstm", "--out", "cmp.png"],
                          cwd=tmp_path, env=e, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "wrote cmp.png" in proc.stdout
    assert (tmp_path / "cmp.png").read_bytes()[:8] == PNG_MAGIC
    bad = subprocess.run([sys.executable, "-m", "lm.plot", "nope"], cwd=tmp_path, env=e,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr


def test_the_figure_draws_the_smoothed_training_log_and_validation_points(tmp_path):
    """What is drawn, not only that a PNG came out: axes, labels, lines and their data."""
    from lm.training.curves import draw_figure, smooth

    train = [{"step": s, "epoch": s / 500, "tokens": 64 * s, "elapsed": s / 10, "lr": 3e-3,
              "train_loss": 4.0 - s / 100} for s in range(10, 301, 10)]
    evals = [{**r, "val_loss": r["train_loss"] + 0.1, "val_ppl": 2.718 ** r["train_loss"],
              "val_bpc": r["train_loss"] / 0.6931} for r in lm_rows()[:3]]
    for r, step in zip(evals, (100, 200, 300)):
        r.update(step=step, tokens=64 * step, elapsed=step / 10)
    fig = draw_figure([write_run(tmp_path / "run", sorted(train + evals,
                                                          key=lambda r: r["step"]))])
    axes = fig.get_axes()
    assert len(axes) == 4
    loss_tokens, loss_time, bpc_tokens, _ = axes
    assert loss_tokens.get_ylabel() == "loss (nats per token)"
    assert loss_tokens.get_xlabel() == "tokens seen (thousands)"
    assert loss_time.get_xlabel() == "training time (s)"
    assert bpc_tokens.get_ylabel() == "validation bits per char"
    train_line, val_points = loss_tokens.get_lines()
    assert train_line.get_label() == "run train (smoothed)"
    assert len(train_line.get_xdata()) == 30  # every logged row, not only the evaluations
    assert list(train_line.get_ydata()) == pytest.approx(smooth([r["train_loss"] for r in train]))
    assert list(val_points.get_xdata()) == pytest.approx([6.4, 12.8, 19.2])  # thousands
    assert list(val_points.get_ydata()) == pytest.approx([r["val_loss"] for r in evals])
    assert val_points.get_linestyle() == "None" and val_points.get_marker() == "o"
    assert list(bpc_tokens.get_lines()[0].get_ydata()) == pytest.approx(
        [r["val_bpc"] for r in evals])


def test_smoothing_follows_a_constant_and_lags_a_step():
    from lm.training.curves import smooth

    assert smooth([2.0] * 5) == pytest.approx([2.0] * 5)  # bias-corrected from the start
    s = smooth([1.0] * 5 + [0.0] * 5)
    assert s[4] == pytest.approx(1.0) and 0 < s[5] < 1 and s[-1] < s[5]
