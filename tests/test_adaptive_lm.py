"""The language model with an adaptive softmax head: gradients, exact evaluation and
sampling, config, and `--softmax adaptive` through training, resume, evaluate, sample."""
import json

import numpy as np
import pytest

from conftest import corpus_text, metrics, run_module
from lm.data.batch import Batch
from lm.models.language_model import LanguageModelRNN
from lm.storage.checkpoint import load_arrays
from test_language_model import check_model_gradients

V = 12


def make(cell="lstm", num_layers=1, dropout=0.0, seed=0, H=16, cutoffs=(3, 7), **kw):
    rng = np.random.default_rng(seed)
    model = LanguageModelRNN(V, 5, H, cell=cell, num_layers=num_layers, dropout=dropout,
                             softmax="adaptive", cutoffs=cutoffs, dtype=np.float64, rng=rng,
                             **kw)
    return model, rng


def data(N=2, T=5, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (N, T))
    targets = np.array([[0, 4, 9, 2, 11], [8, 1, 5, 10, 3]])[:N, :T]  # head and both clusters
    return ids, targets


def test_param_names_are_head_plus_the_layer_names():
    model, _ = make()
    assert [k for k in model.params if k.startswith("head.")] == \
        ["head.W", "head.proj0", "head.out0", "head.proj1", "head.out1"]
    assert model.params["head.W"].shape == (16, 3 + 2)


def test_gradients_with_mask():
    model, _ = make("lstm")
    ids, targets = data()
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=bool)
    check_model_gradients(model, ids, targets, mask)


def test_gradients_two_layers_dropout_and_incoming_state():
    model, rng = make("lstm", num_layers=2, dropout=0.3, H=6, cutoffs=(3,))
    ids, targets = data(T=4)
    state = [(np.full((2, 6), 0.1), np.full((2, 6), -0.2)) for _ in range(2)]
    check_model_gradients(model, ids, targets, state=state, rng=rng)


def test_evaluation_is_the_exact_normalised_distribution():
    model, _ = make(num_layers=2)
    model.eval()
    ids, targets = data()
    logp, _ = model.forward(ids)                     # (N, T, V) log-probabilities
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, rtol=1e-12)
    want = -np.take_along_axis(logp, targets[..., None], -1).sum()
    total, count, _ = model.nll(ids, targets)
    assert count == ids.size
    np.testing.assert_allclose(total, want, rtol=1e-12)
    loss, _ = model.loss(Batch(ids, targets, None))
    np.testing.assert_allclose(loss, want / ids.size, rtol=1e-12)


def test_sampling_uses_the_exact_distribution():
    model, _ = make()
    prompt = np.array([1, 5, 2])
    greedy = model.sample(prompt, 6, top_k=1)
    seq = list(prompt)
    for tok in greedy:  # recompute from scratch: argmax of the last step's log p
        logp, _ = model.forward(np.array([seq]))
        assert tok == int(np.argmax(logp[0, -1]))
        seq.append(tok)
    a = model.sample(prompt, 20, temperature=0.7, top_p=0.9, rng=3)
    assert a == model.sample(prompt, 20, temperature=0.7, top_p=0.9, rng=3)
    assert all(0 <= t < V for t in a)


def test_config_round_trip_and_errors():
    model, _ = make()
    cfg = model.config()
    assert cfg["softmax"] == "adaptive" and cfg["cutoffs"] == [3, 7]
    again = LanguageModelRNN.from_config(json.loads(json.dumps(cfg)), dtype=np.float64)
    assert {k: v.shape for k, v in again.params.items()} == \
        {k: v.shape for k, v in model.params.items()}
    with pytest.raises(ValueError, match="tie_weights needs softmax='full'"):
        LanguageModelRNN(V, 8, 8, tie_weights=True, softmax="adaptive")
    for bad in ([2.5], "3", [True], [{}], [3, 3], [0], [V]):
        with pytest.raises(ValueError, match="cutoffs"):
            LanguageModelRNN(V, 8, 16, softmax="adaptive", cutoffs=bad)
    with pytest.raises(ValueError, match="softmax must be one of full, adaptive"):
        LanguageModelRNN(V, 8, 8, softmax="hier")
    old = {"vocab_size": V, "embed_size": 4, "hidden_size": 3}  # lm 0.1: no softmax key
    assert LanguageModelRNN.from_config(old).softmax == "full"


def test_adaptive_run_trains_resumes_evaluates_and_samples(tmp_path):
    (tmp_path / "c.txt").write_text(corpus_text(600), encoding="utf-8")
    common = ["c.txt", "--level", "word", "--softmax", "adaptive", "--hidden_size", 16,
              "--seq_length", 8, "--batch_size", 4, "--eval_every", 6, "--sample_length", 5]
    proc = run_module("lm.train", [*common, "--out_dir", "r", "--max_steps", 6], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "adaptive softmax" in proc.stdout
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"]["softmax"] == "adaptive" and cfg["train"]["tie_weights"] is False
    assert cfg["train"]["tokenizer"] == "lines" and cfg["train"]["embed_size"] == 16
    proc = run_module("lm.train", ["--resume", "--out_dir", "r", "--max_steps", 12], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r["step"] for r in metrics(tmp_path / "r", "eval")] == [6, 12]
    assert "param/head.out0" in load_arrays(tmp_path / "r" / "last.safetensors")
    proc = run_module("lm.evaluate", ["c.txt", "--checkpoint", "r"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    loss = float(proc.stdout.split("loss")[1].split()[0])
    assert abs(loss - metrics(tmp_path / "r", "eval")[-1]["val_loss"]) < 1.0
    proc = run_module("lm.sample", ["--checkpoint", "r", "--start", "the", "--length", 8,
                                    "--top_k", 5], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("the")
