"""Run directories written by lm 0.1.0 (tests/fixtures/runs_v0_1, see its README) still
load, sample, evaluate, predict and resume, with the numbers they gave then."""
import os
import shutil

import pytest

from conftest import metrics, run_module
from lm.storage.checkpoint import load_arrays

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "runs_v0_1")


@pytest.fixture
def old(tmp_path):
    """A copy of the fixture runs and their corpora (the tests write into them)."""
    for name in os.listdir(FIXTURES):
        src = os.path.join(FIXTURES, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, tmp_path / name)
    return tmp_path


def expected(old, run, name):
    return (old / run / f"expected_{name}.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("run,args", [
    ("lm_char", ["--start", "The ", "--length", 40, "--seed", 3]),
    ("lm_word_gru", ["--start", "The", "--length", 10, "--seed", 3]),
    ("lm_lines_rnn", ["--length", 5, "--seed", 3])])
def test_old_language_models_sample_the_same_text(old, run, args):
    proc = run_module("lm.sample", ["--checkpoint", run, *args], old)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected(old, run, "sample")


def test_old_language_model_evaluates_to_the_same_loss(old):
    proc = run_module("lm.evaluate", ["tiny.txt", "--checkpoint", "lm_char"], old)
    assert proc.returncode == 0, proc.stderr
    want = {line.split()[0]: line.split()[1] for line in
            expected(old, "lm_char", "evaluate").splitlines() if line.split()[0] in
            ("loss", "perplexity", "bits")}
    got = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()
           if line.split()[0] in want}
    assert got == want


@pytest.mark.parametrize("run", ["sentiment_lstm", "sentiment_bigru"])
def test_old_classifiers_predict_the_same(old, run):
    proc = run_module("lm.sentiment", ["predict", "--checkpoint", run, "not bad at all",
                                       "terrible"], old)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected(old, run, "predict")


@pytest.mark.parametrize("run,corpus,steps", [("lm_char", "tiny.txt", 6),
                                              ("lm_word_gru", "tiny.txt", 4),
                                              ("lm_lines_rnn", "names.txt", 5)])
def test_old_language_models_resume(old, run, corpus, steps):
    proc = run_module("lm.train", [corpus, "--resume", "--out_dir", run, "--max_steps",
                                   steps + 3], old)
    assert proc.returncode == 0, proc.stderr
    assert f"resumed at step {steps}" in proc.stdout
    assert int(load_arrays(old / run / "last.safetensors")["state/step"]) == steps + 3
    assert metrics(old / run, "eval")[-1]["step"] == steps + 3


def test_old_classifier_resumes_from_its_epoch(old):
    proc = run_module("lm.sentiment", ["train", "--resume", "--out_dir", "sentiment_lstm",
                                       "--max_epochs", 5], old)
    assert proc.returncode == 0, proc.stderr
    assert "from lm 0.1" in proc.stdout
    rows = metrics(old / "sentiment_lstm", "eval")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert int(load_arrays(old / "sentiment_lstm" / "last.safetensors")["state/step"]) == 30
    again = run_module("lm.sentiment", ["predict", "--checkpoint", "sentiment_lstm", "good"],
                       old)
    assert again.returncode == 0, again.stderr


def test_evaluate_prints_bits_per_char_at_every_level(old):
    """bits per char = total loss in bits / the file's characters, for a word model too."""
    import math

    proc = run_module("lm.evaluate", ["tiny.txt", "--checkpoint", "lm_word_gru"], old)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
             if line.strip() and not line.startswith(" ")}
    loss, tokens = float(lines["loss"][1]), int(lines["file"][2].replace(",", ""))
    chars = len((old / "tiny.txt").read_text(encoding="utf-8"))
    assert lines["bits"][2:] == ["per", "char"]
    assert float(lines["bits"][1]) == pytest.approx(loss * tokens / math.log(2) / chars,
                                                    abs=2e-4)
