"""The training loop in-process: exact resume, divergence recovery, run-directory rules."""
import json
import os

import numpy as np
import pytest

import lm.training.trainer as trainer
from lm.storage.checkpoint import load_arrays
from conftest import metrics
from lm.config.training import TrainConfig
from lm.training.lm_task import train

TINY = dict(embed_size=6, hidden_size=10, seq_length=7, batch_size=3, sample_length=0,
            learning_rate=1e-2)


@pytest.fixture(autouse=True)
def no_curves(monkeypatch):
    """Drawing curves.png costs about a second per evaluation; test_plot covers it."""
    monkeypatch.setattr(trainer, "redraw_curves", lambda s, log: None)


def quiet(line):
    pass


def write_corpus(path, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    text = " ".join(words[i] for i in rng.integers(0, len(words), n // 4))
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


def write_names(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    syll = ["an", "na", "el", "la", "mi", "ra", "jo", "se"]
    names = ["".join(syll[i] for i in rng.integers(0, len(syll), rng.integers(1, 4)))
             for _ in range(n)]
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return str(path)


def evals(run_dir):
    return metrics(run_dir, "eval")


LOGGED = ("step", "epoch", "tokens", "lr", "train_loss", "val_loss")


@pytest.mark.parametrize("line_mode", [False, True], ids=["bptt", "lines"])
def test_resume_is_exact_in_float64(tmp_path, line_mode):
    corpus = (write_names if line_mode else write_corpus)(tmp_path / "c.txt")
    common = dict(TINY, corpus=corpus, dtype="float64", dropout=0.2, eval_every=5,
                  line_mode=line_mode, patience=0, lr_decay=0.7, log_every=2)
    a = str(tmp_path / "a")
    train(TrainConfig(**common, out_dir=a, max_steps=20), log=quiet)
    b = str(tmp_path / "b")
    r1 = train(TrainConfig(**common, out_dir=b, max_steps=10), log=quiet)
    assert r1.step == 10
    r2 = train(TrainConfig(**common, out_dir=b, max_steps=20, resume=True),
               given={"resume", "max_steps", "out_dir"}, log=quiet)
    assert r2.step == 20
    ma, mb = metrics(a), metrics(b)
    assert [r["step"] for r in evals(a)] == [5, 10, 15, 20]
    assert [r["step"] for r in ma if "val_loss" not in r] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert [[r.get(k) for k in LOGGED] for r in ma] == [[r.get(k) for k in LOGGED] for r in mb]
    la, lb = load_arrays(os.path.join(a, "last.safetensors")), load_arrays(os.path.join(b, "last.safetensors"))
    assert sorted(la) == sorted(lb)
    for k in la:
        if k != "state/elapsed":
            np.testing.assert_array_equal(la[k], lb[k], err_msg=k)
    assert la["param/embed.W"].dtype == np.float64


def test_interrupt_between_evaluations_resumes_exactly(tmp_path):
    """A stop requested mid-interval saves the partial train-loss sums too."""
    corpus = write_corpus(tmp_path / "c.txt")
    common = dict(TINY, corpus=corpus, dtype="float64", eval_every=6)
    a = str(tmp_path / "a")
    train(TrainConfig(**common, out_dir=a, max_steps=12), log=quiet)

    class StopAt(trainer.StopFlag):
        def __call__(self):
            return self.requested

    stop = StopAt()
    calls = {"n": 0}
    real_step = trainer.Trainer.train_step

    def step_then_stop(self):
        calls["n"] += 1
        if calls["n"] == 8:
            stop.requested = True
        return real_step(self)

    b = str(tmp_path / "b")
    trainer.Trainer.train_step = step_then_stop
    try:
        r = train(TrainConfig(**common, out_dir=b, max_steps=12), log=quiet, stop=stop)
    finally:
        trainer.Trainer.train_step = real_step
    assert (r.reason, r.step) == ("interrupted", 8)
    train(TrainConfig(**common, out_dir=b, max_steps=12, resume=True),
          given={"resume"}, log=quiet)
    assert [[r.get(k) for k in LOGGED] for r in metrics(a)] == \
        [[r.get(k) for k in LOGGED] for r in metrics(b)]


def test_nonfinite_loss_goes_back_and_halves_lr(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "c.txt")
    real_step = trainer.Trainer.train_step
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] in (7, 8):  # two bad steps in a row, after the eval at step 5
            self.task.batcher.next_batch()
            return None, 0
        return real_step(self)

    monkeypatch.setattr(trainer.Trainer, "train_step", flaky)
    lines = []
    r = train(TrainConfig(**TINY, corpus=corpus, out_dir=str(tmp_path / "r"), max_steps=10,
                          eval_every=5), log=lines.append)
    assert r.step == 10
    warn = [x for x in lines if "non-finite" in x]
    assert len(warn) == 2 and "back to step 5" in warn[0]
    rows = evals(str(tmp_path / "r"))
    assert [x["step"] for x in rows] == [5, 10]
    assert rows[1]["lr"] == pytest.approx(TINY["learning_rate"] / 4)


def test_persistent_nonfinite_loss_stops_with_a_message(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "c.txt")
    monkeypatch.setattr(trainer.Trainer, "train_step", lambda self: (None, 0))
    with pytest.raises(trainer.TrainingDiverged, match="diverged.*learning_rate"):
        train(TrainConfig(**TINY, corpus=corpus, out_dir=str(tmp_path / "r"), max_steps=10),
              log=quiet)
    saved = load_arrays(str(tmp_path / "r" / "last.safetensors"))  # the last finite state: step 0
    assert int(saved["state/step"]) == 0 and np.isfinite(saved["param/head.W"]).all()


def test_refuses_to_overwrite_a_run(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    out = str(tmp_path / "r")
    train(TrainConfig(**TINY, corpus=corpus, out_dir=out, max_steps=3, eval_every=3), log=quiet)
    before = open(os.path.join(out, "last.safetensors"), "rb").read()
    with pytest.raises(ValueError, match="--resume.*--out_dir"):
        train(TrainConfig(**TINY, corpus=corpus, out_dir=out, max_steps=3), log=quiet)
    assert open(os.path.join(out, "last.safetensors"), "rb").read() == before
    with pytest.raises(ValueError, match="--hidden_size"):
        train(TrainConfig(**dict(TINY, hidden_size=12), corpus=corpus, out_dir=out,
                          resume=True), given={"hidden_size", "resume"}, log=quiet)


def test_resume_without_a_run_is_an_error(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    with pytest.raises(FileNotFoundError, match="no last checkpoint"):
        train(TrainConfig(**TINY, corpus=corpus, out_dir=str(tmp_path / "x"), resume=True),
              log=quiet)


def test_time_budget_stops_evaluates_and_saves(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    out = str(tmp_path / "r")
    r = train(TrainConfig(**TINY, corpus=corpus, out_dir=out, time_budget=0.3,
                          eval_every=10**6), log=quiet)
    assert r.reason == "time_budget" and r.step > 0
    assert metrics(out)[-1]["step"] == r.step
    assert os.path.exists(os.path.join(out, "best.safetensors"))


def test_init_from_copies_weights_and_vocab(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    src = str(tmp_path / "src")
    train(TrainConfig(**TINY, corpus=corpus, out_dir=src, max_steps=4, eval_every=4), log=quiet)
    other = write_corpus(tmp_path / "other.txt", seed=1)
    dst = str(tmp_path / "dst")
    setup_cfg = TrainConfig(**dict(TINY, hidden_size=99), corpus=other, out_dir=dst,
                            init_from=src, max_steps=1)
    from lm.training.lm_task import setup
    s = setup(setup_cfg, given=set())
    assert s.cfg.hidden_size == TINY["hidden_size"]  # the weights fix the shape
    best = load_arrays(os.path.join(src, "best.safetensors"))
    np.testing.assert_array_equal(s.model.params["embed.W"], best["param/embed.W"])
    with open(os.path.join(src, "vocab.json")) as f1, open(os.path.join(dst, "vocab.json")) as f2:
        assert json.load(f1) == json.load(f2)


def test_stale_tmp_files_are_cleaned(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    out = tmp_path / "r"
    out.mkdir()
    stale = out / ".last.safetensors.tmp-999999999-0123abcd"
    stale.write_bytes(b"half")
    train(TrainConfig(**TINY, corpus=corpus, out_dir=str(out), max_steps=2, eval_every=2),
          log=quiet)
    assert not stale.exists()


def test_config_checks_name_the_flag():
    for kw, flag in [(dict(batch_size=0), "--batch_size"), (dict(val_frac=1.0), "--val_frac"),
                     (dict(learning_rate=-1), "--learning_rate"), (dict(cell="lstn"), "--cell"),
                     (dict(dropout=1.0), "--dropout"), (dict(seq_length=2.5), "--seq_length"),
                     (dict(tie_weights=True), "--tie_weights"),
                     (dict(time_budget=float("nan")), "--time_budget")]:
        with pytest.raises(ValueError, match=flag):
            TrainConfig(**kw).validate()


def test_failing_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    from lm.storage.checkpoint import save_arrays
    corpus = write_corpus(tmp_path / "c.txt")
    out = str(tmp_path / "r")
    calls = {"n": 0}

    def disk_full_on_second_last(path, arrays, **kw):
        if path.endswith("last.safetensors"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return save_arrays(path, arrays, **kw)

    monkeypatch.setattr(trainer, "save_arrays", disk_full_on_second_last)
    with pytest.raises(OSError, match="No space"):
        train(TrainConfig(**TINY, corpus=corpus, out_dir=out, max_steps=10, eval_every=3),
              log=quiet)
    kept = load_arrays(os.path.join(out, "last.safetensors"))
    assert int(kept["state/step"]) == 3


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (not even except Exception)."""


@pytest.mark.parametrize("average", [0.0, 0.9], ids=["weights", "average"])
def test_killed_between_last_and_best_is_repaired_on_resume(tmp_path, monkeypatch, average):
    """last.safetensors is written before best.safetensors, so a run killed between the two still holds the
    new best's weights (in last.safetensors: the weights, or their average with --average);
    resuming writes best.safetensors from them."""
    from lm.storage.checkpoint import save_arrays
    corpus = write_corpus(tmp_path / "c.txt")
    out = str(tmp_path / "r")
    common = dict(TINY, corpus=corpus, out_dir=out, eval_every=2, learning_rate=3e-3,
                  average=average)
    bests = []

    def killed_at_second_best(path, arrays, **kw):
        if path.endswith("best.safetensors"):
            bests.append(int(arrays["state/step"]))
            if len(bests) == 2:
                raise Killed
        return save_arrays(path, arrays, **kw)

    monkeypatch.setattr(trainer, "save_arrays", killed_at_second_best)
    with pytest.raises(Killed):
        train(TrainConfig(**common, max_steps=10), log=quiet)
    monkeypatch.setattr(trainer, "save_arrays", save_arrays)
    last = load_arrays(os.path.join(out, "last.safetensors"))
    assert int(last["state/step"]) == bests[1] == 4
    assert int(load_arrays(os.path.join(out, "best.safetensors"))["state/step"]) == bests[0] == 2
    lines = []
    train(TrainConfig(**common, max_steps=4, resume=True), given={"max_steps"}, log=lines.append)
    best = load_arrays(os.path.join(out, "best.safetensors"))
    assert int(best["state/step"]) == 4 and any("best checkpoint rewritten" in x for x in lines)
    assert float(best["state/val_loss"]) == float(last["state/best_val"])
    saved = "state/average." if average else "param/"
    for k, v in best.items():
        if k.startswith("param/"):
            assert np.array_equal(v, last[saved + k[len("param/"):]])


def test_killed_between_the_log_and_last_npz_resumes_with_the_same_log(tmp_path, monkeypatch):
    """The evaluation row is appended before last.safetensors: a run killed in between resumes
    from the previous last.safetensors, drops the rows logged after it and logs them again, so
    its metrics.jsonl equals an uninterrupted run's (nothing is lost, nothing doubled)."""
    from lm.storage.checkpoint import save_arrays
    corpus = write_corpus(tmp_path / "c.txt")
    common = dict(TINY, corpus=corpus, dtype="float64", eval_every=4, log_every=2)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(TrainConfig(**common, out_dir=a, max_steps=12), log=quiet)

    def killed_saving_step_8(path, arrays, **kw):
        if path.endswith("last.safetensors") and int(arrays["state/step"]) == 8:
            raise Killed
        return save_arrays(path, arrays, **kw)

    monkeypatch.setattr(trainer, "save_arrays", killed_saving_step_8)
    with pytest.raises(Killed):
        train(TrainConfig(**common, out_dir=b, max_steps=12), log=quiet)
    monkeypatch.setattr(trainer, "save_arrays", save_arrays)
    assert metrics(b, "eval")[-1]["step"] == 8  # logged, then killed before last.safetensors
    train(TrainConfig(**common, out_dir=b, max_steps=12, resume=True), given={"resume"},
          log=quiet)
    assert [[r.get(k) for k in LOGGED] for r in metrics(a)] == \
        [[r.get(k) for k in LOGGED] for r in metrics(b)]


def test_a_run_stopped_off_the_schedule_resumes_to_the_same_log(tmp_path):
    """--max_steps 7 with evaluations every 5 steps ends with a final evaluation at step 7;
    resumed to 20, the log, the weights and the lr schedule equal an uninterrupted run's:
    the final row is dropped and the final evaluation changed no training state."""
    corpus = write_corpus(tmp_path / "c.txt")
    common = dict(TINY, corpus=corpus, dtype="float64", eval_every=5, log_every=2,
                  patience=0, lr_decay=0.5)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(TrainConfig(**common, out_dir=a, max_steps=20), log=quiet)
    r = train(TrainConfig(**common, out_dir=b, max_steps=7), log=quiet)
    assert r.step == 7 and metrics(b, "eval")[-1]["step"] == 7 and metrics(b)[-1]["final"]
    train(TrainConfig(**common, out_dir=b, max_steps=20, resume=True),
          given={"resume", "max_steps"}, log=quiet)
    assert [[r.get(k) for k in LOGGED] for r in metrics(a)] == \
        [[r.get(k) for k in LOGGED] for r in metrics(b)]
    la, lb = load_arrays(os.path.join(a, "last.safetensors")), load_arrays(os.path.join(b, "last.safetensors"))
    for k in la:
        if k.startswith(("param/", "optim/")):
            np.testing.assert_array_equal(la[k], lb[k], err_msg=k)


def test_word_level_logs_perplexity(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    lines = []
    train(TrainConfig(**dict(TINY, sample_length=5), corpus=corpus, level="word",
                      out_dir=str(tmp_path / "w"), max_steps=4, eval_every=4),
          log=lines.append)
    row = metrics(str(tmp_path / "w"))[-1]
    assert row["val_ppl"] == pytest.approx(np.exp(row["val_loss"]))
    assert 0 < row["val_bpc"] < row["val_loss"] / np.log(2)  # several characters per token
    assert any("val ppl" in x and "val bpc" in x for x in lines)


def test_run_cli_turns_errors_into_one_line_and_exit_codes(capsys):
    from lm.storage.checkpoint import CheckpointError
    from lm.cli import CliError, run_cli

    def boom(kind="value"):
        raise {"value": ValueError("--x must be > 0\n(detail)"),
               "ckpt": CheckpointError("f.npz", "bad header"),
               "missing": FileNotFoundError(2, "No such file or directory", "a.txt"),
               "diverged": CliError("diverged", code=1),
               "int": KeyboardInterrupt()}[kind]

    for kind, code, text in [("value", 2, "error: --x must be > 0 (detail)"),
                             ("ckpt", 2, "error: invalid checkpoint file 'f.npz': bad header"),
                             ("missing", 2, "error: a.txt: No such file or directory"),
                             ("diverged", 1, "error: diverged"), ("int", 130, "interrupted")]:
        with pytest.raises(SystemExit) as e:
            run_cli(boom, ["--kind", kind])
        assert e.value.code == code
        assert capsys.readouterr().err.strip() == text


def test_raw_flags_keep_text_that_fire_would_parse():
    from lm.cli import given_flags, raw_flag
    argv = ["--start", "1984", "--stop=(1,2)", "--noresume", "--hidden-size", "8"]
    assert raw_flag("start", argv) == "1984" and raw_flag("stop", argv) == "(1,2)"
    assert raw_flag("seed", argv) is None
    assert given_flags({"resume", "hidden_size", "seed"}, argv) == {"resume", "hidden_size"}


def test_latest_run_is_the_newest_language_model(tmp_path):
    from lm.storage.run_dir import find_latest_run
    for i, (name, kind) in enumerate([("old", "language_model"), ("new", "language_model"),
                                      ("newest", "sentiment")]):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"kind": kind}))
        (d / "best.safetensors").write_bytes(b"x")
        os.utime(d / "best.safetensors", (1000 + i, 1000 + i))
    assert find_latest_run(str(tmp_path)) == str(tmp_path / "new")
    assert find_latest_run(str(tmp_path), kind="sentiment") == str(tmp_path / "newest")
    with pytest.raises(FileNotFoundError, match="no trained"):
        find_latest_run(str(tmp_path / "none"))


def test_blas_threads_one_when_busy_all_when_idle_env_wins():
    from lm.cli import choose_threads as choose, cpus
    assert choose("auto", environ={}, load=1.7)[0] == "1"
    assert choose(None, environ={}, load=0.1)[0] == str(cpus())
    assert choose("auto", environ={"OPENBLAS_NUM_THREADS": "3"}, load=1.7)[0] == "3"
    assert choose("2", environ={}, load=5.0) == ("2", "--threads")
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="--threads"):
            choose(bad, environ={})


def test_line_split_order_is_fixed_for_the_run(tmp_path):
    """--shuffle_lines (the default) and file order give different validation splits; a
    resumed run keeps its own, and a run saved before the flag existed keeps file order."""
    corpus = write_names(tmp_path / "c.txt")
    common = dict(TINY, corpus=corpus, line_mode=True, dtype="float64", eval_every=5)
    shuffled, ordered = str(tmp_path / "s"), str(tmp_path / "o")
    train(TrainConfig(**common, out_dir=shuffled, max_steps=5), log=quiet)
    train(TrainConfig(**common, shuffle_lines=False, out_dir=ordered, max_steps=10), log=quiet)
    assert evals(shuffled)[0]["val_loss"] != evals(ordered)[0]["val_loss"]
    with pytest.raises(ValueError, match="--shuffle_lines False differs from the resumed "
                                         "run's True"):
        train(TrainConfig(**common, shuffle_lines=False, out_dir=shuffled, max_steps=10,
                          resume=True), given={"resume", "shuffle_lines"}, log=quiet)
    old = str(tmp_path / "old")  # the same run as `ordered`, saved without the flag at step 5
    train(TrainConfig(**common, shuffle_lines=False, out_dir=old, max_steps=5), log=quiet)
    path = os.path.join(old, "config.json")
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    del saved["train"]["shuffle_lines"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(saved, f)
    train(TrainConfig(**common, out_dir=old, max_steps=10, resume=True),
          given={"resume", "max_steps"}, log=quiet)
    assert [[r.get(k) for k in LOGGED] for r in metrics(old)] == \
        [[r.get(k) for k in LOGGED] for r in metrics(ordered)]
