"""BLAS thread count for scripts/benchmark.py, chosen and set before numpy is imported.

OpenBLAS (numpy) reads OPENBLAS_NUM_THREADS once, when numpy loads it; PyTorch is then
given the same count. `--threads N` fixes it. `--threads auto` (the default of the train
and sample suites) takes 1 thread when the machine is already busy and every CPU when it
is idle: with two BLAS threads on two cores that another process also uses, each
per-step product waits for a descheduled thread, and both libraries run 3 to 15 times
slower than with one thread (measured here, see the README's Speed section), which says
nothing about either library. A thread count already set in the environment is kept.
"""
import os

VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
AUTO_SUITES = ("train", "sample")
BUSY_LOAD = 0.5  # 1-minute load average from other work that counts as "busy"


def _flag(argv, name):
    """The value of `name` in argv (`--name V` or `--name=V`), or None."""
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def choose(argv):
    """(threads as a string or None for numpy's default, reason) from the command line."""
    value = _flag(argv, "--threads")
    suite = _flag(argv, "--suite") or "layers"
    if value is None and suite not in AUTO_SUITES:
        return None, "numpy's default"
    if value not in (None, "auto"):
        return value, "--threads"
    for var in VARS:
        if os.environ.get(var, "").isdigit():
            return os.environ[var], f"auto: {var} is set"
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return str(cpus()), "auto: no load average, all CPUs"
    if load >= BUSY_LOAD:
        return "1", f"auto: machine busy (load average {load:.1f} on {cpus()} CPUs)"
    return str(cpus()), f"auto: machine idle (load average {load:.1f}), all CPUs"


def apply(argv):
    """Set the BLAS thread variables for the chosen count; returns the reason (for the log)."""
    threads, reason = choose(argv)
    if threads is not None:
        for var in VARS:
            os.environ[var] = threads
    return reason
