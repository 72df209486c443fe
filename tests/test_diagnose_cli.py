"""`python -m lm.diagnose`: the recall task (data, training, exact resume, Ctrl-C) and the
gradient figure of fresh models and of every kind of run, through subprocess; bad input
is one `error:` line and exit 2."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import assert_clean_error, cli_env, corpus_text, run_module
from lm.config.recall import RecallConfig
from lm.data.recall import RecallBatcher, held_out, recall_examples, recall_vocab
from lm.storage.checkpoint import load_arrays

PNG = b"\x89PNG\r\n\x1a\n"
TINY = dict(hidden_size=8, embed_size=4, length=4, symbols=3, epoch_steps=5, val_size=20,
            batch_size=8, log_every=1)


def quiet(**kw):
    return dict(log=lambda line: None, progress=False, **kw)


def test_recall_examples_put_the_symbol_first_and_noise_after():
    ids, labels = recall_examples(np.random.default_rng(0), 50, 7, 4)
    assert ids.shape == (50, 8) and labels.shape == (50,)
    assert (ids[:, 0] == labels + 1).all() and set(labels) == {0, 1, 2, 3}
    assert ids[:, 1:].min() >= 5 and ids[:, 1:].max() <= 8  # noise: a..d
    vocab = recall_vocab(4)
    assert vocab.itos == ["<unk>", "A", "B", "C", "D", "a", "b", "c", "d"]
    val = held_out(7, 4, 10, seed=0)
    assert val.texts[0][0] in "ABCD" and val.texts[0][1:].islower()
    b = RecallBatcher(16, 7, 4, seed=0, epoch_steps=3)
    first = [b.next_batch().inputs for _ in range(4)]
    b2 = RecallBatcher(16, 7, 4, seed=0, epoch_steps=3)
    b2.load_state_dict(b.state_dict())
    assert not any((first[i] == first[j]).all() for i in range(4) for j in range(i))  # fresh
    assert (b2.next_batch().inputs == b.next_batch().inputs).all()  # resumes by position
    assert not (held_out(7, 4, 16, 0).ids[0] == first[0][0]).all()


def test_recall_is_learnt_at_a_short_distance(tmp_path):
    from lm.diagnostics.recall import train

    cfg = RecallConfig(cell="gru", length=3, epoch_steps=40, max_epochs=3, val_size=200,
                       out_dir=str(tmp_path / "r"))
    result, best = train(cfg, **quiet())
    assert result.reason == "max_epochs" and best["val_acc"] >= 0.95


def test_lstm_forget_bias_is_set_at_initialisation():
    from lm.diagnostics.recall import build_model

    m = build_model(RecallConfig(cell="lstm", hidden_size=5, num_layers=2, forget_bias=2.5))
    for i in range(2):
        b = m.params[f"rnn{i}.b"]
        assert (b[5:10] == 2.5).all() and (b[:5] != 2.5).all()


def test_gradients_of_fresh_models(tmp_path):
    proc = run_module("lm.diagnose", ["gradients", "--length", "12", "--batch_size", "4",
                                      "--out", "g.png"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "g.png").read_bytes().startswith(PNG)
    lines = proc.stdout.splitlines()
    assert lines[0] == "wrote g.png"
    for cell in ("rnn", "gru", "lstm"):
        line = next(x for x in lines if x.strip().startswith(f"{cell} layer 1:"))
        ratio = float(line.split(", ")[2].split()[0])  # norm(10) / norm(0)
        assert 0 < ratio < 0.5  # a fresh model's gradient fades with distance


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run of each kind: recall, language model, classifier."""
    from lm.config.sentiment import SentimentConfig
    from lm.config.training import TrainConfig
    from lm.diagnostics.recall import train as train_recall
    from lm.training.classifier_task import train as train_classifier
    from lm.training.lm_task import train as train_lm

    d = tmp_path_factory.mktemp("runs")
    train_recall(RecallConfig(**TINY, cell="rnn", max_epochs=1, out_dir=str(d / "recall")),
                 **quiet())
    (d / "c.txt").write_text(corpus_text(300), encoding="utf-8")
    train_lm(TrainConfig(corpus=str(d / "c.txt"), embed_size=4, hidden_size=8, num_layers=2,
                         cell="gru", seq_length=8, batch_size=2, max_steps=2, eval_every=2,
                         sample_length=0, out_dir=str(d / "lm")), **quiet())
    rows = [f"{i % 2}\t{'good fine nice' if i % 2 else 'bad awful poor'} words {i}"
            for i in range(40)]
    (d / "s.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    train_classifier(SentimentConfig(data=str(d / "s.tsv"), embed_size=4, hidden_size=4,
                                     max_steps=2, out_dir=str(d / "sent")), **quiet())
    return d


@pytest.mark.parametrize("kind, args, what", [
    ("recall", ["--length", "9"], "held-out recall sequences, distance 9"),
    ("lm", ["--length", "6", "--batch_size", "3"], "3 validation windows of 6 tokens"),
    ("sent", [], "longest texts of"),
])
def test_gradients_of_a_run_go_into_its_directory(runs, tmp_path, kind, args, what):
    proc = run_module("lm.diagnose", ["gradients", "--checkpoint", runs / kind, *args],
                      tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = runs / kind / "gradients.png"
    assert proc.stdout.splitlines()[0] == f"wrote {out}"
    assert out.read_bytes().startswith(PNG)
    assert what in proc.stdout
    assert ("layer 2:" in proc.stdout) == (kind == "lm")


def test_recall_cli_trains_refuses_to_overwrite_and_resumes_exactly(tmp_path):
    common = ["--cell", "lstm", "--length", "3", "--hidden_size", "6", "--epoch_steps", "4",
              "--val_size", "20", "--dtype", "float64"]
    whole = run_module("lm.diagnose", ["recall", *common, "--max_epochs", "2",
                                       "--out_dir", "whole"], tmp_path)
    assert whole.returncode == 0, whole.stderr
    half = ["recall", *common, "--max_epochs", "1", "--out_dir", "r"]
    proc = run_module("lm.diagnose", half, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "best held-out accuracy" in proc.stdout
    assert "resume    python -m lm.diagnose recall --resume --out_dir r" in proc.stdout
    assert_clean_error(run_module("lm.diagnose", half, tmp_path), "--resume", "--out_dir")
    more = run_module("lm.diagnose", ["recall", "--resume", "--out_dir", "r",
                                      "--max_epochs", "2"], tmp_path)
    assert more.returncode == 0, more.stderr
    assert "stopped at step 8" in more.stdout
    a = load_arrays(str(tmp_path / "whole" / "last.safetensors"))
    b = load_arrays(str(tmp_path / "r" / "last.safetensors"))
    for k in a:
        if k.startswith("param/"):
            assert np.array_equal(a[k], b[k]), k  # bit-identical in float64


def test_ctrl_c_saves_and_exits_130(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "lm.diagnose", "recall", "--length", "3",
                             "--max_epochs", "1000", "--log_every", "1", "--out_dir", "r"],
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "r" / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert int(load_arrays(str(tmp_path / "r" / "last.safetensors"))["state/step"]) >= 1


@pytest.mark.parametrize("args, fragments", [
    ([], ["no command"]),
    (["plot"], ["unknown command 'plot'"]),
    (["gradients", "--cell", "tanh"], ["--cell", "lstm"]),
    (["gradients", "--length", "0"], ["--length"]),
    (["gradients", "--out", "g.txt"], ["--out", ".png"]),
    (["gradients", "--out", "adir.png"], ["not a file"]),
    (["gradients", "--out", "notes.png"], ["not a PNG image"]),
    (["gradients", "--lenght", "5"], ["unknown flag --lenght", "--length?"]),
    (["gradients", "--checkpoint", "nowhere"], ["nowhere", "does not exist"]),
    (["gradients", "--checkpoint", "empty"], ["holds no checkpoint"]),
    (["gradients", "--checkpoint", "r", "--cell", "gru"], ["--cell", "fresh models"]),
    (["gradients", "--which", "last"], ["--which", "--checkpoint"]),
    (["recall", "--length", "0"], ["--length"]),
    (["recall", "--symbols", "27"], ["--symbols"]),
    (["recall", "--resume", "--out_dir", "nowhere"], ["--resume", "nowhere"]),
    (["recall", "--resume", "--out_dir", "r", "--length", "7"], ["--length"]),
])
def test_bad_input_is_one_line_exit_2(runs, tmp_path, args, fragments):
    (tmp_path / "adir.png").mkdir()
    (tmp_path / "notes.png").write_text("my notes")
    (tmp_path / "empty").mkdir()
    os.symlink(runs / "recall", tmp_path / "r")
    assert_clean_error(run_module("lm.diagnose", args, tmp_path), *fragments)


def test_bad_input_about_runs(runs, tmp_path):
    assert_clean_error(run_module("lm.diagnose", ["gradients", "--checkpoint", runs / "sent",
                                                  "--length", "5"], tmp_path), "--length")
    moved = tmp_path / "lm"
    os.symlink(runs / "lm", moved)
    (runs / "c.txt").rename(runs / "gone.txt")
    try:
        assert_clean_error(run_module("lm.diagnose", ["gradients", "--checkpoint", moved],
                                      tmp_path), "corpus", "not there")
    finally:
        (runs / "gone.txt").rename(runs / "c.txt")


def test_help_opens_with_each_commands_own_text(tmp_path):
    for command in ("gradients", "recall"):
        proc = run_module("lm.diagnose", [command, "--help"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        first = proc.stdout.splitlines()[:2]
        assert first[0] == "NAME" and first[1].strip().startswith(
            f"python -m lm.diagnose {command} - "), first
    from lm.diagnose import recall

    assert "  length: distance: noise steps between" in recall.__doc__  # the field's comment
