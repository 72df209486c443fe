"""Hostile run directories and sizes: lm never writes through a symbolic link, never
writes into a folder that is not an lm run, refuses a model that cannot fit in memory
before allocating it, and refuses a vocabulary the weights cannot hold before parsing it."""
import json
import os
import shutil
import time
import tracemalloc

import pytest

from conftest import TINY_LM as TINY, assert_clean_error, quiet, run_module, tiny_lm_run
from lm.config.sentiment import SentimentConfig
from lm.config.training import TrainConfig
from lm.models.memory import (MemoryEstimate, NotEnoughMemory, check_memory, count_params,
                              estimate_memory)
from lm.storage.atomic import AtomicWriteError, append_jsonl, write_json
from lm.storage.checkpoint import CheckpointError, load_checkpoint, read_vocab
from lm.storage.run_dir import RUN_FILES, check_new_run_dir, check_run_files
from lm.training import classifier_task, lm_task

HUGE = dict(hidden_size=8192, num_layers=64)  # ~690 GiB to train: no machine has it


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A language-model run and a classifier run, both stopped at step 3 (tests copy them)."""
    root = tiny_lm_run(tmp_path_factory.mktemp("runs"), "lm")
    lines = [f"{'pos' if i % 2 else 'neg'}\t{'good fun' if i % 2 else 'bad dull'} {i}"
             for i in range(24)]
    (root / "d.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    classifier_task.train(SentimentConfig(data=str(root / "d.tsv"), out_dir=str(root / "clf"),
                                          embed_size=4, hidden_size=4, max_steps=3,
                                          min_count=1), log=quiet)
    return root


@pytest.fixture
def copy(runs, tmp_path):
    def make(name):
        shutil.copytree(runs / name, tmp_path / name)
        shutil.copy(runs / "c.txt", tmp_path / "c.txt")
        shutil.copy(runs / "d.tsv", tmp_path / "d.tsv")
        return tmp_path / name
    return make


def resume_lm(run):
    return lm_task.train(TrainConfig(out_dir=str(run), resume=True, max_steps=6),
                         given={"resume", "out_dir", "max_steps"}, log=quiet)


def resume_clf(run):
    return classifier_task.train(SentimentConfig(out_dir=str(run), resume=True, max_steps=6),
                                 given={"resume", "out_dir", "max_steps"}, log=quiet)


# ---- symbolic links: never written through -----------------------------------------

def test_append_refuses_a_link_and_the_target_is_unchanged(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\nlast line")
    (tmp_path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(AtomicWriteError, match="symbolic link"):
        append_jsonl(tmp_path / "metrics.jsonl", {"step": 1})
    assert victim.read_text() == "precious\nlast line"


def test_append_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "metrics.jsonl")
    with pytest.raises(AtomicWriteError, match="not a regular file"):
        append_jsonl(tmp_path / "metrics.jsonl", {"step": 1})


def test_atomic_write_replaces_a_link_never_writes_through_it(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    (tmp_path / "config.json").symlink_to(victim)
    write_json(tmp_path / "config.json", {"a": 1})
    assert victim.read_text() == "{}"
    assert not os.path.islink(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}


@pytest.mark.parametrize("name", RUN_FILES)
def test_every_run_file_that_is_a_link_is_refused(tmp_path, name):
    (tmp_path / "elsewhere").write_text("x")
    (tmp_path / name).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="symbolic link"):
        check_run_files(tmp_path)


@pytest.mark.parametrize("kind", ["lm", "clf"])
def test_resume_refuses_a_linked_metrics_file(copy, kind):
    run = copy(kind)
    victim = run.parent / "victim.txt"
    victim.write_text("line one\nno newline at the end")
    os.unlink(run / "metrics.jsonl")
    (run / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        (resume_lm if kind == "lm" else resume_clf)(run)
    assert victim.read_text() == "line one\nno newline at the end"


def test_train_cli_refuses_a_linked_run_file(copy):
    run = copy("lm")
    victim = run.parent / "victim.txt"
    victim.write_text("keep")
    os.unlink(run / "curves.png")
    (run / "curves.png").symlink_to(victim)
    proc = run_module("lm.train", ["--resume", "--out_dir", run, "--max_steps", 6], run.parent)
    assert_clean_error(proc, "curves.png is a symbolic link")
    assert victim.read_text() == "keep"


# ---- folders that are not lm runs ---------------------------------------------------

def test_a_folder_that_is_not_an_lm_run_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(ValueError, match="not an lm run.*todo.txt"):
        check_new_run_dir(str(tmp_path / "notes"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"theirs": true}')
    with pytest.raises(ValueError, match="not an lm run.*config.json"):
        check_new_run_dir(str(tmp_path / "other"))
    (tmp_path / "half").mkdir()  # lm's own names, but no lm config: not lm's
    (tmp_path / "half" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="not an lm run"):
        check_new_run_dir(str(tmp_path / "half"))


def test_empty_folders_and_runs_that_never_saved_are_accepted(tmp_path, copy):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".x.tmp-1-0123abcd").write_text("")  # a stale temporary file
    check_new_run_dir(str(tmp_path / "empty"))
    run = copy("lm")
    for name in ("last.safetensors", "best.safetensors"):
        os.unlink(run / name)
    check_new_run_dir(str(run))  # an lm run that stopped before its first checkpoint
    lm_task.train(TrainConfig(**TINY, corpus=str(run.parent / "c.txt"), out_dir=str(run),
                              max_steps=3), log=quiet)
    steps = [json.loads(x)["step"] for x in open(run / "metrics.jsonl")]
    assert steps == sorted(steps)  # its old log was dropped, not appended to


@pytest.mark.parametrize("module,args", [
    ("lm.train", ["c.txt", "--max_steps", 1]),
    ("lm.sentiment", ["train", "d.tsv", "--max_steps", 1]),
])
def test_training_clis_refuse_a_foreign_out_dir(copy, module, args):
    root = copy("lm").parent
    (root / "theirs").mkdir()
    (root / "theirs" / "config.json").write_text('{"mine": 1}')
    proc = run_module(module, [*args, "--out_dir", "theirs"], root)
    assert_clean_error(proc, "not an lm run")
    assert (root / "theirs" / "config.json").read_text() == '{"mine": 1}'
    assert os.listdir(root / "theirs") == ["config.json"]


def test_plot_never_replaces_a_file_that_is_not_a_png(runs, tmp_path):
    from lm.training.curves import plot_runs
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(ValueError, match="not a PNG"):
        plot_runs([str(runs / "lm")], str(notes))
    assert notes.read_text() == "my notes"
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n old figure")
    plot_runs([str(runs / "lm")], str(tmp_path / "a.png"))  # a PNG may be redrawn
    assert (tmp_path / "a.png").stat().st_size > 1000


# ---- memory estimated before allocating ---------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_parameter_count_is_exact(cell):
    from lm.models.classifier import SentimentClassifier
    from lm.models.language_model import LanguageModelRNN
    for layers in (1, 3):
        for tie in (False, True):
            m = LanguageModelRNN(11, 5 if tie else 7, 5, cell=cell, num_layers=layers,
                                 tie_weights=tie)
            assert count_params(m.config())[0] == m.num_params()
        for bi in (False, True):
            c = SentimentClassifier.build(13, 6, 5, cell=cell, num_layers=layers,
                                          bidirectional=bi, num_classes=3)
            assert count_params(c.config())[0] == c.num_params()
    bag = SentimentClassifier.build(13, 6, 5, cell="bag", num_classes=4)
    assert count_params(bag.config())[0] == bag.num_params()
    adaptive = LanguageModelRNN(3000, 8, 16, cell=cell, softmax="adaptive")
    assert count_params(adaptive.config())[0] == adaptive.num_params()
    for conv in ("cnn", "cnn-lstm"):
        c = SentimentClassifier.build(13, 6, 5, cell=conv, num_classes=3, filters=7,
                                      kernel_size=4)
        assert count_params(c.config())[0] == c.num_params()


def test_the_estimate_covers_what_training_allocates():
    """Weights, gradients and Adam's moments of a 1-layer LSTM: the estimate is at least
    their real size, and the refusal names the size asked and the memory available."""
    from lm.models.language_model import LanguageModelRNN
    from lm.training.optim import Adam
    model = LanguageModelRNN(50, 16, 64, cell="lstm")
    Adam(model, 1e-3)
    real = 4 * sum(p.size for p in model.params.values())  # weights (float32)
    est = estimate_memory(model.config(), "float32", 8, 16, training=True)
    assert est.weights >= real and est.training >= 3 * real and est.activations > 0
    with pytest.raises(NotEnoughMemory, match=r"needs about .* but only 1\.0 KiB is available"):
        check_memory(est, "this model", available=1024)
    check_memory(MemoryEstimate(1, 0, 1), "tiny", available=1024)


@pytest.mark.parametrize("make", [
    lambda root: lm_task.setup(TrainConfig(**{**TINY, **HUGE}, corpus=str(root / "c.txt"),
                                           out_dir=str(root / "new"))),
    lambda root: classifier_task.setup(SentimentConfig(data=str(root / "d.tsv"), **HUGE,
                                                       out_dir=str(root / "new")), log=quiet),
])
def test_training_a_model_too_big_is_refused_before_allocating(copy, make):
    root = copy("lm").parent
    copy("clf")
    tracemalloc.start()
    try:
        with pytest.raises(NotEnoughMemory, match="needs about .* GiB .* available"):
            make(root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    assert not (root / "new").exists()


def test_train_cli_refuses_65536_units_with_the_sizes(copy):
    root = copy("lm").parent
    t0 = time.monotonic()
    proc = run_module("lm.train", ["c.txt", "--hidden_size", 65536, "--num_layers", 64,
                                   "--out_dir", "big"], root)
    assert_clean_error(proc, "needs about", "TiB", "available", "--hidden_size")
    assert time.monotonic() - t0 < 30 and not (root / "big").exists()


@pytest.mark.parametrize("kind", ["lm", "clf"])
def test_a_run_too_big_for_memory_is_refused_before_loading(copy, kind):
    """sample/evaluate (lm) and predict/evaluate (classifier) on a run whose config.json
    claims a model no machine holds: refused from the config, nothing allocated."""
    from lm.models.load import load_classifier, load_language_model
    run = copy(kind)
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"].update(hidden_size=65536, num_layers=64)
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises((NotEnoughMemory, CheckpointError),
                       match="needs about|implies at least"):
        (load_language_model if kind == "lm" else load_classifier)(str(run))


def test_a_classifier_with_two_billion_classes_is_refused(copy):
    from lm.models.load import load_classifier
    run = copy("clf")
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["num_classes"] = 2147483647
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"num_classes must be in \[1, 100\]"):
        load_classifier(str(run))


def test_memory_error_is_one_line_at_the_cli_boundary(capsys):
    from lm.cli import run_cli

    def main():
        raise MemoryError("Unable to allocate 128. GiB")
    with pytest.raises(SystemExit) as e:
        run_cli(main, [])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory (Unable to allocate")


# ---- vocabularies the weights cannot hold -------------------------------------------

def test_a_five_million_token_vocab_is_refused_fast_and_small(copy):
    run = copy("lm")
    (run / "vocab.json").write_bytes(b'{"format": "lm.vocab", "itos": [' +
                                     b'"ab",' * 5_000_000 + b'"z"]}')
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(CheckpointError, match="at least 4,99.* tokens"):
            load_checkpoint(run)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - t0 < 2.0
    assert peak < 3 * os.path.getsize(run / "vocab.json")  # the bytes, never 5M strings


@pytest.mark.parametrize("reader", ["load", "resume_lm", "init_from", "resume_clf"])
def test_every_vocab_reader_checks_the_size_first(copy, reader):
    run = copy("clf" if reader == "resume_clf" else "lm")
    v = json.loads((run / "vocab.json").read_text())
    v["itos"] += [f"w{i}" for i in range(1000)]
    (run / "vocab.json").write_text(json.dumps(v))
    with pytest.raises(CheckpointError, match="at least .* tokens but config.json says"):
        if reader == "load":
            load_checkpoint(run)
        elif reader == "resume_lm":
            resume_lm(run)
        elif reader == "resume_clf":
            resume_clf(run)
        else:
            lm_task.setup(TrainConfig(**TINY, corpus=str(run.parent / "c.txt"),
                                      init_from=str(run), out_dir=str(run.parent / "new")))
    assert read_vocab  # the one reader all four go through


def test_a_vocab_size_the_checkpoint_cannot_hold_is_refused_before_the_vocab(copy):
    run = copy("lm")
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["vocab_size"] = 10**9
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "vocab.json").write_text("not even read")
    with pytest.raises(CheckpointError, match="implies at least 16,000,000,160 weights .* holds"):
        load_checkpoint(run)


def test_predict_bounds_each_text_and_says_so(runs):
    import io
    from lm.sentiment import stdin_lines
    stream = io.StringIO("a" * 1_000_000 + "\nshort\n" + "b" * 50)
    assert [len(x) for x in stdin_lines(stream, 1000)] == [1000, 5, 50]
    proc = run_module("lm.sentiment", ["predict", "--checkpoint", runs / "clf"], runs,
                      stdin="good " * 400_000 + "\nbad dull\n")
    assert proc.returncode == 0, proc.stderr
    assert "warning: text 1 is long: classified on its first 10,000 tokens" in proc.stderr
    labels = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert len(labels) == 2 and set(labels) <= {"neg", "pos"}  # the run's own class names
