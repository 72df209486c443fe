"""`python -m lm.sentiment` through subprocess: train/predict/evaluate, --init_from, clear
errors; and the targets on the real sentiment sets (skipped without LM_DATA_DIR)."""
import os

import numpy as np
import pytest

from conftest import NEG, POS, assert_clean_error, metrics, run_module, tiny_file
from lm.storage.checkpoint import load_arrays, read_json


def run(args, cwd, module="lm.sentiment", stdin=None, timeout=120):
    return run_module(module, args, cwd, stdin=stdin, timeout=timeout)


TINY = ["--embed_size", "6", "--hidden_size", "5", "--max_epochs", "30", "--batch_size", "4",
        "--min_count", "1", "--learning_rate", "0.05", "--dropout", "0"]


def test_train_predict_evaluate(tmp_path):
    data = tiny_file(tmp_path / "tiny.tsv")
    p = run(["train", data, "--test", data, "--cell", "gru", "--bidirectional",
             "--out_dir", "run", *TINY], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "train loss" in p.stdout and "test loss" in p.stdout
    run_dir = tmp_path / "run"
    for name in ("config.json", "vocab.json", "best.safetensors", "last.safetensors", "metrics.jsonl",
                 "curves.png"):
        assert (run_dir / name).exists(), name
    rows = metrics(run_dir, "eval")
    assert len(rows) == 30  # one evaluation per epoch
    for key in ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc",
                "test_loss", "test_acc"):
        assert all(key in r for r in rows), key
    assert rows[-1]["train_acc"] == 1.0 and rows[-1]["test_acc"] == 1.0
    config = read_json(run_dir / "config.json")
    assert config["kind"] == "sentiment" and config["model"]["bidirectional"] is True
    assert config["data"]["classes"] == ["negative", "positive"]
    assert "param/rnn0.fwd.Wx" in load_arrays(run_dir / "best.safetensors")

    p = run(["predict", "--checkpoint", "run", "i love it", "so awful", "1e3"], tmp_path)
    assert p.returncode == 0, p.stderr
    out = [line.split("\t") for line in p.stdout.strip().splitlines()]
    assert [o[0] for o in out[:2]] == ["positive", "negative"]
    assert out[2][2] == "1e3"  # the text exactly as typed, not fire's float
    assert all(0.5 <= float(o[1]) <= 1.0 for o in out)
    p2 = run(["predict", "--checkpoint", "run"], tmp_path, stdin="i love it\n\nso awful\n")
    assert p2.stdout.splitlines() == p.stdout.splitlines()[:2]  # stdin: same answers

    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("0\ti love it\n0\tso awful\n", encoding="utf-8")  # one class: allowed
    p = run(["evaluate", "--checkpoint", "run", wrong], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "accuracy 50.00% (1/2)" in p.stdout
    assert "negative         1         1" in p.stdout  # confusion row: true negative
    assert "true negative, predicted positive" in p.stdout and "i love it" in p.stdout


@pytest.mark.parametrize("cell", ["bag", "rnn", "lstm"])
def test_every_cell_learns_the_tiny_set(tmp_path, cell):
    data = tiny_file(tmp_path / "tiny.tsv")
    p = run(["train", data, "--cell", cell, "--pool", "mean", "--val_frac", "0",
             "--test_frac", "0", "--out_dir", "run", *TINY], tmp_path)
    assert p.returncode == 0, p.stderr
    assert metrics(tmp_path / "run", "eval")[-1]["train_acc"] == 1.0


def test_pos_neg_files(tmp_path):
    (tmp_path / "pos.txt").write_text("\n".join(POS) + "\n", encoding="utf-8")
    (tmp_path / "neg.txt").write_text("\n".join(NEG) + "\n", encoding="utf-8")
    p = run(["train", "pos.txt", "--neg", "neg.txt", "--cell", "bag", "--val_frac", "0",
             "--test_frac", "0", "--out_dir", "run", *TINY], tmp_path)
    assert p.returncode == 0, p.stderr
    assert metrics(tmp_path / "run", "eval")[-1]["train_acc"] == 1.0


def test_best_npz_holds_the_best_validation_epoch(tmp_path):
    from lm.models.load import load_classifier
    from lm.config.sentiment import SentimentConfig
    from lm.training.classifier_task import train
    from lm.training.evaluation import evaluate_classifier as evaluate

    data = tiny_file(tmp_path / "tiny.tsv")
    cfg = SentimentConfig(data=str(data), out_dir=str(tmp_path / "run"), cell="rnn",
                          val_frac=0.25, max_epochs=8, embed_size=5, hidden_size=4,
                          min_count=1, batch_size=4).validate()
    result, best_row = train(cfg, log=lambda s: None, progress=False)
    rows = metrics(tmp_path / "run", "eval")
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))  # the first of equals
    assert best_row["step"] == best["step"] == result.best_step
    model, vocab, config = load_classifier(tmp_path / "run")
    from lm.data.labeled import read_examples, split_indices, subset
    ex = read_examples(str(data))
    _, va, _ = split_indices(len(ex), 0.25, cfg.test_frac, cfg.seed)
    ev = evaluate(model, subset(ex.texts, ex.labels, va, vocab, True))
    assert ev["acc"] == best["val_acc"]
    assert abs(ev["loss"] - best["val_loss"]) < 1e-5


def test_init_from_loads_the_language_models_weights(tmp_path):
    text = " ".join((POS + NEG) * 4) + "\n"
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    p = run(["corpus.txt", "--level", "word", "--cell", "lstm", "--embed_size", "6",
             "--hidden_size", "5", "--max_steps", "3", "--eval_every", "3", "--seq_length",
             "8", "--batch_size", "4", "--sample_length", "0", "--out_dir", "lmrun"],
            tmp_path, module="lm.train")
    assert p.returncode == 0, p.stderr
    data = tiny_file(tmp_path / "tiny.tsv")
    p = run(["train", data, "--init_from", "lmrun", "--freeze_encoder", "--max_epochs", "2",
             "--out_dir", "cls"], tmp_path)
    assert p.returncode == 0, p.stderr
    lm_w = load_arrays(tmp_path / "lmrun" / "best.safetensors")
    cls_w = load_arrays(tmp_path / "cls" / "best.safetensors")
    lm_vocab = read_json(tmp_path / "lmrun" / "vocab.json")
    assert read_json(tmp_path / "cls" / "vocab.json")["itos"] == lm_vocab["itos"]
    row = lm_vocab["itos"].index(" love")  # the word tokeniser: a word carries its space
    np.testing.assert_array_equal(cls_w["param/embed.W"][row], lm_w["param/embed.W"][row])
    for name in ("embed.W", "rnn0.Wx", "rnn0.Wh", "rnn0.b"):  # frozen: all of it, exactly
        np.testing.assert_array_equal(cls_w[f"param/{name}"], lm_w[f"param/{name}"])
    assert cls_w["param/head.W"].shape == (5, 2)

    # not frozen, before training: the same rows; unknown words map to <unk>
    from lm.data.labeled import encode_texts
    from lm.models.load import copy_encoder_weights, load_lm_encoder
    from lm.models.classifier import SentimentClassifier
    cfg, vocab, enc = load_lm_encoder(tmp_path / "lmrun")
    model = SentimentClassifier.build(len(vocab), cfg["embed_size"], cfg["hidden_size"],
                                      cell=cfg["cell"])
    copy_encoder_weights(model, enc)
    np.testing.assert_array_equal(model.params["embed.W"][row], lm_w["param/embed.W"][row])
    ids = encode_texts([" love zebras"], vocab, drop_spaces=False)[0]
    assert ids.tolist() == [row, vocab.unk_id]  # the language model's tokeniser

    p = run(["train", data, "--init_from", "lmrun", "--hidden_size", "9", "--out_dir", "x"],
            tmp_path)
    assert_clean_error(p, "--hidden_size", "init_from")
    p = run(["train", data, "--init_from", "cls", "--out_dir", "x"], tmp_path)
    assert_clean_error(p, "sentiment run")


def test_clear_errors(tmp_path):
    (tmp_path / "empty.tsv").write_text("", encoding="utf-8")
    assert_clean_error(run(["train", "empty.tsv"], tmp_path), "empty")
    (tmp_path / "nolabel.tsv").write_text("1\tgood\njust some text\n", encoding="utf-8")
    assert_clean_error(run(["train", "nolabel.tsv"], tmp_path), "nolabel.tsv:2", "label")
    (tmp_path / "one.tsv").write_text("1\tgood\n1\tgreat\n", encoding="utf-8")
    assert_clean_error(run(["train", "one.tsv"], tmp_path), "two classes")
    assert_clean_error(run(["train", "missing.tsv"], tmp_path), "missing.tsv")
    data = tiny_file(tmp_path / "tiny.tsv")
    assert_clean_error(run(["train", data, "--cell", "transformer"], tmp_path), "--cell")
    assert_clean_error(run(["train", data, "--pool", "sum"], tmp_path), "--pool")
    assert_clean_error(run(["train", data, "--cell", "bag", "--bidirectional"], tmp_path),
                       "--bidirectional")
    assert_clean_error(run(["train", data, "--freeze_encoder"], tmp_path), "--init_from")
    assert_clean_error(run(["train", data, "--hiden_size", "3"], tmp_path), "--hidden_size")
    assert_clean_error(run(["predict", "--checkpoint", "nowhere", "hi"], tmp_path), "nowhere")
    assert_clean_error(run(["predict", "hi"], tmp_path), "--checkpoint")
    p = run(["classify", "hi"], tmp_path)
    assert p.returncode == 2 and "unknown command" in p.stderr


def data_dir():
    d = os.environ.get("LM_DATA_DIR")
    if not d:
        pytest.skip("LM_DATA_DIR not set: the sentiment sets live outside the repository")
    return os.path.join(os.path.abspath(d), "sentiment")  # the CLI runs in tmp_path


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_phrases_target_default_flags(tmp_path, cell):
    """Issue 4: phrases_train -> phrases_test 20/20, vanilla RNN and LSTM, default flags."""
    from lm.config.sentiment import SentimentConfig
    from lm.training.classifier_task import train

    d = data_dir()
    cfg = SentimentConfig(data=os.path.join(d, "phrases_train.tsv"), cell=cell,
                          test=os.path.join(d, "phrases_test.tsv"),
                          out_dir=str(tmp_path / "run")).validate()
    _, best = train(cfg, log=lambda s: None, progress=False)
    assert read_json(tmp_path / "run" / "config.json")["data"]["sizes"]["test"] == 20
    assert best["test_acc"] == 1.0
    assert max(r["train_acc"] for r in metrics(tmp_path / "run", "eval")) == 1.0  # all 51


@pytest.mark.slow
def test_cs5242_target_default_lstm(tmp_path):
    """cs5242 with every default (word-level LSTM): the 600/100/100 seeded split, >= 95%
    test accuracy, under 2 minutes of training."""
    d = data_dir()
    p = run(["train", os.path.join(d, "cs5242_corpus.tsv"), "--out_dir", "run"], tmp_path,
            timeout=300)
    assert p.returncode == 0, p.stderr
    assert "600 train, 100 validation, 100 test examples" in p.stdout
    rows = metrics(tmp_path / "run", "eval")
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert best["test_acc"] >= 0.95
    assert rows[-1]["elapsed"] < 120


def test_subcommand_help_names_the_subcommand(tmp_path):
    for command in ("train", "predict", "evaluate"):
        proc = run([command, "--help"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert f"python -m lm.sentiment {command}" in proc.stdout + proc.stderr
