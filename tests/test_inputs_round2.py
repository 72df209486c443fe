"""Bad inputs, round two: labels, text encodings, files that are not regular files, extra
positional arguments, metrics rows with wrong types, zero-sized arrays of impossible shape,
and the bounded validation of --eval_tokens. Each is one clear error, never a hang, a
traceback or a silently odd run."""
import io
import json
import os
import struct
import threading
import time
import zipfile

import numpy as np
import pytest

from conftest import assert_clean_error, run_module
from lm.config.checks import check_encoding
from lm.config.sentiment import SentimentConfig
from lm.config.training import TrainConfig
from lm.text.files import read_text
from lm.text.labeled import MAX_CLASSES, read_labeled


def write(tmp_path, text, name="d.tsv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


# ---- labels: the distinct strings found, 2 to 100 of them -----------------------------

def test_labels_are_the_distinct_strings_found(tmp_path):
    t0 = time.monotonic()
    d = read_labeled(write(tmp_path, "99999999999999999999\ta\n0\tb\n100000000\tc\n"))
    assert time.monotonic() - t0 < 1.0  # no range(10**20) of names
    assert d.label_names == ["0", "100000000", "99999999999999999999"]
    assert d.labels.tolist() == [2, 0, 1]
    assert read_labeled(write(tmp_path, "0\ta\n2\tb\n")).label_names == ["0", "2"]
    assert read_labeled(write(tmp_path, "1\ta\n+0\tb\n01\tc\n")).labels.tolist() == [1, 0, 1]
    d = read_labeled(write(tmp_path, "pos\ta\nneg\tb\n"))
    assert d.label_names == ["neg", "pos"] and d.labels.tolist() == [1, 0]
    d = read_labeled(write(tmp_path, "".join(f"c{i:03d}\tt\n" for i in range(MAX_CLASSES))))
    assert d.num_classes == MAX_CLASSES


@pytest.mark.parametrize("text, where", [
    ("1\tgood\n0\tbad\textra\n", r"d\.tsv:2: 3 TAB-separated fields \(label '0'\)"),
    ('1\t"good"\n0\t"bad"\t"extra"\n', r"d\.tsv:2: 3 TAB-separated fields"),
    ("".join(f"c{i:03d}\tt\n" for i in range(200)),
     r"d\.tsv:101: label 'c100' makes more than 100 classes \(200 distinct"),
    ("1\tgood\n" + "x" * 65 + "\tbad\n", r"d\.tsv:2: label 'x{40}'\.\.\. is longer than 64"),
    ("1\tgood\n" * 20 + "bad\u200e\tbad\n",
     r"d\.tsv:21: label 'bad\\u200e' holds control characters"),
    ("99999999999999999999\tgood\n", r"d\.tsv:1: every example has the label "
                                     r"'99999999999999999999'"),
])
def test_bad_labels_name_the_file_line_and_value(tmp_path, text, where):
    with pytest.raises(ValueError, match=where):
        read_labeled(write(tmp_path, text))


def test_sentiment_train_refuses_a_three_column_line(tmp_path):
    write(tmp_path, "1\tgood fun\n0\tbad\tdull\n1\tnice\n0\tawful\n")
    proc = run_module("lm.sentiment", ["train", "d.tsv", "--out_dir", "run"], tmp_path)
    assert_clean_error(proc, "d.tsv:2: 3 TAB-separated fields")
    assert not (tmp_path / "run").exists()


def test_a_run_with_garbled_class_names_is_refused(tmp_path):
    from lm.models.load import load_classifier
    from lm.storage.checkpoint import CheckpointError
    from lm.training import classifier_task
    write(tmp_path, "".join(f"{'pos' if i % 2 else 'neg'}\tw{i % 3}\n" for i in range(16)))
    classifier_task.train(SentimentConfig(data=str(tmp_path / "d.tsv"), embed_size=3,
                                          hidden_size=3, max_steps=1, min_count=1,
                                          out_dir=str(tmp_path / "run")), log=lambda s: None)
    assert load_classifier(str(tmp_path / "run"))[2]["data"]["classes"] == ["neg", "pos"]
    path = tmp_path / "run" / "config.json"
    cfg = json.loads(path.read_text())
    for classes in (["neg", "neg"], [1, 2], ["neg", "x" * 65], ["neg", "a\nb"]):
        cfg["data"]["classes"] = classes
        path.write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match="data.classes must be distinct names"):
            load_classifier(str(tmp_path / "run"))


# ---- encodings: only codecs that decode bytes to text --------------------------------

@pytest.mark.parametrize("name", ["rot13", "rot_13", "base64", "hex", "zlib", "bz2", "uu",
                                  "quopri", "undefined"])
def test_codecs_that_do_not_decode_bytes_to_text_are_refused(name, tmp_path):
    with pytest.raises(ValueError, match="is not a text encoding"):
        check_encoding("encoding", name)
    with pytest.raises(ValueError, match="--encoding: .* is not a text encoding"):
        TrainConfig(encoding=name).validate()
    with pytest.raises(ValueError, match="--encoding: .* is not a text encoding"):
        SentimentConfig(encoding=name).validate()
    with pytest.raises(ValueError, match="is not a text encoding"):  # lm.evaluate, prompts
        read_text(write(tmp_path, "hello", "t.txt"), encoding=name)


@pytest.mark.parametrize("name", ["utf-8", "latin-1", "utf-16", "cp1252", "ascii"])
def test_text_encodings_are_accepted(name):
    assert check_encoding("encoding", name)


def test_train_cli_refuses_rot13(tmp_path):
    write(tmp_path, "hello world " * 50, "c.txt")
    assert_clean_error(run_module("lm.train", ["c.txt", "--encoding", "rot13"], tmp_path),
                       "'rot13' is not a text encoding")


# ---- files that are not regular files -----------------------------------------------

def _reads_within(path, seconds=10.0):
    """read_text(path)'s ValueError message, failing (not hanging) if it blocks."""
    out = {}

    def target():
        try:
            read_text(path)
        except ValueError as e:
            out["error"] = str(e)
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"reading {path} blocked"
    return out.get("error", "")


def test_devices_and_fifos_are_not_regular_files(tmp_path):
    assert "/dev/zero is not a regular file (a character device)" in _reads_within("/dev/zero")
    assert "is not a regular file (a character device)" in _reads_within("/dev/null")
    os.mkfifo(tmp_path / "pipe")
    assert "is not a regular file (a named pipe)" in _reads_within(str(tmp_path / "pipe"))
    assert "is a directory" in _reads_within(str(tmp_path))


@pytest.mark.parametrize("module,args", [
    ("lm.train", ["pipe"]),
    ("lm.sentiment", ["train", "pipe"]),
])
def test_clis_refuse_a_fifo_without_blocking(tmp_path, module, args):
    os.mkfifo(tmp_path / "pipe")
    proc = run_module(module, args + ["--out_dir", "run"], tmp_path, timeout=60)
    assert_clean_error(proc, "pipe is not a regular file (a named pipe)")


# ---- extra positional arguments ------------------------------------------------------

def _mains():
    from lm import evaluate, plot, sample, sentiment, train
    return {"lm.train": train.main, "lm.sample": sample.main, "lm.evaluate": evaluate.main,
            "lm.sentiment train": sentiment.train, "lm.sentiment evaluate": sentiment.evaluate,
            "lm.sentiment predict": sentiment.predict, "lm.plot": plot.main}


@pytest.mark.parametrize("cli,argv,extra", [
    ("lm.train", ["a.txt", "b"], "'b'"),
    ("lm.train", ["a.txt", "--lowercase", "word"], "'word'"),
    ("lm.train", ["a.txt", "--level", "word", "gru"], "'gru'"),
    ("lm.sample", ["RUN", "dog"], "'RUN'"),
    ("lm.sample", ["--checkpoint", "RUN", "dog"], "'dog'"),
    ("lm.evaluate", ["f.txt", "RUN"], "'RUN'"),
    ("lm.sentiment train", ["d.tsv", "t.tsv"], "'t.tsv'"),
    ("lm.sentiment evaluate", ["d.tsv", "RUN"], "'RUN'"),
])
def test_extra_positional_arguments_are_refused(cli, argv, extra):
    from lm.cli import check_known_flags
    with pytest.raises(ValueError, match=f"unexpected argument {extra}"):
        check_known_flags(_mains()[cli], argv)


@pytest.mark.parametrize("cli,argv", [
    ("lm.train", ["a.txt", "--level", "word", "--lowercase"]),
    ("lm.train", ["--corpus", "a.txt", "--nolowercase", "--max_steps=3"]),
    ("lm.sample", ["--checkpoint", "RUN", "--start", "-1", "--top_k", "3"]),
    ("lm.evaluate", ["f.txt", "--checkpoint", "RUN"]),
    ("lm.sentiment predict", ["one", "two", "three", "--checkpoint", "RUN"]),
    ("lm.plot", ["a", "b", "c", "--out", "x.png"]),
])
def test_the_positional_arguments_a_command_takes_still_pass(cli, argv):
    from lm.cli import check_known_flags
    check_known_flags(_mains()[cli], argv)


def test_sample_cli_refuses_an_extra_word(tmp_path):
    assert_clean_error(run_module("lm.sample", ["RUN", "dog"], tmp_path),
                       "unexpected argument 'RUN'", "takes no positional arguments")


# ---- metrics rows with wrong types are garbled rows ----------------------------------

def test_rows_with_wrong_types_are_skipped_and_the_plot_is_drawn(tmp_path):
    from lm.training.curves import plot_runs
    from lm.training.metrics import read_metrics
    good = {"step": 10, "epoch": 0.5, "tokens": 640, "elapsed": 1.5, "lr": 0.003,
            "train_loss": 2.0, "val_loss": 2.1, "val_ppl": 8.2, "val_bpc": 3.0,
            "tok_per_s": 400.0}
    bad = [{**good, "elapsed": "x"}, {**good, "step": "3"}, {**good, "val_loss": [1]},
           {**good, "tokens": True}, {**good, "step": -1}, {**good, "final": "yes"},
           {**good, "lr": {"a": 1}}, [1, 2], "text"]
    lines = [json.dumps(r) for r in bad] + ['{"step": 5, "val_loss": NaN}',
                                            json.dumps(good), json.dumps({**good, "step": 20,
                                                                          "final": True})]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [10, 20]
    plot_runs([str(tmp_path)], str(tmp_path / "c.png"))  # what lm.plot calls
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    os.unlink(tmp_path / "metrics.jsonl")
    os.mkfifo(tmp_path / "metrics.jsonl")  # a FIFO is refused, never waited on
    with pytest.raises(ValueError, match="not a regular file"):
        read_metrics(str(tmp_path))


# ---- array is too big: the file is named ---------------------------------------------

def test_an_impossible_zero_sized_shape_names_the_file(tmp_path):
    from lm.storage.checkpoint import CheckpointError, load_arrays
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2147483648, " \
             "2147483648, 2147483648), }"
    header += " " * (118 - len(header)) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    path = tmp_path / "last.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("param/a.npy", npy)
    with pytest.raises(CheckpointError, match=r"last\.npz.*'param/a\.npy' .* too big"):
        load_arrays(str(path))
    from lm.storage.safe_tensors import _check_entries
    entry = {"dtype": "F32", "shape": [0, 2**31, 2**31, 2**31], "data_offsets": [0, 0]}
    with pytest.raises(CheckpointError, match=r"x\.safetensors.*'w' .* too big"):
        _check_entries({"w": entry}, 2**31, "x.safetensors")


# ---- --eval_tokens: a bound by default, and the banner says how many ------------------

def test_eval_tokens_defaults_to_a_million_and_the_banner_says_so(tmp_path):
    from lm.data.batchers import Lines
    from lm.training import lm_task
    from lm.training.evaluation import evaluate_loss, evaluated_tokens
    assert TrainConfig().eval_tokens == 1_000_000
    ids = np.arange(5_000_000) % 7
    assert evaluated_tokens(ids, 32, 64, 1_000_000) == 1_001_472  # whole windows
    assert evaluated_tokens(ids, 32, 64, 0) == 32 * (5_000_000 // 32 - 1)
    assert evaluated_tokens(ids[:1000], 4, 8, 1_000_000) == evaluated_tokens(ids[:1000], 4, 8, 0)
    lines = Lines.from_list([np.arange(1, 5)] * 10)   # 4 tokens + <eos> per line
    assert evaluated_tokens(lines, 4, 8, 12) == 10 and evaluated_tokens(lines, 4, 8, 0) == 50
    (tmp_path / "c.txt").write_text("the cat sat on the mat. " * 40)
    log = []
    lm_task.train(TrainConfig(corpus=str(tmp_path / "c.txt"), out_dir=str(tmp_path / "r"),
                              embed_size=4, hidden_size=8, seq_length=8, batch_size=2,
                              max_steps=2, eval_every=2, sample_length=0, eval_tokens=32),
                  log=log.append)
    banner = [line for line in log if line.startswith("eval ")]
    assert banner == ["eval    32 of 94 validation tokens every 2 steps (the first ones: "
                      "--eval_tokens, 0 = all)"], log

    class Uniform:  # a model whose loss is log(V) everywhere: evaluation sees the bound
        training = False

        def eval(self):
            pass

        def train(self, mode=True):
            pass

        def nll(self, x, targets, state=None, mask=None):  # the model contract's scorer
            count = x.size if mask is None else int(np.count_nonzero(mask))
            return count * np.log(7), count, None
    from lm.text.vocab import Vocab
    loss = evaluate_loss(Uniform(), lines, Vocab(["<unk>", "<bos>", "<eos>", "a", "b"],
                                                 specials=["<unk>", "<bos>", "<eos>"]),
                         4, 8, max_tokens=12)
    assert loss == pytest.approx(np.log(7))


def test_stdin_reading_is_bounded(tmp_path):
    from lm.sentiment import stdin_lines
    assert stdin_lines(io.StringIO(""), 10) == []
    assert stdin_lines(io.StringIO("x" * 25 + "\n\nab"), 10) == ["x" * 10, "", "ab"]
