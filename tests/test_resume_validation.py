"""Resume trusts nothing it reads: every field of config.json and of last.safetensors is checked
with its flag's (or its weight's) rule, and a bad one is one clear error, never a
traceback or a silently odd run. The classifier's resume goes through the same checks."""
import json

import numpy as np
import pytest

from conftest import assert_clean_error, quiet, run_module, tiny_lm_run
from lm.config.sentiment import SentimentConfig
from lm.config.training import TrainConfig
from lm.storage.checkpoint import load_arrays, save_arrays
from lm.training import classifier_task, lm_task

@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A language-model run stopped at step 3, kept pristine (tests edit copies)."""
    return tiny_lm_run(tmp_path_factory.mktemp("lm"), "run")


@pytest.fixture
def run(saved_run, tmp_path):
    import shutil
    shutil.copytree(saved_run / "run", tmp_path / "run")
    shutil.copy(saved_run / "c.txt", tmp_path / "c.txt")
    return tmp_path / "run"


def edit_config(run, fn):
    path = run / "config.json"
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg))


def edit_last(run, fn):
    arrays = dict(load_arrays(run / "last.safetensors"))
    fn(arrays)
    save_arrays(str(run / "last.safetensors"), arrays, allow_nonfinite=True)


def resume(run):
    return lm_task.train(TrainConfig(out_dir=str(run), resume=True, max_steps=6),
                         given={"resume", "out_dir", "max_steps"}, log=quiet)


CONFIG_CASES = {
    "kind sentiment": (lambda c: c.update(kind="sentiment"), "not a language model"),
    "model a list": (lambda c: c.update(model=[1]), "'model' must be an object"),
    "data a list": (lambda c: c.update(data=[1]), "'data' must be an object"),
    "hidden_size -5": (lambda c: c["train"].update(hidden_size=-5), "hidden_size"),
    "hidden_size text": (lambda c: c["train"].update(hidden_size="32"), "hidden_size must be int"),
    "hidden_size 1e9": (lambda c: c["train"].update(hidden_size=10**9), "hidden_size must be in"),
    "model hidden 1e9": (lambda c: c["model"].update(hidden_size=10**9), "hidden_size must be in"),
    "unknown flag": (lambda c: c["train"].update(hiden_size=3), "unknown training flag"),
    "lr negative": (lambda c: c["train"].update(learning_rate=-1.0), "learning_rate"),
    "switch as text": (lambda c: c["train"].update(line_mode="no"), "line_mode must be bool"),
    "cell unknown": (lambda c: c["train"].update(cell="transformer"), "--cell"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_a_bad_config_json_is_refused(run, case):
    edit, message = CONFIG_CASES[case]
    edit_config(run, edit)
    with pytest.raises(ValueError, match=message):
        resume(run)


STATE_CASES = {
    "extra member": (lambda a: a.update({"state/evil": np.zeros(3)}), "unexpected entry"),
    "int64 weights": (lambda a: a.update({"param/head.W": a["param/head.W"].astype(np.int64)}),
                      "dtype int64"),
    "step -100": (lambda a: a.update({"state/step": np.asarray(-100)}), "state/step"),
    "adam lr -1e6": (lambda a: a.update({"optim/adam.lr": np.asarray(-1e6)}), "adam.lr"),
    "adam t -1": (lambda a: a.update({"optim/adam.t": np.asarray(-1)}), "adam.t"),
    "adam v negative": (lambda a: a.update({"optim/adam.v.head.b": -np.ones_like(
        a["optim/adam.v.head.b"])}), "negative"),
    "position shape (3,)": (lambda a: a.update({"state/data.position": np.zeros(3, np.int64)}),
                            "state/data.position"),
    "data key missing": (lambda a: a.pop("state/data.epoch"), "lacks state/data.epoch"),
    "rng malformed": (lambda a: a.update({"state/rng": np.array([1, 2, 3, 4, 7, 2**40],
                                                                np.uint64)}), "random"),
    "nan weights": (lambda a: a.update({"param/embed.W": a["param/embed.W"] * np.nan}), "NaN"),
    "elapsed inf": (lambda a: a.update({"state/elapsed": np.asarray(np.inf)}), "state/elapsed"),
    "carry of layer 5": (lambda a: a.update({"state/carry.5.0": np.zeros((3, 10))}),
                         "carry"),
}


@pytest.mark.parametrize("case", STATE_CASES)
def test_a_bad_last_npz_is_refused(run, case):
    edit, message = STATE_CASES[case]
    edit_last(run, edit)
    with pytest.raises(ValueError, match=message):
        resume(run)


def test_the_cli_answers_one_line(run):
    edit_last(run, STATE_CASES["adam t -1"][0])
    assert_clean_error(run_module("lm.train", ["--resume", "--out_dir", "run"], run.parent),
                       "adam.t")
    edit_config(run, CONFIG_CASES["data a list"][0])
    assert_clean_error(run_module("lm.train", ["--resume", "--out_dir", "run"], run.parent),
                       "'data' must be an object")


def test_a_classifier_resume_checks_the_same_way(tmp_path):
    data = tmp_path / "d.tsv"
    data.write_text("".join(f"{i % 2}\t{'good' if i % 2 else 'bad'} {i}\n" for i in range(40)),
                    encoding="utf-8")
    out = tmp_path / "cls"
    cfg = dict(embed_size=4, hidden_size=4, batch_size=4, min_count=1)
    classifier_task.train(SentimentConfig(data=str(data), out_dir=str(out), max_epochs=1, **cfg),
                          log=quiet)
    edit_last(out, STATE_CASES["step -100"][0])
    with pytest.raises(ValueError, match="state/step"):
        classifier_task.train(SentimentConfig(out_dir=str(out), resume=True, max_epochs=2),
                              given={"resume", "out_dir", "max_epochs"}, log=quiet)
    edit_config(out, lambda c: c["train"].update(batch_size="4"))
    with pytest.raises(ValueError, match="batch_size must be int"):
        classifier_task.train(SentimentConfig(out_dir=str(out), resume=True, max_epochs=2),
                              given={"resume", "out_dir", "max_epochs"}, log=quiet)
    edit_config(out, lambda c: c.update(kind="language_model"))
    with pytest.raises(ValueError, match="not a classifier"):
        classifier_task.train(SentimentConfig(out_dir=str(out), resume=True, max_epochs=2),
                              given={"resume", "out_dir", "max_epochs"}, log=quiet)
