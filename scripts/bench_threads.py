"""BLAS thread count for scripts/benchmark.py, chosen and set before numpy is imported.

The rule is lm.cli's (the CLIs use it too): `--threads N` fixes the count for both
numpy (OPENBLAS_NUM_THREADS, read once when numpy loads) and PyTorch; `--threads auto`,
the default of the train and sample suites, takes 1 thread when the machine is already
busy and every CPU when it is idle. With two BLAS threads on two cores that another
process also uses, both libraries run 3 to 15 times slower than with one thread, which
says nothing about either of them. The layers suite keeps numpy's own default.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lm import cli as lm_threads  # noqa: E402  (never imports numpy)

AUTO_SUITES = ("train", "sample")


def _flag(argv, name):
    """The value of `name` in argv (`--name V` or `--name=V`), or None."""
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def choose(argv, environ=None, load=None):
    """(threads as a string or None for numpy's default, reason) from the command line."""
    value = lm_threads.raw_threads(argv)
    if value is None and (_flag(argv, "--suite") or "layers") not in AUTO_SUITES:
        return None, "numpy's default"
    try:
        threads, reason = lm_threads.choose_threads(value, environ, load)
    except ValueError:  # a bad --threads: argparse reports it
        return None, "numpy's default"
    return threads, ("auto: " + reason) if value in (None, "auto") else reason


def apply(argv):
    """Set the BLAS thread variables for the chosen count; returns the reason (for the log)."""
    threads, reason = choose(argv)
    if threads is not None:
        for var in lm_threads.VARS:
            os.environ[var] = threads
    return reason
