"""--average: the trainer's moving average of the weights, evaluated, saved as the best,
resumed exactly, and checked like any weight when read back (a run killed before its best
is written: tests/test_trainer.py)."""
import json
import os

import numpy as np
import pytest

import lm.training.trainer as trainer
from conftest import metrics, quiet
from lm.config.training import TrainConfig
from lm.storage.checkpoint import CheckpointError, load_arrays, save_arrays
from lm.training.lm_task import train

TINY = dict(embed_size=6, hidden_size=10, seq_length=7, batch_size=3, sample_length=0,
            learning_rate=1e-2, dtype="float64")


@pytest.fixture(autouse=True)
def no_curves(monkeypatch):
    monkeypatch.setattr(trainer, "redraw_curves", lambda s, log: None)


def write_corpus(path, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    path.write_text(" ".join(words[i] for i in rng.integers(0, len(words), n // 4)) + "\n",
                    encoding="utf-8")
    return str(path)


def test_best_holds_the_moving_average_and_training_goes_on_from_the_trained_weights(
        tmp_path, monkeypatch):
    """average_s = d_s average_{s-1} + (1 - d_s) w_s, d_s = min(decay, (1 + s) / (10 + s)),
    from the initial weights; the evaluation judges it, the best checkpoint holds it, and
    the weights trained on (last checkpoint) are the optimiser's, untouched by evaluation."""
    decay, steps = 0.8, 6
    seen = []  # the weights after each step, and the initial ones first
    real_step = trainer.Trainer.train_step

    def recording_step(self):
        if not seen:
            seen.append({k: p.copy() for k, p in self.task.model.params.items()})
        out = real_step(self)
        seen.append({k: p.copy() for k, p in self.task.model.params.items()})
        return out

    monkeypatch.setattr(trainer.Trainer, "train_step", recording_step)
    out = str(tmp_path / "r")
    train(TrainConfig(**TINY, corpus=write_corpus(tmp_path / "c.txt"), out_dir=out,
                      max_steps=steps, eval_every=steps, average=decay), log=quiet)
    average = {k: v.copy() for k, v in seen[0].items()}
    for s in range(steps):
        d = min(decay, (1 + s) / (10 + s))
        for k in average:
            average[k] = d * average[k] + (1 - d) * seen[s + 1][k]
    best = load_arrays(os.path.join(out, "best.safetensors"))
    last = load_arrays(os.path.join(out, "last.safetensors"))
    for k, v in average.items():
        np.testing.assert_allclose(best[f"param/{k}"], v, rtol=1e-12, atol=1e-15, err_msg=k)
        np.testing.assert_allclose(last[f"state/average.{k}"], v, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(last[f"param/{k}"], seen[-1][k])
        assert not np.array_equal(v, seen[-1][k])  # the average is not the last weights


def test_evaluation_scores_the_average(tmp_path, monkeypatch):
    """The validation loss is computed on the averaged weights (those of the best
    checkpoint), and training continues from the trained ones."""
    import lm.training.lm_task as lm_task

    judged = []
    real = lm_task.evaluate_loss

    def recording(model, *args, **kw):
        judged.append({k: p.copy() for k, p in model.params.items()})
        return real(model, *args, **kw)

    monkeypatch.setattr(lm_task, "evaluate_loss", recording)
    out = str(tmp_path / "r")
    train(TrainConfig(**TINY, corpus=write_corpus(tmp_path / "c.txt"), out_dir=out,
                      max_steps=8, eval_every=8, average=0.9), log=quiet)
    best = load_arrays(os.path.join(out, "best.safetensors"))
    last = load_arrays(os.path.join(out, "last.safetensors"))
    assert len(judged) == 1
    for k, v in judged[0].items():
        np.testing.assert_array_equal(v, best[f"param/{k}"])
        np.testing.assert_array_equal(v, last[f"state/average.{k}"])
    assert not np.array_equal(judged[0]["rnn0.Wh"], last["param/rnn0.Wh"])


@pytest.mark.parametrize("decay", [0.0, 0.9])
def test_resume_with_an_average_is_exact(tmp_path, decay):
    corpus = write_corpus(tmp_path / "c.txt")
    common = dict(TINY, corpus=corpus, dropout=0.2, eval_every=5, patience=0, lr_decay=0.7,
                  average=decay)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(TrainConfig(**common, out_dir=a, max_steps=20), log=quiet)
    train(TrainConfig(**common, out_dir=b, max_steps=10), log=quiet)
    train(TrainConfig(**common, out_dir=b, max_steps=20, resume=True),
          given={"resume", "max_steps", "out_dir"}, log=quiet)
    assert [r["val_loss"] for r in metrics(a, "eval")] == [r["val_loss"] for r in metrics(b, "eval")]
    for name in ("last", "best"):
        la = load_arrays(os.path.join(a, f"{name}.safetensors"))
        lb = load_arrays(os.path.join(b, f"{name}.safetensors"))
        assert sorted(la) == sorted(lb)
        assert any(k.startswith("state/average.") for k in la) == (decay > 0 and name == "last")
        for k in la:
            if k != "state/elapsed":
                np.testing.assert_array_equal(la[k], lb[k], err_msg=k)


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update({"state/average.embed.W": a["state/average.embed.W"][:2]}), "shape"),
    (lambda a: a["state/average.rnn0.b"].__setitem__(0, np.nan), "NaN"),
    (lambda a: a.update({"state/average.nope": np.zeros(3)}), "unexpected parameter"),
], ids=["shape", "nan", "extra"])
def test_a_bad_average_in_the_last_checkpoint_is_one_clear_error(tmp_path, edit, message):
    out = str(tmp_path / "r")
    common = dict(TINY, corpus=write_corpus(tmp_path / "c.txt"), out_dir=out, eval_every=2,
                  average=0.9)
    train(TrainConfig(**common, max_steps=2), log=quiet)
    path = os.path.join(out, "last.safetensors")
    arrays = dict(load_arrays(path))
    edit(arrays)
    save_arrays(path, arrays, allow_nonfinite=True)
    with pytest.raises(CheckpointError, match=message):
        train(TrainConfig(**common, max_steps=4, resume=True), given={"max_steps"}, log=quiet)


def test_average_defaults_by_level_range_and_old_runs():
    assert TrainConfig(level="char").validate().average == 0.0
    assert TrainConfig(level="word").validate().average == 0.99
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="average"):
            TrainConfig(average=bad).validate()
    old = TrainConfig(level="word").validate().to_dict()
    del old["average"]
    assert TrainConfig.from_dict(old).average == 0.0  # runs saved before --average: none


def test_resume_keeps_the_runs_average(tmp_path):
    out = str(tmp_path / "r")
    common = dict(TINY, corpus=write_corpus(tmp_path / "c.txt"), out_dir=out, eval_every=2)
    train(TrainConfig(**common, max_steps=2), log=quiet)
    with pytest.raises(ValueError, match="--average"):
        train(TrainConfig(**common, max_steps=4, resume=True, average=0.9),
              given={"max_steps", "average"}, log=quiet)
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["train"]["average"] == 0.0


def test_weight_average_unit_views_and_decay_range():
    """The blocked update equals the formula, also for a parameter that is a strided view;
    the decay must lie in (0, 1); swapped_in gives the trained weights back."""
    from lm.training.averaging import BLOCK, WeightAverage

    rng = np.random.default_rng(0)
    base = rng.standard_normal((7, 5))
    params = {"big": rng.standard_normal(BLOCK + 3), "view": base.T}
    avg = WeightAverage(params, 0.5)
    start = {k: v.copy() for k, v in params.items()}
    for k in params:
        params[k] += 1.0
    avg.update(0)  # d = min(0.5, 1 / 10) = 0.1
    for k in params:
        np.testing.assert_allclose(avg.arrays[k], 0.1 * start[k] + 0.9 * params[k])
    trained = {k: v.copy() for k, v in params.items()}
    with avg.swapped_in():
        np.testing.assert_array_equal(params["view"], avg.arrays["view"])
    for k in params:
        np.testing.assert_array_equal(params[k], trained[k])
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="decay"):
            WeightAverage(params, bad)
