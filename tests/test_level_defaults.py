"""Defaults that depend on --level, and --softmax auto: one rule (lm.config.training),
recorded in config.json, listed by --help; runs saved before them keep their values."""
import json

import pytest

from conftest import corpus_text, run_module
from lm.config.training import (ADAPTIVE_ABOVE, LEVEL_DEFAULTS, TrainConfig, resume_config,
                                train_config_from_json)


def test_each_level_gets_its_defaults():
    char, word = TrainConfig().validate(), TrainConfig(level="word").validate()
    for name, value in LEVEL_DEFAULTS["char"].items():
        assert getattr(char, name) == value, name
    assert (char.embed_size, char.hidden_size, char.seq_length, char.tokenizer) == \
        (64, 512, 64, "char")
    assert (word.embed_size, word.hidden_size, word.tie_weights, word.seq_length,
            word.batch_size, word.dropout, word.tokenizer) == (256, 256, True, 35, 32, 0.3,
                                                               "words")
    assert (char.min_count, char.patience, word.min_count, word.patience) == (1, 1, 2, 0)


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
    with pytest.raises(ValueError, match="--tokenizer must be one of words, runs"):
        TrainConfig(level="word", tokenizer="char").validate()


def test_runs_saved_before_keep_full_softmax_and_runs_tokens():
    old = {"kind": "language_model", "train": {"level": "word", "embed_size": 64,
                                               "hidden_size": 512, "dropout": 0.1,
                                               "tie_weights": False, "seq_length": 64,
                                               "batch_size": 32}}
    c = train_config_from_json(old)
    assert (c.softmax, c.tokenizer, c.hidden_size, c.seq_length) == ("full", "runs", 512, 64)
    with pytest.raises(ValueError, match="--softmax adaptive differs"):
        resume_config(c, TrainConfig(level="word", softmax="adaptive").validate(), {"softmax"})


def test_help_names_the_level_dependent_defaults_and_config_records_them(tmp_path):
    proc = run_module("lm.train", ["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Defaults that depend on --level" in proc.stdout
    assert "--hidden_size: char 512, word 256" in proc.stdout
    assert "--dropout: char 0.1, word 0.3" in proc.stdout
    assert "--min_count: char 1, word 2" in proc.stdout
    (tmp_path / "c.txt").write_text(corpus_text(300), encoding="utf-8")
    proc = run_module("lm.train", ["c.txt", "--level", "word", "--max_steps", 1,
                                   "--hidden_size", 8, "--sample_length", 0,
                                   "--out_dir", "r"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    train = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert (train["embed_size"], train["tie_weights"], train["softmax"], train["seq_length"],
            train["tokenizer"]) == (8, True, "full", 35, "words")
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
