"""`python -m lm.seq2seq` through subprocess: train -> predict -> evaluate on a tiny budget,
a pairs file, clear errors; exact resume and the target-accuracy stop through the Trainer."""
import numpy as np
import pytest

from conftest import assert_clean_error, metrics, run_module
from lm.storage.checkpoint import load_arrays, read_json

TINY = ["--digits", "2", "--num_questions", "400", "--hidden_size", "8", "--embed_size", "4",
        "--batch_size", "32", "--eval_every", "0"]


def run(args, cwd, stdin=None):
    return run_module("lm.seq2seq", args, cwd, stdin=stdin)


def test_train_predict_evaluate_addition(tmp_path):
    p = run(["train", "--task", "addition", *TINY, "--max_epochs", "2", "--out_dir", "run"],
            tmp_path)
    assert p.returncode == 0, p.stderr
    assert "exact" in p.stdout and "reached --max_epochs" in p.stdout
    run_dir = tmp_path / "run"
    for name in ("config.json", "vocab.json", "best.safetensors", "last.safetensors",
                 "metrics.jsonl", "curves.png"):
        assert (run_dir / name).exists(), name
    rows = metrics(run_dir, "eval")
    assert len(rows) == 2 and all("val_acc" in r and "val_char_acc" in r for r in rows)
    config = read_json(run_dir / "config.json")
    assert config["kind"] == "seq2seq" and config["data"] == {
        "task": "addition", "digits": 2, "sizes": {"train": 360, "val": 40}, "file": "",
        "path": ""}
    assert config["model"]["max_target_len"] == 4  # three characters and <eos>
    assert "param/dec.Wh" in load_arrays(run_dir / "best.safetensors")

    p = run(["predict", "--checkpoint", "run", "12+34", " 5 + 7"], tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["12+34", "5 + 7"]
    p2 = run(["predict", "--checkpoint", "run"], tmp_path, stdin="12+34\n\n5 + 7\n")
    assert p2.returncode == 0 and p2.stdout == p.stdout

    p = run(["evaluate", "--checkpoint", "run", "--max_errors", "2"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("held-out pairs: 40 pairs, exact match")
    assert "characters" in p.stdout

    for args, frag in [(["predict", "--checkpoint", "run", "123+4"], "at most 2 digits"),
                       (["predict", "--checkpoint", "nowhere", "1+2"], "does not exist"),
                       (["train", *TINY, "--out_dir", "run"], "already holds a trained run"),
                       (["train", "--decoder_input", "both"], "--decoder_input"),
                       (["train", "--task", "pairs"], "needs a source<TAB>target file"),
                       (["frobnicate"], "unknown command")]:
        assert_clean_error(run(args, tmp_path), frag)


def test_pairs_file_train_predict_and_errors(tmp_path):
    words = ["cat", "dog", "bird", "fish", "cow", "hen", "ant", "bee", "owl", "elk"]
    rows = [f"{w}\t{w[::-1].upper()}" for w in words * 3]
    (tmp_path / "rev.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    p = run(["train", "rev.tsv", "--hidden_size", "8", "--embed_size", "4", "--max_epochs", "1",
             "--val_frac", "0.2", "--out_dir", "rev", "--bidirectional", "--cell", "gru"],
            tmp_path)
    assert p.returncode == 0, p.stderr
    config = read_json(tmp_path / "rev" / "config.json")
    assert config["data"]["task"] == "pairs" and config["data"]["sizes"] == {"train": 24,
                                                                              "val": 6}
    p = run(["predict", "--checkpoint", "rev", "cat", "zebra"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert [line.split("\t")[0] for line in p.stdout.splitlines()] == ["cat", "zebra"]
    (tmp_path / "bad.tsv").write_text("a\tb\nno tab\n", encoding="utf-8")
    assert_clean_error(run(["train", "bad.tsv", "--out_dir", "bad"], tmp_path), "bad.tsv:2")
    assert not (tmp_path / "bad").exists()
    assert_clean_error(run(["evaluate", "--checkpoint", "rev", "bad.tsv"], tmp_path),
                       "bad.tsv:2: no TAB")


def _cfg(out_dir, **kw):
    from lm.config.seq2seq import Seq2SeqConfig

    base = dict(digits=2, num_questions=120, hidden_size=6, embed_size=4, batch_size=20,
                eval_every=2, log_every=1, dtype="float64", out_dir=str(out_dir),
                time_budget=0, target_acc=0)
    base.update(kw)
    return Seq2SeqConfig(**base)


@pytest.fixture
def no_curves(monkeypatch):
    """In-process runs skip drawing curves.png (the CLI test above draws it)."""
    from lm.training import trainer

    monkeypatch.setattr(trainer, "redraw_curves", lambda run_dir, log: None)


def test_resume_is_exact(tmp_path, no_curves):
    from lm.training.seq2seq_task import train

    quiet = dict(log=lambda s: None, progress=False)
    train(_cfg(tmp_path / "whole", max_steps=7), **quiet)
    train(_cfg(tmp_path / "part", max_steps=3), **quiet)
    train(_cfg(tmp_path / "part", max_steps=7, resume=True), given={"max_steps", "resume",
                                                                    "out_dir"}, **quiet)
    a = load_arrays(tmp_path / "whole" / "last.safetensors")
    b = load_arrays(tmp_path / "part" / "last.safetensors")
    for k in a:
        if k.startswith("param/"):
            assert np.array_equal(a[k], b[k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("elapsed", "tok_per_s",
                                                                   "final")} for r in rows]
    assert strip(metrics(tmp_path / "whole", "train")) == strip(metrics(tmp_path / "part",
                                                                        "train"))


def test_training_stops_at_the_target_accuracy(tmp_path, no_curves):
    from lm.training.seq2seq_task import train

    # 1-digit sums: 55 questions, learnt within a few hundred steps
    result, best = train(_cfg(tmp_path / "t", digits=1, num_questions=55, val_frac=0,
                              hidden_size=32, embed_size=8, batch_size=11, eval_every=20,
                              learning_rate=0.02, max_steps=3000, target_acc=1.0,
                              dtype="float32"), log=lambda s: None, progress=False)
    assert result.reason == "target" and result.step < 3000
    assert best["val_acc"] == 1.0


def test_train_help_comes_from_the_config(tmp_path):
    p = run(["train", "--help"], tmp_path)
    assert p.returncode == 0 and "INFO" not in p.stdout + p.stderr
    assert p.stdout.splitlines()[1].strip().startswith("python -m lm.seq2seq train")
    assert "--target_acc" in p.stdout and "stop once held-out exact-match accuracy" in p.stdout


def test_a_foreign_or_linked_out_dir_is_refused_and_left_alone(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "metrics.jsonl").symlink_to(victim)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"theirs": true}')
    for out_dir in (linked, foreign):
        proc = run_module("lm.seq2seq", ["train", "--task", "addition", "--digits", "1",
                                         "--max_steps", "2", "--out_dir", out_dir], tmp_path)
        assert_clean_error(proc, "is not an lm run")
    assert victim.read_text() == "keep"
    assert (foreign / "config.json").read_text() == '{"theirs": true}'


def test_resume_refuses_a_vocabulary_larger_than_the_weights(tmp_path, no_curves):
    import json

    from lm.storage.checkpoint import CheckpointError
    from lm.training.seq2seq_task import train

    quiet = dict(log=lambda s: None, progress=False)
    train(_cfg(tmp_path / "r", max_steps=2), **quiet)
    vocab = json.loads((tmp_path / "r" / "vocab.json").read_text())
    vocab["itos"] += [f"t{i}" for i in range(5000)]
    (tmp_path / "r" / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match="tokens but config.json says vocab_size"):
        train(_cfg(tmp_path / "r", max_steps=4, resume=True),
              given={"max_steps", "resume", "out_dir"}, **quiet)
