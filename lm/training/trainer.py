"""The one training loop, for every model: budgets, evaluation, checkpoints, resume, Ctrl-C.

`Trainer(task).run()` knows nothing about the model beyond the model contract (lm.models):
`loss(batch, state)` fills the gradients. A task (lm.training.lm_task,
lm.training.classifier_task) supplies the model, optimiser, batcher and run directory, and
says how to evaluate, which evaluation is best and how to print it. Per step: next batch
(recurrent state carried between BPTT windows when the task asks, reset at each epoch), loss
and gradients, global-norm clipping, optimiser step. Every `log_every` steps a training-loss
row goes to metrics.jsonl; every `eval_every` steps (0: at the end of each epoch) the task
evaluates, and the trainer appends the row, writes the last checkpoint (last.safetensors:
everything needed to resume exactly) and the best (best.safetensors: weights) when the
evaluation is the best so far, redraws curves.png and prints the task's lines. With
`average` > 0 the evaluations, the best checkpoint and the samples use a moving average of
the weights (lm.training.averaging). The lr is multiplied by `lr_decay` after more than
`patience` evaluations without improvement. A non-finite loss is never saved: the run goes
back to its last good state with half the lr, at most MAX_RESTARTS times. A task may define
`reached(row)`: training stops after an evaluation for which it is true (e.g. a target
accuracy). The task's config needs: max_epochs, max_steps, time_budget, eval_every,
log_every, grad_clip, lr_decay, patience, min_lr (`average` may be absent).
"""
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from lm.storage.checkpoint import (append_jsonl, checkpoint_path, find_checkpoint,
                                   load_arrays, save_arrays)
from lm.training.averaging import WeightAverage
from lm.training.interrupt import StopFlag
from lm.training.optim import clip_grad_norm
from lm.training.report import eta_text, redraw_curves, trim_metrics
from lm.training.state import new_scalars, pack_state, unpack_state

MAX_RESTARTS = 3          # non-finite losses survived (each halves the lr) before giving up
CURVES_EVERY = 10.0       # seconds between redraws of curves.png (a figure costs ~0.2 s)


class TrainingDiverged(RuntimeError):
    """The loss stayed NaN or infinite after every restart (the CLI exits with status 1)."""


@dataclass
class TrainResult:
    run_dir: str
    step: int
    reason: str            # "max_epochs", "max_steps", "time_budget", "target" or "interrupted"
    best_val: float        # validation loss of the best evaluation (inf: never evaluated)
    best_step: int
    last_val: float = None


class Trainer:
    """Trains `task.model` as `task.cfg` says; see the module docstring."""

    def __init__(self, task, log=None, progress=None, stop=None):
        from tqdm.auto import tqdm

        self.task, self.cfg = task, task.cfg
        self.log = log or (lambda line: tqdm.write(line, file=sys.stdout))
        self.progress, self.stop = progress, stop or StopFlag()
        self.sc = new_scalars()
        self.carry = None  # recurrent state between BPTT windows
        self.last_saved_step = None
        self.target_reached = False  # the task's `reached(row)` said the last evaluation is enough
        self.curves_drawn = None  # time.monotonic() of the last curves.png
        self.curves_stale = False  # rows were logged since
        self.path = lambda name: os.path.join(task.run_dir, name)
        self.last = checkpoint_path(task.run_dir, "last")  # written: .safetensors
        self.best = checkpoint_path(task.run_dir, "best")
        decay = float(getattr(self.cfg, "average", 0.0) or 0.0)
        self.average = WeightAverage(task.model.params, decay) if decay else None

    # ---- state: one snapshot type for the last checkpoint, rollback and resume ----
    def snapshot(self):
        t = self.task
        return pack_state(t.model, t.optimizer, self.sc, t.batcher.state_dict(), self.carry,
                          t.rng, self.average and self.average.arrays)

    def restore(self, snap, label="last checkpoint"):
        t = self.task
        scalars, data_state, self.carry, average = unpack_state(
            snap, t.model, t.optimizer, t.rng, label, data_keys=list(t.batcher.state_dict()))
        if self.average is not None:  # a run saved without one starts it at its weights
            self.average.reset(average)
        self.sc.update(scalars)  # in place: the loop holds a reference to this dict
        t.batcher.load_state_dict({k: int(v) for k, v in data_state.items()})

    def resume(self):
        """Continue from the last checkpoint: state, log trimmed to it, best repaired if needed."""
        path = find_checkpoint(self.task.run_dir, "last")  # lm 0.1 runs: last.npz
        arrays = load_arrays(path)
        if "state/step" not in arrays and "state/epoch" in arrays:
            self._resume_epoch_checkpoint(arrays, path)
        else:
            self.restore(arrays, path)
        trim_metrics(self.task.run_dir, self.sc["step"])
        if self._repair_best():
            self.log(f"best checkpoint rewritten from the last (the run stopped before saving it "
                     f"at step {self.sc['step']})")

    def _resume_epoch_checkpoint(self, arrays, path):
        """Classifiers of lm 0.1 saved weights, optimiser and the epoch only: go on from the
        start of the next epoch (a new dropout stream, so not bit-identical), the best so
        far taken from metrics.jsonl."""
        from lm.storage.checkpoint import copy_into_params
        from lm.training.metrics import read_metrics

        t, sc = self.task, self.sc
        copy_into_params(t.model.params, arrays, label=path)
        if self.average is not None:
            self.average.reset()
        t.optimizer.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items()
                                     if k.startswith("optim/")})
        epoch = int(arrays["state/epoch"])
        t.batcher.load_state_dict({**t.batcher.state_dict(), "epoch": epoch, "position": 0})
        sc["step"] = sc["last_eval_step"] = int(arrays.get("state/step", epoch * len(t.batcher)))
        rows = [r for r in read_metrics(t.run_dir) if "val_loss" in r and "val_acc" in r]
        if rows:
            best = max(rows, key=t.score)
            sc.update(best_key=tuple(t.score(best)), best_val=best["val_loss"],
                      best_step=best.get("step", sc["step"]), elapsed=rows[-1].get("elapsed", 0))
        self.log(f"note    {path} is from lm 0.1 (weights and optimiser, no "
                 f"random state): continuing at epoch {epoch + 1}, not bit-identical")

    def save_best(self):
        """The best checkpoint: the weights evaluated now, with the best's step and val loss."""
        weights = self.task.model.params if self.average is None else self.average.arrays
        save_arrays(self.best,
                    {**{f"param/{k}": v for k, v in weights.items()},
                     "state/step": np.asarray(self.sc["best_step"], dtype=np.int64),
                     "state/val_loss": np.asarray(self.sc["best_val"], dtype=np.float64)})

    def _repair_best(self):
        """If the run stopped between saving the last and the best checkpoint at a new best,
        the best is written now from the last one's weights (evaluated at that very step)."""
        sc = self.sc
        if sc["best_step"] != sc["step"] or not math.isfinite(sc["best_val"]):
            return False
        path = find_checkpoint(self.task.run_dir, "best")
        if path and int(load_arrays(path).get("state/step", -1)) == sc["step"]:
            return False
        self.save_best()
        return True

    def _saving(self, fn, *args):
        self.stop.saving = True
        try:
            return fn(*args)
        finally:
            self.stop.saving = False

    # ---- one step ----
    def train_step(self):
        """One optimisation step; returns (loss, count) or (None, 0) if it was not finite."""
        t = self.task
        batch = t.batcher.next_batch()
        if t.batcher.starts_epoch:
            self.carry = None  # streams start again from their beginning
        loss, report = t.model.loss(batch, state=self.carry if t.carries_state else None)
        if t.carries_state:
            self.carry = report.get("state")
        norm = clip_grad_norm(t.model.grads, self.cfg.grad_clip or None)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return None, 0
        t.optimizer.step()
        if self.average is not None:
            self.average.update(self.sc["step"])
        return loss, report["count"]

    def _evaluated_weights(self):
        """A context within which the model holds the weights evaluations judge."""
        return nullcontext() if self.average is None else self.average.swapped_in()

    def epoch(self):
        b = self.task.batcher
        return b.epoch + b.position / len(b)

    def _row(self, elapsed):
        return {"step": self.sc["step"], "epoch": round(self.epoch(), 4),
                self.task.count_name: self.sc["tokens"], "elapsed": round(elapsed, 2),
                "lr": self.task.optimizer.lr}

    def log_train(self, elapsed):
        """A training-loss row: the mean loss per target since the last such row."""
        sc = self.sc
        row = self._row(elapsed)
        row["train_loss"] = sc["log_sum"] / sc["log_count"] if sc["log_count"] else None
        sc["log_sum"], sc["log_count"] = 0.0, 0
        append_jsonl(self.path("metrics.jsonl"), row)
        self.curves_stale = True

    # ---- evaluation ----
    def evaluate(self, elapsed, rate, final=False):
        """Evaluate, update best/lr, log and save. Returns the validation loss (None if
        stopped by Ctrl-C). A `final` evaluation (the run stopped off the schedule) changes
        no training state, so a resumed run continues exactly as an uninterrupted one."""
        cfg, sc, task = self.cfg, self.sc, self.task
        with self._evaluated_weights():
            metrics = task.evaluate(self.stop)
        if metrics is None:
            return None
        val = metrics["val_loss"]
        if not math.isfinite(val):
            return val
        if final:
            sc["elapsed"] = elapsed
        before = self.snapshot() if final else None
        row = self._row(elapsed)
        row["train_loss"] = sc["loss_sum"] / sc["loss_count"] if sc["loss_count"] else None
        row.update(metrics)
        row["tok_per_s" if task.count_name == "tokens" else f"{task.count_name}_per_s"] = \
            round(rate, 1)
        if final:
            row["final"] = True
        key = tuple(task.score(row))
        best = self.sc["best_key"]
        is_best = best is None or _beats(key, best, task.improve_eps)
        lr_note = None
        if not final:
            sc["loss_sum"], sc["loss_count"] = 0.0, 0
            if is_best:
                sc["best_key"], sc["best_val"], sc["best_step"] = key, val, sc["step"]
                sc["bad_evals"] = 0
            else:
                sc["bad_evals"] += 1
                opt = task.optimizer
                if sc["bad_evals"] > cfg.patience and opt.lr > cfg.min_lr and cfg.lr_decay < 1:
                    opt.lr = max(cfg.min_lr, opt.lr * cfg.lr_decay)
                    sc["bad_evals"] = 0
                    lr_note = f"validation loss stalled: learning rate lowered to {opt.lr:.2e}"
            sc["last_eval_step"] = sc["step"]
            reached = getattr(task, "reached", None)
            self.target_reached = bool(reached and reached(row))
        sc["elapsed"] = elapsed

        def save():
            # the row first, then the last checkpoint, then the best: a run killed in between
            # resumes from the last, drops the rows logged after it and repairs the best
            append_jsonl(self.path("metrics.jsonl"), row)
            save_arrays(self.last, before or self.snapshot())
            self.last_saved_step = sc["step"]
            if is_best:
                if final:
                    self.sc.update(best_val=val, best_step=self.sc["step"])
                self.save_best()
        self._saving(save)
        self.curves_stale = True
        self.draw_curves()
        self.log(task.format_eval(row, is_best))
        if lr_note:
            self.log(lr_note)
        with self._evaluated_weights():
            sample = task.after_eval(self.sc["step"])
        if sample:
            self.log("\n".join("    " + line for line in sample.split("\n")))
        return val

    def draw_curves(self, force=False):
        """Redraw curves.png after an evaluation, at most every CURVES_EVERY seconds, and
        once more at the end of the run if rows came since."""
        now = time.monotonic()
        due = self.curves_drawn is None or now - self.curves_drawn >= CURVES_EVERY
        if self.curves_stale and (force or due):
            redraw_curves(self.task.run_dir, self.log)
            self.curves_drawn, self.curves_stale = now, False

    # ---- the loop ----
    def total_steps(self):
        by_epochs = math.ceil(self.cfg.max_epochs * len(self.task.batcher))
        return min(by_epochs, self.cfg.max_steps) if self.cfg.max_steps else by_epochs

    def _due_eval(self):
        b = self.task.batcher
        every = self.cfg.eval_every
        return self.sc["step"] % every == 0 if every else b.position == len(b)

    def run(self):
        """Train until a budget is used or Ctrl-C; returns a TrainResult."""
        from tqdm.auto import tqdm

        cfg, sc, task, stop = self.cfg, self.sc, self.task, self.stop
        total = self.total_steps()
        t_start = time.monotonic()
        elapsed0, step0 = sc["elapsed"], sc["step"]
        good = self.snapshot()  # the last state known to be finite
        show = (not sys.stderr.isatty()) if self.progress is None else not self.progress
        bar = tqdm(total=total, initial=min(sc["step"], total), unit="step", dynamic_ncols=True,
                   disable=show, file=sys.stderr)
        rate_t, rate_n, recent, reason, rate, last_val = time.monotonic(), 0, [], None, 0.0, None
        elapsed = lambda: elapsed0 + time.monotonic() - t_start  # noqa: E731
        try:
            with stop:
                while True:
                    if stop.requested:
                        reason = "interrupted"
                    elif sc["step"] >= total:
                        reason = "max_steps" if cfg.max_steps and total == cfg.max_steps \
                            else "max_epochs"
                    elif cfg.time_budget and time.monotonic() - t_start >= cfg.time_budget:
                        reason = "time_budget"
                    elif self.target_reached:
                        reason = "target"
                    if reason:
                        break
                    loss, count = self.train_step()
                    if loss is None:
                        good = self._recover(good)
                        continue
                    sc["step"] += 1
                    sc["tokens"] += count
                    sc["loss_sum"] += loss * count
                    sc["loss_count"] += count
                    sc["log_sum"] += loss * count
                    sc["log_count"] += count
                    rate_n += count
                    recent = (recent + [loss])[-20:]
                    now = time.monotonic()
                    rate = rate_n / (now - rate_t) if now > rate_t else 0.0
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(recent):.3f}",
                                    eta=eta_text(sc["step"] - step0, total - sc["step"],
                                             now - t_start, cfg.time_budget), refresh=False)
                    if cfg.log_every and sc["step"] % cfg.log_every == 0:
                        self.log_train(elapsed())
                    if self._due_eval():
                        val = self.evaluate(elapsed(), rate)
                        if val is not None and not math.isfinite(val):
                            good = self._recover(good)
                            continue
                        if val is not None:
                            good = self.snapshot()
                        rate_t, rate_n = time.monotonic(), 0
                if reason != "interrupted" and sc["last_eval_step"] != sc["step"]:
                    last_val = self.evaluate(elapsed(), rate, final=True)
                    if last_val is not None and not math.isfinite(last_val):
                        self.restore(good)  # never save a diverged model
                if stop.requested:
                    reason = "interrupted"
                if self.last_saved_step != sc["step"] or reason == "interrupted" or \
                        (last_val is not None and not math.isfinite(last_val)):
                    sc["elapsed"] = elapsed()
                    self._saving(save_arrays, self.last, self.snapshot())
        finally:
            bar.close()
        self.draw_curves(force=True)
        return TrainResult(task.run_dir, sc["step"], reason, sc["best_val"], sc["best_step"],
                           last_val)

    def _recover(self, good):
        """After a non-finite loss: back to the last good state with half the lr, or stop."""
        sc, opt = self.sc, self.task.optimizer
        restarts = sc["nonfinite_restarts"] + 1
        step = sc["step"]
        self.restore(good)
        sc["nonfinite_restarts"] = restarts
        if restarts > MAX_RESTARTS:
            save_arrays(self.last, good)  # the last finite state
            raise TrainingDiverged(
                f"training diverged: the loss became NaN or infinite at step {step + 1} "
                f"even after halving the learning rate {MAX_RESTARTS} times; the last good "
                f"checkpoint is {self.last} (try a smaller --learning_rate "
                f"or --grad_clip)")
        opt.lr *= 0.5
        self.log(f"warning: non-finite loss at step {step + 1}: back to step {sc['step']} "
                 f"with learning rate {opt.lr:.2e} ({restarts}/{MAX_RESTARTS})")
        return self.snapshot()


def train_task(task, given=frozenset(), log=None, progress=None, stop=None):
    """Train a task built for a new run or a resumed one (`task.cfg.resume`): resume from
    the last checkpoint (a --learning_rate given now replaces the saved one), print the task's banner,
    run. Returns the TrainResult."""
    trainer = Trainer(task, log=log, progress=progress, stop=stop)
    if task.cfg.resume:
        trainer.resume()
        if "learning_rate" in given:
            task.optimizer.lr = task.cfg.learning_rate
    for line in task.banner(trainer.sc["step"] if task.cfg.resume else None):
        trainer.log(line)
    return trainer.run()


def train_best(task, given=frozenset(), log=None, progress=None, stop=None):
    """train_task, then (TrainResult, the best evaluation's metrics row or None): for the
    tasks whose CLI reports the best evaluation (classifier, seq2seq, recall)."""
    from lm.training.metrics import best_row

    result = train_task(task, given, log, progress, stop)
    return result, best_row(task.run_dir, result.best_step)


def _beats(key, best, eps):
    """Whether score tuple `key` beats `best` (larger is better): its first component by
    more than `eps`, or an equal first component and a better rest (e.g. equal accuracy,
    lower loss)."""
    return key[0] > best[0] + eps or (key[0] == best[0] and key[1:] > best[1:])
