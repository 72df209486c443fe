"""Shared command-line machinery: the fire runner, one-line errors, exit codes, flag checks.

Every CLI is a thin function `main(...)` that checks its flags with the helpers below,
calls library functions, prints and returns None; `run_cli(main)` runs it with fire and
turns the expected failures into one line on stderr:

    ValueError, CheckpointError, FileNotFoundError, OSError -> `error: ...`, exit 2
    MemoryError (a last resort: sizes are estimated first)  -> `error: out of memory ...`, exit 2
    CliError(message, code)                               -> `error: ...`, exit `code`
    KeyboardInterrupt                                     -> `interrupted`, exit 130
    BrokenPipeError (stdout closed by `| head`)           -> silent, exit 141
"""
import os
import signal
import sys


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
    args = sys.argv[1:] if argv is None else argv
    prog = _prog_name()
    name = f"{prog} {command}" if prog and command else prog
    try:
        if _asks_help(args):
            print(help_text(fn, name or getattr(fn, "__name__", "")))
            return
        check_known_flags(fn, args)
        fire.Fire(fn, command=argv, name=name)
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
    except (ValueError, OSError) as exc:  # CheckpointError is a ValueError
        print(f"error: {error_message(exc)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except MemoryError as exc:  # the last resort: sizes are estimated before allocating
        what = error_message(exc) if str(exc) else "an allocation failed"
        print(f"error: out of memory ({what}); try smaller sizes (--hidden_size, "
              f"--batch_size, ...) or a machine with more memory", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _asks_help(argv):
    for arg in argv:
        if arg == "--":
            return False
        if arg in ("-h", "--help", "--helpfull"):
            return True
    return False


def help_text(fn, name):
    """fire's help page of `fn`, without the `INFO:` line fire prints before it."""
    from fire import helptext, trace

    text = helptext.HelpText(fn, trace=trace.FireTrace(fn, name=name))
    return text.replace(f"'{name}'", name)


# ---- programs of several commands (`python -m lm.seq2seq train|predict|evaluate`) ----

def run_commands(commands, usage, argv, hint=""):
    """Run the command that the first word of `argv` names: `commands[word]` gets the rest
    through `run_cli`; -h/--help/help prints `usage`. No word or an unknown one:
    `error: ...; choose A, B or C` and `hint` on stderr, exit 2."""
    command = argv[0] if argv else None
    if command in ("-h", "--help", "help"):
        print(usage)
        return
    if command not in commands:
        what = "no command given" if command is None else f"unknown command {command!r}"
        names = list(commands)
        choices = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        print(f"error: {what}; choose {choices}{hint}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    run_cli(commands[command], argv[1:], command=command)


# ---- commands whose flags are a config dataclass's fields -----------------------

def field_help(cls):
    """{field name: its comment} from the `name: type = default  # comment` lines of a
    dataclass: the comment on each field is the one description of its flag."""
    import inspect
    import re

    found = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^=]+= .*?#\s*(.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def config_command(cls, run, summary, positional=(), hidden=(), extra=()):
    """A command for `run_cli` whose flags are the fields of dataclass `cls`.

    The signature (what fire parses and --help lists) and the Args text come from the
    fields, their defaults and their comments, so a flag is declared once. `run(values)`
    gets {name: value} for every field and extra flag. positional: field names also taken
    as positional arguments (e.g. the corpus); hidden: fields left off the command line;
    extra: (name, default, help) flags that are not fields (e.g. threads).
    """
    import dataclasses
    import inspect

    P = inspect.Parameter
    helps = field_help(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in hidden}
    params = [P(n, P.POSITIONAL_OR_KEYWORD, default=None) for n in positional]
    params += [P(n, P.KEYWORD_ONLY, default=d) for n, d in defaults.items() if n not in positional]
    params += [P(n, P.KEYWORD_ONLY, default=d) for n, d, _ in extra]
    sig = inspect.Signature(params)
    docs = {**helps, **{n: h for n, _, h in extra}}

    def command(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return run(dict(bound.arguments))

    command.__signature__ = sig
    command.__name__ = getattr(run, "__name__", "command")
    command.__doc__ = summary.rstrip() + "\n\nArgs:\n" + "".join(
        f"  {p.name}: {docs.get(p.name, '')}\n" for p in params)
    return command


FIRE_FLAGS = {"help", "helpfull", "trace", "verbose", "interactive", "completion",
              "separator"}


def check_known_flags(fn, argv):
    """Refuse a misspelt flag, and more positional arguments than `fn` takes, before
    anything runs (fire would run first and complain after, or silently give an extra
    word to the next parameter: `lm.sample RUN dog` must not mean `--start dog`)."""
    import difflib
    import inspect

    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    _check_positionals(sig, argv)
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


def _check_positionals(sig, argv):
    """ValueError for a positional argument beyond those `sig` takes (parameters before
    its keyword-only ones; *args takes any number). `--name VALUE` consumes VALUE unless
    the parameter is a switch (a bool default) or VALUE is itself a flag."""
    params = sig.parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    takes = [n for n, p in sig.parameters.items()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    switches = {n for n, p in sig.parameters.items() if isinstance(p.default, bool)}
    found, i = [], 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            name = arg.lstrip("-").partition("=")[0].replace("-", "_")
            plain = name[2:] if name[:2] == "no" and name[2:] in switches else name
            if "=" not in arg and plain not in switches and plain not in FIRE_FLAGS \
                    and i < len(argv) and not (argv[i].startswith("--") and len(argv[i]) > 2):
                i += 1  # the flag's value
            continue
        found.append(arg)
    if len(found) > len(takes):
        extra = found[len(takes)]
        what = (f"takes {len(takes)} positional argument{'s' if len(takes) != 1 else ''} "
                f"({', '.join(n.upper() for n in takes)})" if takes
                else "takes no positional arguments")
        raise ValueError(f"unexpected argument {extra!r}: this command {what}; "
                         f"give options as --name VALUE")


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


def raw_texts(values, names, argv):
    """Set each text flag of `names` in `values` ({name: value} from fire) to the string
    typed for it in `argv` (fire turns `--out_dir 1e3` into 1000.0); None -> ""."""
    for name in names:
        v = values[name]
        values[name] = "" if v is None else (raw_flag(name, argv) or str(v))
    return values


def raw_positionals(argv, switches, count=0):
    """The first `count` (0: all) positional arguments in `argv`, exactly as typed (fire
    turns "1e3" into 1000.0). switches: the flags that take no value (`x` and `nox`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            continue
        elif arg.startswith("--"):
            skip = "=" not in arg and arg[2:].replace("-", "_") not in switches
        else:
            out.append(arg)
    return out[:count] if count else out


def check_str(name, value, allow_empty=False):
    """A flag that is text even when fire parsed it as a number or tuple."""
    if value is None:
        return None
    raw = raw_flag(name)
    s = raw if raw is not None else str(value)
    if not allow_empty and not s.strip():
        raise ValueError(f"--{name} must not be empty")
    return s


# ---- BLAS threads, chosen before numpy loads (this module never imports numpy) ----
# BLAS thread count for the CLIs, set before numpy loads (this module never imports numpy).
# 
# OpenBLAS reads OPENBLAS_NUM_THREADS once, when numpy is first imported. With two BLAS
# threads on two cores that another process also uses, every per-time-step product waits
# for a descheduled thread: a training step runs 3 to 15 times slower than with one
# thread (measured on the 2-core development machine). `--threads auto` (the default)
# therefore takes 1 thread when the machine is already busy and every CPU when it is idle;
# `--threads N` fixes it; a count already set in the environment is kept.

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


def choose_threads(value=None, environ=None, load=None):
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


def apply_threads(argv, default="auto"):
    """Choose from argv (else `default`) and export the thread variables; returns a line
    for the banner. Sampling passes default "1": one token at a time, the products are
    too small for a second thread to pay.

    Does nothing useful once numpy is loaded (OpenBLAS has read its setting by then); an
    invalid --threads is left for the CLI's own check to report.
    """
    try:
        threads, reason = choose_threads(raw_threads(argv) or default)
    except ValueError:
        return None
    for var in VARS:
        os.environ[var] = threads
    return f"threads {threads} BLAS thread{'s' if threads != '1' else ''}: {reason}"
