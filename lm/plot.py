"""Plot learning curves of one or more runs: `python -m lm.plot RUN_DIR [RUN_DIR ...] --out F`."""


def main(*run_dirs, out="curves.png", title=None):
    """Plot learning curves of one or more runs on one figure.

    Args:
      run_dirs: run directories (each with a metrics.jsonl), e.g. checkpoints/names-char-lstm
      out: the PNG file to write
      title: figure title (default: the run names)
    """
    from lm.cli import check_str
    from lm.training.curves import plot_runs

    if not run_dirs:
        raise ValueError("give at least one run directory: python -m lm.plot RUN_DIR [RUN_DIR ...]")
    out = check_str("out", out)
    plot_runs([str(d) for d in run_dirs], out, title=None if title is None else str(title))
    print(f"wrote {out}")


if __name__ == "__main__":
    from lm.cli import run_cli
    run_cli(main)
