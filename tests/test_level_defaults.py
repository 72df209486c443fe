"""Defaults that depend on --level, and --softmax auto: one rule (lm.config.training),
recorded in config.json, listed by --help; runs saved before them keep their values."""
import json

import pytest

from conftest import corpus_text, run_module
from lm.config.training import (ADAPTIVE_ABOVE, LEVEL_DEFAULTS, OPTIMIZER_DEFAULTS, TrainConfig,
                                resume_config, train_config_from_json)


def test_each_level_gets_its_defaults():
    char, word = TrainConfig().validate(), TrainConfig(level="word").validate()
    for name, value in LEVEL_DEFAULTS["char"].items():
        assert getattr(char, name) == value, name
    assert (char.embed_size, char.hidden_size, char.seq_length, char.tokenizer) == \
        (64, 512, 64, "char")
    assert (word.embed_size, word.hidden_size, word.tie_weights, word.seq_length,
            word.batch_size, word.dropout, word.tokenizer, word.num_layers) == \
        (256, 256, True, 35, 20, 0.45, "lines", 2)
    assert (char.min_count, char.patience, word.min_count, word.patience) == (1, 1, 2, 1)
    assert (char.eval_every, word.eval_every) == (200, 100)
    # then the optimiser's: Adam at char level, plain SGD with a large step at word level
    assert (char.optimizer, char.learning_rate, char.grad_clip, char.lr_decay) == \
        ("adam", 3e-3, 5.0, 0.5)
    assert (word.optimizer, word.learning_rate, word.momentum, word.grad_clip,
            word.lr_decay) == ("sgd", 20.0, 0.0, 0.25, 0.25)


def test_the_optimizers_defaults_follow_the_optimizer_given():
    adam_words = TrainConfig(level="word", optimizer="adam").validate()
    assert (adam_words.learning_rate, adam_words.grad_clip, adam_words.lr_decay) == \
        (3e-3, 5.0, 0.5)
    sgd_chars = TrainConfig(optimizer="sgd", learning_rate=1.0).validate()
    assert (sgd_chars.learning_rate, sgd_chars.grad_clip, sgd_chars.lr_decay) == \
        (1.0, 0.25, 0.25)
    for name in OPTIMIZER_DEFAULTS["sgd"]:
        assert name not in LEVEL_DEFAULTS["word"]  # one rule per flag


def test_a_flag_given_keeps_its_value_and_the_rule_follows_it():
    c = TrainConfig(level="word", hidden_size=512).validate()
    assert (c.embed_size, c.tie_weights) == (512, True)  # embed = hidden, tied
    c = TrainConfig(level="word", embed_size=100).validate()
    assert (c.hidden_size, c.tie_weights) == (256, False)  # a tie needs embed == hidden
    assert TrainConfig(level="word", dropout=0.0).validate().dropout == 0.0


@pytest.mark.parametrize("vocab,tie,softmax,want", [
    (ADAPTIVE_ABOVE + 1, None, "auto", ("adaptive", False)),   # untied: its own weights
    (ADAPTIVE_ABOVE, None, "auto", ("full", True)),
    (ADAPTIVE_ABOVE + 1, True, "auto", ("full", True)),        # --tie_weights asked for
    (100, None, "adaptive", ("adaptive", False)),
])
def test_softmax_auto_by_vocabulary_size(vocab, tie, softmax, want):
    c = TrainConfig(level="word", tie_weights=tie, softmax=softmax).validate()
    assert (c.resolve_softmax(vocab).softmax, c.tie_weights) == want


def test_tied_adaptive_is_refused():
    with pytest.raises(ValueError, match="--tie_weights needs --softmax full"):
        TrainConfig(level="word", tie_weights=True, softmax="adaptive").validate()
    with pytest.raises(ValueError, match="--tokenizer must be one of lines, split, words, runs"):
        TrainConfig(level="word", tokenizer="char").validate()


def test_runs_saved_before_keep_full_softmax_and_runs_tokens():
    old = {"kind": "language_model", "train": {"level": "word", "embed_size": 64,
                                               "hidden_size": 512, "dropout": 0.1,
                                               "tie_weights": False, "seq_length": 64,
                                               "batch_size": 32}}
    c = train_config_from_json(old)
    assert (c.softmax, c.tokenizer, c.hidden_size, c.seq_length) == ("full", "runs", 512, 64)
    assert (c.optimizer, c.learning_rate, c.momentum, c.grad_clip, c.num_layers) == \
        ("adam", 3e-3, 0.9, 5.0, 1)  # lm 0.1's defaults, not today's word level's
    with pytest.raises(ValueError, match="--softmax adaptive differs"):
        resume_config(c, TrainConfig(level="word", softmax="adaptive").validate(), {"softmax"})


def test_help_names_the_level_dependent_defaults_and_config_records_them(tmp_path):
    proc = run_module("lm.train", ["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Defaults that depend on --level" in proc.stdout
    assert "--hidden_size: char 512, word 256" in proc.stdout
    assert "--dropout: char 0.1, word 0.45" in proc.stdout
    assert "--optimizer: char adam, word sgd" in proc.stdout
    assert "--learning_rate: adam 0.003, sgd 20 (by --optimizer)" in proc.stdout
    assert "--min_count: char 1, word 2" in proc.stdout
    (tmp_path / "c.txt").write_text(corpus_text(300), encoding="utf-8")
    proc = run_module("lm.train", ["c.txt", "--level", "word", "--max_steps", 1,
                                   "--hidden_size", 8, "--sample_length", 0,
                                   "--out_dir", "r"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    train = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert (train["embed_size"], train["tie_weights"], train["softmax"], train["seq_length"],
            train["tokenizer"]) == (8, True, "full", 35, "lines")
    assert "val bpc" in proc.stdout  # bits per char at word level too


def test_word_corpus_counts_the_characters_behind_each_unk(tmp_path):
    from lm.text.stream import load_corpus
    from lm.text.vocab import tokenize

    text = "the cat sat on the mat; the dog sat\n  on a zebra.\n" * 3 + "xylophone qat\n"
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    c = load_corpus(tmp_path / "c.txt", "word", min_count=2, chunk_bytes=16)
    toks = tokenize(text, "word")
    assert len(c.unk_chars) == int((c.ids == 0).sum()) == 2  # " xylophone", " qat"
    for start in range(len(toks)):
        assert c.num_chars(start) == sum(map(len, toks[start:]))


def test_plain_sgd_may_take_the_word_recipes_large_step():
    cfg = TrainConfig(level="word", optimizer="sgd", momentum=0.0, learning_rate=20).validate()
    assert cfg.learning_rate == 20
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=101).validate()
