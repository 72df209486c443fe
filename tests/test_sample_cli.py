"""`python -m lm.sample` and `python -m lm.evaluate` through subprocess on tiny trained runs."""
import math
import os
import re

import numpy as np
import pytest

from lm.config.training import TrainConfig
from lm.training.lm_task import train

from conftest import assert_clean_error, run_module

TINY = dict(embed_size=8, hidden_size=24, seq_length=16, batch_size=8, sample_length=0,
            learning_rate=1e-2)



def run(module, args, cwd, timeout=60):
    return run_module(module, args, cwd, timeout=timeout)


def sample(args, cwd):
    return run("lm.sample", args, cwd)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A char-level run (checkpoints/text-char-gru) and a line-mode names run."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "in", "1984", "and", "2001"]
    text = " ".join(words[i] for i in rng.integers(0, len(words), 1500)) + "\n"
    (root / "text.txt").write_text(text, encoding="utf-8")
    syll = ["an", "na", "el", "la", "mi", "ra", "jo", "se"]
    names = ["".join(syll[i] for i in rng.integers(0, len(syll), rng.integers(1, 4)))
             for _ in range(400)]
    (root / "names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        quiet = lambda line: None  # noqa: E731
        train(TrainConfig(**TINY, corpus="names.txt", line_mode=True, max_steps=150,
                          eval_every=150, out_dir="names-run"), log=quiet)
        train(TrainConfig(**TINY, corpus="text.txt", cell="gru", max_steps=150,
                          eval_every=150), log=quiet)
    finally:
        os.chdir(cwd)
    return root


def test_seeded_sampling_is_reproducible(runs):
    a = sample(["--seed", 7, "--length", 80], runs)
    b = sample(["--seed", 7, "--length", 80], runs)
    c = sample(["--seed", 8, "--length", 80], runs)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout != c.stdout
    assert len(a.stdout) >= 60
    assert "text-char-gru" in a.stderr  # the most recent run under checkpoints/ by default
    assert "tokens/s" in a.stderr


def test_start_stays_text_and_file_prompts_work(runs):
    proc = sample(["--checkpoint", "checkpoints/text-char-gru", "--start", "1984",
                   "--length", 20, "--seed", 1], runs)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("1984") and "warning" not in proc.stderr
    (runs / "prompt.txt").write_text("the cat", encoding="utf-8")
    proc = sample(["--start", "FILE:prompt.txt", "--length", 10, "--seed", 1], runs)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("the cat")


def test_unknown_start_characters_warn_with_close_entries(runs):
    proc = sample(["--start", "The", "--length", 10, "--seed", 1], runs)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"warning: 'T' is not in the vocabulary \(close: 't'", proc.stderr)


def test_greedy_and_stop(runs):
    g1 = sample(["--top_k", 1, "--seed", 1, "--length", 40, "--start", "the"], runs)
    g2 = sample(["--top_k", 1, "--seed", 2, "--length", 40, "--start", "the"], runs)
    assert g1.returncode == 0 and g1.stdout == g2.stdout
    proc = sample(["--seed", 3, "--length", 200, "--start", "the", "--stop", "at",
                   "--num_samples", 2, "--top_p", 0.9, "--temperature", 0.7], runs)
    assert proc.returncode == 0, proc.stderr
    parts = proc.stdout.rstrip("\n").split("\n\n")
    assert len(parts) == 2
    for part in parts:
        assert part.startswith("the") and part.endswith("at") and part[3:-2].count("at") == 0


def test_line_mode_samples_whole_lines(runs):
    proc = sample(["--checkpoint", "names-run", "--num_samples", 6, "--seed", 0,
                   "--length", 40], runs)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 7
    allowed = set("anelmirjos")
    for line in lines[:-1]:
        # each line ended at the end marker well before the length cap
        assert len(line) < 20 and set(line) <= allowed, line
    assert sum(len(line) > 0 for line in lines) >= 4  # a barely trained model: mostly names


@pytest.mark.parametrize("args, fragments", [
    (["--checkpoint", "no/such/run"], ["--checkpoint", "no/such/run"]),
    (["--checkpoint", "text.txt"], ["not a run directory"]),
    (["--checkpoint", "."], ["holds no checkpoint"]),
    (["--temperature", 0], ["--temperature"]),
    (["--top_p", 0], ["--top_p"]),
    (["--top_p", 1.5], ["--top_p"]),
    (["--top_k", -1], ["--top_k"]),
    (["--num_samples", 0], ["--num_samples"]),
    (["--length", -5], ["--length"]),
    (["--start", "FILE:nothere.txt"], ["nothere.txt"]),
], ids=["missing", "file", "no_checkpoint", "temperature", "top_p0", "top_p15", "top_k",
        "num_samples", "length", "prompt_file"])
def test_bad_sample_flags_are_one_line_exit_2(runs, args, fragments):
    assert_clean_error(sample(args, runs), *fragments)


def test_help_explains_the_sampling_knobs(runs):
    proc = sample(["--help"], runs)
    text = proc.stdout + proc.stderr
    for flag, words in [("temperature", "more predictable"), ("top_k", "k most likely"),
                        ("top_p", "sum to top_p")]:
        m = re.search(rf"--{flag}=\S+\n\s+Default: \S+\n\s+(.+)", text)
        assert m and words in m.group(1), flag


def test_evaluate_prints_loss_perplexity_bits(runs):
    proc = run("lm.evaluate", ["--checkpoint", "checkpoints/text-char-gru", "text.txt"], runs)
    assert proc.returncode == 0, proc.stderr
    loss = float(re.search(r"loss\s+([\d.]+) nats", proc.stdout).group(1))
    ppl = float(re.search(r"perplexity\s+([\d.]+)", proc.stdout).group(1))
    bits = float(re.search(r"bits\s+([\d.]+) per char", proc.stdout).group(1))
    assert 0 < loss < 2.0
    assert ppl == pytest.approx(math.exp(loss), rel=1e-3)
    assert bits == pytest.approx(loss / math.log(2), rel=1e-3)
    missing = run("lm.evaluate", ["--checkpoint", "checkpoints/text-char-gru", "nope.txt"], runs)
    assert_clean_error(missing, "nope.txt")
    names = run("lm.evaluate", ["--checkpoint", "names-run", "names.txt"], runs)
    assert names.returncode == 0 and "perplexity" in names.stdout, names.stderr
