"""Run directories: default names, refusing to overwrite, finding the latest run."""
import os

from lm.storage.atomic import is_tmp_name

CHECKPOINT_FILES = ("last.safetensors", "best.safetensors", "last.npz", "best.npz")
# every file lm writes in a run directory (besides its own temporary files)
RUN_FILES = ("config.json", "vocab.json", "metrics.jsonl", "curves.png") + CHECKPOINT_FILES
RUNS_ROOT = "checkpoints"


def corpus_label(corpus):
    """A short name for the corpus: a registry name as is, a file's name without suffix."""
    base = os.path.basename(os.path.normpath(str(corpus))) or "corpus"
    stem, _ = os.path.splitext(base)
    label = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (stem or base))
    return label or "corpus"


def default_run_dir(cfg):
    """checkpoints/<corpus>-<level>-<cell>."""
    return os.path.join(RUNS_ROOT, f"{corpus_label(cfg.corpus)}-{cfg.level}-{cfg.cell}")


def has_checkpoint(run_dir):
    return any(os.path.exists(os.path.join(run_dir, f)) for f in CHECKPOINT_FILES)


def check_run_files(run_dir):
    """Refuse a run directory in which a file lm writes (RUN_FILES) is a symbolic link:
    lm never writes or appends through a link (it could point at any file on the machine)."""
    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if os.path.islink(path):
            raise ValueError(f"{path} is a symbolic link; lm never writes through links "
                             f"(remove it or choose another --out_dir; nothing was changed)")


def check_new_run_dir(run_dir):
    """Refuse a directory that already holds a checkpoint (nothing saved is ever
    overwritten), and a non-empty one that is not an lm run (holding anything but lm's own
    files, or a config.json that is not an lm run's), or whose lm files are links."""
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        raise ValueError(f"--out_dir {run_dir} exists and is not a directory")
    if not os.path.isdir(run_dir):
        return
    if has_checkpoint(run_dir):
        raise ValueError(f"{run_dir} already holds a trained run; pass --resume to continue it "
                         f"or --out_dir NEW_DIR to start a new one (nothing was changed)")
    names = [n for n in os.listdir(run_dir) if not is_tmp_name(n)]
    foreign = sorted(n for n in names if n not in RUN_FILES)
    if names and not foreign and _run_kind(run_dir) is None:  # lm writes config.json first
        foreign = ["config.json" if "config.json" in names else sorted(names)[0]]
    if foreign:
        raise ValueError(f"--out_dir {run_dir} is not empty and is not an lm run (it holds "
                         f"{foreign[0]!r}); choose a new or empty directory (nothing was changed)")
    check_run_files(run_dir)


def prepare_run_dir(run_dir, new):
    """Create `run_dir`, remove stale temporary files, refuse linked run files; a `new` run
    (checked by check_new_run_dir) drops the metrics.jsonl of an attempt that never saved a
    checkpoint, so its log starts empty."""
    from lm.storage.atomic import clean_stale_tmp

    os.makedirs(run_dir, exist_ok=True)
    check_run_files(run_dir)
    clean_stale_tmp(run_dir)
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if new and os.path.lexists(metrics):
        os.unlink(metrics)


def resumed_run_config(run_dir, kind, what):
    """(config.json, its path) of the run that `--resume --out_dir RUN_DIR` continues:
    FileNotFoundError unless it holds a last checkpoint, ValueError if a file lm writes
    there is a link or it is not a `kind` run (`what` names one) with a "train" object."""
    from lm.storage.checkpoint import CONFIG_NAME, find_checkpoint, read_json, validate_config

    if not run_dir or find_checkpoint(run_dir, "last") is None:
        raise FileNotFoundError(f"--resume: {run_dir or '(no --out_dir)'} holds no last "
                                f"checkpoint to resume from (pass --out_dir RUN_DIR)")
    check_run_files(run_dir)
    label = os.path.join(run_dir, CONFIG_NAME)
    meta = validate_config(read_json(label), label)
    if meta["kind"] != kind or not isinstance(meta.get("train"), dict):
        raise ValueError(f"--resume: {run_dir} is a {meta['kind']} run, not {what}")
    return meta, label


def _run_kind(run_dir):
    """The `kind` of the lm run in `run_dir` ("language_model", "sentiment"), or None."""
    try:
        from lm.storage.checkpoint import read_json
        from lm.storage.run_config import KINDS
        kind = read_json(os.path.join(run_dir, "config.json")).get("kind")
        return kind if kind in KINDS else None
    except (OSError, ValueError, AttributeError):
        return None


def find_latest_run(root=RUNS_ROOT, kind="language_model"):
    """The `kind` run directory under `root` whose checkpoint was written most recently."""
    best, best_time = None, -1.0
    if os.path.isdir(root):
        for name in os.listdir(root):
            d = os.path.join(root, name)
            if kind is not None and _run_kind(d) != kind:
                continue
            for f in CHECKPOINT_FILES:
                p = os.path.join(d, f)
                if os.path.isfile(p) and os.path.getmtime(p) > best_time:
                    best, best_time = d, os.path.getmtime(p)
    if best is None:
        what = "language-model run" if kind == "language_model" else f"{kind} run"
        raise FileNotFoundError(f"no trained {what} under {root}/; train one with "
                                f"`python -m lm.train CORPUS` or pass --checkpoint DIR")
    return best


def check_run_dir(run_dir, flag="checkpoint"):
    """A run directory that exists and holds a checkpoint, else a one-line error."""
    run_dir = str(run_dir)
    if not os.path.exists(run_dir):
        raise FileNotFoundError(f"--{flag} {run_dir} does not exist")
    if not os.path.isdir(run_dir):
        raise ValueError(f"--{flag} {run_dir} is not a run directory (give the directory "
                         f"that holds config.json and best.safetensors)")
    if not has_checkpoint(run_dir):
        raise FileNotFoundError(f"--{flag} {run_dir} holds no checkpoint (best.safetensors "
                                f"or last.safetensors)")
    return run_dir


def checkpoint_name(run_dir, which):
    """"RUN_DIR (best.safetensors)": the run and the file its `which` weights come from."""
    from lm.storage.checkpoint import find_checkpoint

    path = find_checkpoint(run_dir, which) or find_checkpoint(run_dir, "last")
    return f"{run_dir} ({os.path.basename(path) if path else which})"
