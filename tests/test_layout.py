"""The package's folders are its architecture: imports only point down, no cycles, the
library never imports a command-line module, and the entry points load no numpy before
they have chosen the BLAS thread count."""
import ast
import os
import subprocess
import sys

from conftest import REPO, cli_env

LM = os.path.join(REPO, "lm")
ENTRY_POINTS = {"train", "sample", "evaluate", "plot", "sentiment", "seq2seq", "export",
                "import_torch", "diagnose"}
SHARED_CLI = {"cli"}
# what each subpackage may import (besides itself): a DAG, drawn bottom-up
ALLOWED = {
    "config": set(),
    "storage": {"config"},
    "text": {"config", "storage"},
    "data": {"config", "text"},
    "layers": {"config"},
    "models": {"config", "layers", "data", "text", "storage"},
    "interop": {"config", "layers", "models", "text", "storage"},
    "training": {"config", "layers", "models", "data", "text", "storage"},
    "diagnostics": {"config", "layers", "models", "data", "text", "storage", "training"},
}


def modules():
    """{dotted module name: path} of every file in lm/."""
    out = {}
    for root, _, files in os.walk(LM):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = \
                    os.path.join(root, f)
    return out


def imports(path, name):
    """The lm modules `path` imports anywhere (top level or inside functions)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lm"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "lm":
                continue
            for a in node.names:  # `from lm.x import y`: y may be a module of lm.x
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in found if m in MODULES}


MODULES = modules()
GRAPH = {name: imports(path, name) for name, path in MODULES.items()}


def part(module):
    """'training' for lm.training.trainer, 'train' (an entry point) for lm.train."""
    return module.split(".")[1] if module != "lm" else "lm"


def test_top_level_holds_only_entry_points_and_subpackages():
    top = {n.split(".")[1] for n in MODULES if n.count(".") == 1}
    packages = {n.split(".")[1] for n in MODULES if n.count(".") >= 2}
    assert top - packages <= ENTRY_POINTS | SHARED_CLI, top - packages - ENTRY_POINTS
    assert packages <= set(ALLOWED), packages - set(ALLOWED)


def test_the_library_never_imports_a_command_line_module():
    for name, deps in GRAPH.items():
        if part(name) in ALLOWED:
            bad = {d for d in deps if part(d) in ENTRY_POINTS | SHARED_CLI}
            assert not bad, f"{name} imports {bad}"


def test_subpackages_import_only_downwards():
    for name, deps in GRAPH.items():
        p = part(name)
        if p in ALLOWED:
            bad = {d for d in deps if part(d) != p and part(d) not in ALLOWED[p]}
            assert not bad, f"{name} ({p}) imports {bad}"


def test_no_import_cycles_among_files():
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for d in GRAPH[n]:
            if state.get(d) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack + [n, d]))
            if d not in state:
                visit(d, stack + [n])
        state[n] = "done"

    for n in GRAPH:
        if n not in state:
            visit(n, [])


def test_entry_points_choose_threads_before_numpy_loads():
    code = ("import sys, lm, lm.cli, lm.config, lm.training, lm.data, lm.text, lm.storage; "
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True,
                         text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


def test_every_cli_help_starts_with_its_own_text(tmp_path):
    """`--help` opens with the tool's name and summary: no fire `INFO:` line before it."""
    from conftest import run_module

    for module, args in [("lm.train", []), ("lm.sample", []), ("lm.evaluate", []),
                         ("lm.plot", []), ("lm.sentiment", ["train"]),
                         ("lm.sentiment", ["predict"]), ("lm.sentiment", ["evaluate"]),
                         ("lm.export", []), ("lm.import_torch", []),
                         ("lm.diagnose", ["gradients"]), ("lm.diagnose", ["recall"]),
                         ("lm.seq2seq", ["train"]), ("lm.seq2seq", ["predict"]),
                         ("lm.seq2seq", ["evaluate"])]:
        proc = run_module(module, [*args, "--help"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "INFO" not in proc.stdout + proc.stderr
        first = proc.stdout.splitlines()[:2]
        assert first[0] == "NAME" and first[1].strip().startswith(
            f"python -m {module} {' '.join(args)}".strip()), first


def test_train_flags_and_their_help_come_from_the_config_dataclass():
    import dataclasses
    import inspect

    from lm.config.training import TrainConfig
    from lm.train import main

    params = inspect.signature(main).parameters
    assert [f.name for f in dataclasses.fields(TrainConfig)] == \
        [n for n in params if n != "threads"]
    assert "  log_every: log the training loss to metrics.jsonl" in main.__doc__
