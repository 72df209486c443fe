"""BLAS thread count for the CLIs, set before numpy loads (this module never imports numpy).

OpenBLAS reads OPENBLAS_NUM_THREADS once, when numpy is first imported. With two BLAS
threads on two cores that another process also uses, every per-time-step product waits
for a descheduled thread: a training step runs 3 to 15 times slower than with one
thread (measured on the 2-core development machine). `--threads auto` (the default)
therefore takes 1 thread when the machine is already busy and every CPU when it is idle;
`--threads N` fixes it; a count already set in the environment is kept.
"""
import os

VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BUSY_LOAD = 0.5  # 1-minute load average from other work that counts as "busy"


def cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def raw_threads(argv):
    """The --threads value on the command line, or None."""
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return None


def choose(value=None, environ=None, load=None):
    """(threads as a string, reason). value: None/"auto" or a positive integer string.

    Raises ValueError for anything else (naming the flag).
    """
    environ = os.environ if environ is None else environ
    value = "auto" if value is None else str(value)
    if value != "auto":
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--threads must be 'auto' or a positive integer, got {value!r}")
        return value, "--threads"
    for var in VARS:
        if environ.get(var, "").isdigit():
            return environ[var], f"{var} is set"
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return str(cpus()), "all CPUs"
    if load >= BUSY_LOAD:
        return "1", f"the machine is busy (load average {load:.1f} on {cpus()} CPUs)"
    return str(cpus()), f"the machine is idle (load average {load:.1f})"


def apply(argv, default="auto"):
    """Choose from argv (else `default`) and export the thread variables; returns a line
    for the banner. Sampling passes default "1": one token at a time, the products are
    too small for a second thread to pay.

    Does nothing useful once numpy is loaded (OpenBLAS has read its setting by then); an
    invalid --threads is left for the CLI's own check to report.
    """
    try:
        threads, reason = choose(raw_threads(argv) or default)
    except ValueError:
        return None
    for var in VARS:
        os.environ[var] = threads
    return f"threads {threads} BLAS thread{'s' if threads != '1' else ''}: {reason}"
