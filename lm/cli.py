"""Shared command-line machinery: the fire runner, one-line errors, exit codes, flag checks.

Every CLI is a thin function `main(...)` that checks its flags with the helpers below,
calls library functions, prints and returns None; `run_cli(main)` runs it with fire and
turns the expected failures into one line on stderr:

    ValueError, CheckpointError, FileNotFoundError, OSError -> `error: ...`, exit 2
    CliError(message, code)                               -> `error: ...`, exit `code`
    KeyboardInterrupt                                     -> `interrupted`, exit 130
    BrokenPipeError (stdout closed by `| head`)           -> silent, exit 141
"""
import math
import os
import signal
import sys

from lm.checkpoint import CheckpointError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell tool killed by the signal


class CliError(Exception):
    """A failure that is not bad input (e.g. training diverged): one line, exit `code`."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def error_message(exc):
    """One line for the user, without Python's `[Errno 2]` noise."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        msg = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror
    elif isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())  # always one line


def run_cli(fn, argv=None, command=None):
    """Run `fn` as a fire CLI; never shows a traceback for expected failures.

    `command`: a subcommand word that --help shows after the program's name.
    """
    import fire  # only CLIs import fire

    os.environ.setdefault("PAGER", "cat")  # fire's --help must not wait for a pager
    try:
        check_known_flags(fn, sys.argv[1:] if argv is None else argv)
        prog = _prog_name()
        fire.Fire(fn, command=argv, name=f"{prog} {command}" if prog and command else prog)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a further Ctrl-C must not break the exit
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:  # `python -m lm.sample | head`: the reader left, say nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except CliError as exc:
        print(f"error: {error_message(exc)}", file=sys.stderr)
        sys.exit(exc.code)
    except (ValueError, CheckpointError, FileNotFoundError, OSError) as exc:
        print(f"error: {error_message(exc)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


FIRE_FLAGS = {"help", "helpfull", "trace", "verbose", "interactive", "completion",
              "separator"}


def check_known_flags(fn, argv):
    """Refuse a misspelt flag before anything runs (fire would run first, complain after)."""
    import difflib
    import inspect

    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    names = [n for n, p in sig.parameters.items() if p.kind is not p.VAR_POSITIONAL]
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("--"):
            name = arg[2:].partition("=")[0].replace("-", "_")
            if name in names or name in FIRE_FLAGS or (name[:2] == "no" and name[2:] in names):
                continue
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise ValueError(f"unknown flag --{name}{hint}")
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            letter = arg[1:].partition("=")[0]
            if letter == "h" or (len(letter) == 1 and
                                 sum(n.startswith(letter) for n in names) == 1):
                continue
            raise ValueError(f"unknown flag {arg}; write flags out in full, like --{names[0]}")


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _prog_name():
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return f"python -m {spec.name}" if spec is not None and spec.name else None


# ---- the raw command line (fire turns `--start 1984` into an int) ----------------

def raw_flag(name, argv=None):
    """The exact string given for `--name` on the command line, or None if absent.

    Accepts `--name VALUE`, `--name=VALUE` and the dashed spelling `--na-me`.
    """
    argv = sys.argv[1:] if argv is None else argv
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    found = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        head, eq, value = arg.partition("=")
        if head in spellings:
            if eq:
                found = value
            elif i + 1 < len(argv):
                found = argv[i + 1]
    return found


def given_flags(names, argv=None):
    """The subset of `names` that appear on the command line (`--x`, `--x=`, `--nox`)."""
    argv = sys.argv[1:] if argv is None else argv
    given = set()
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue
        head = arg[2:].partition("=")[0].replace("-", "_")
        if head in names:
            given.add(head)
        elif head.startswith("no") and head[2:] in names:
            given.add(head[2:])
    return given


# ---- flag checks: each error names the flag ----------------------------------------

def check_int(name, value, lo=None, hi=None):
    """`value` as an int in [lo, hi]; `ValueError('--name ...')` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"--{name} must be an integer, got {value!r}")
    try:
        f = float(value)
        iv = int(f)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"--{name} must be an integer, got {value!r}") from None
    if iv != f:
        raise ValueError(f"--{name} must be an integer, got {value!r}")
    _check_range(name, iv, lo, hi, lo_open=False, hi_open=False)
    return iv


def check_float(name, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """`value` as a finite float in the interval; `lo_open`/`hi_open` exclude the ends."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"--{name} must be a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"--{name} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"--{name} must be finite, got {value!r}")
    _check_range(name, f, lo, hi, lo_open, hi_open)
    return f


def _check_range(name, v, lo, hi, lo_open, hi_open):
    bad_lo = lo is not None and (v <= lo if lo_open else v < lo)
    bad_hi = hi is not None and (v >= hi if hi_open else v > hi)
    if bad_lo or bad_hi:
        left = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        right = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        if lo is not None and hi is not None:
            want = f"in {left}, {right}"
        elif lo is not None:
            want = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            want = f"{'<' if hi_open else '<='} {hi:g}"
        raise ValueError(f"--{name} must be {want}, got {v:g}")


def check_choice(name, value, choices):
    """`value` (a string) if it is one of `choices`, else an error listing them."""
    s = str(value).lower() if isinstance(value, str) else value
    if s not in choices:
        raise ValueError(f"--{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return s


def check_bool(name, value):
    """fire gives `--flag` as True; also accept true/false/1/0 written out."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ValueError(f"--{name} is a switch (--{name} or --no{name}), got {value!r}")


def check_str(name, value, allow_empty=False):
    """A flag that is text even when fire parsed it as a number or tuple."""
    if value is None:
        return None
    raw = raw_flag(name)
    s = raw if raw is not None else str(value)
    if not allow_empty and not s.strip():
        raise ValueError(f"--{name} must not be empty")
    return s
