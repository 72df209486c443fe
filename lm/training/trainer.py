"""The training loop: steps, evaluation, checkpoints, lr schedule, divergence and Ctrl-C.

`train(cfg)` is importable and keeps no global state: a Session (lm.training.lm_task) holds
the data, model and optimiser; this module steps it. Per step: next batch (hidden state
carried between BPTT windows, reset at each epoch), loss and gradients, global-norm
clipping, optimiser step. Every `eval_every` steps: validation loss, best.npz when it
improves, last.npz (everything needed to resume exactly), a metrics.jsonl line,
curves.png, an eval line and a short sample. The lr is multiplied by `lr_decay` after
more than `patience` evaluations without improvement. A non-finite loss is never saved:
the run goes back to its last good state with half the lr, at most MAX_RESTARTS times.
"""
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from lm.storage.checkpoint import append_jsonl, load_arrays, save_arrays
from lm.cli import CliError
from lm.evaluate import evaluate_loss
from lm.training.metrics import bits_per_token, format_eval_line, perplexity
from lm.training.optim import clip_grad_norm
from lm.training.report import banner, indent, redraw_curves, sample_text, trim_metrics
from lm.training.lm_task import setup
from lm.training.state import pack_state, unpack_state

MAX_RESTARTS = 3          # non-finite losses survived (each halves the lr) before giving up
IMPROVE_EPS = 1e-4        # a validation loss must beat the best by this to count


@dataclass
class TrainResult:
    run_dir: str
    step: int
    reason: str            # "max_epochs", "max_steps", "time_budget" or "interrupted"
    best_val: float        # inf when never evaluated
    best_step: int
    last_val: float = None


class StopFlag:
    """SIGINT handler for the duration of training: the first Ctrl-C asks the loop to save
    and stop between steps; further ones while saving only say to wait (the save is atomic
    anyway); a third one outside a save raises KeyboardInterrupt."""

    def __init__(self, log=None):
        self.requested = False
        self.saving = False
        self.count = 0
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._previous = None

    def __call__(self):
        return self.requested

    def _handler(self, signum, frame):
        self.count += 1
        self.requested = True
        if self.count == 1:
            self.log("\ninterrupt: saving last.npz after this step (Ctrl-C again to force)")
        elif self.saving or self.count == 2:
            self.log("interrupt: still saving, please wait")
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False


def _epoch(batcher):
    return batcher.epoch + batcher.position / len(batcher)


def _total_steps(cfg, batcher):
    by_epochs = math.ceil(cfg.max_epochs * len(batcher))
    return min(by_epochs, cfg.max_steps) if cfg.max_steps else by_epochs


def train_step(s):
    """One optimisation step; returns (loss, tokens) or (None, 0) if it was not finite."""
    batch = s.batcher.next_batch()
    if s.batcher.starts_epoch:
        s.carry = None  # streams start again from their beginning
    if len(batch) == 3:
        x, y, mask = batch
        loss, _ = s.model.loss(x, y, mask)
        ntok = int(np.count_nonzero(mask))
    else:
        x, y = batch
        loss, s.carry = s.model.loss(x, y, state=s.carry)
        ntok = x.size
    norm = clip_grad_norm(s.model.grads, s.cfg.grad_clip or None)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return None, 0
    s.optimizer.step()
    return loss, ntok


def snapshot(s):
    return pack_state(s.model, s.optimizer, s.scalars, s.batcher.state_dict(), s.carry, s.rng)


def restore(s, snap):
    scalars, data_state, s.carry = unpack_state(snap, s.model, s.optimizer, s.rng)
    s.scalars.update(scalars)  # in place: the loop holds a reference to this dict
    s.batcher.load_state_dict({k: int(v) for k, v in data_state.items()})


def save_last(s, stop):
    stop.saving = True
    try:
        save_arrays(os.path.join(s.run_dir, "last.npz"), snapshot(s))
    finally:
        stop.saving = False


def evaluate(s, stop, log, elapsed, tok_per_s):
    """Validate, update best/lr, save, log. Returns the validation loss (None if stopped)."""
    cfg, sc = s.cfg, s.scalars
    val = evaluate_loss(s.model, s.val_data, s.vocab, cfg.batch_size, cfg.seq_length,
                        cfg.eval_tokens, should_stop=stop)
    if val is None:
        return None
    if not math.isfinite(val):
        return val
    train_loss = sc["loss_sum"] / sc["loss_count"] if sc["loss_count"] else None
    sc["loss_sum"], sc["loss_count"] = 0.0, 0
    row = {"step": sc["step"], "epoch": round(_epoch(s.batcher), 4), "tokens": sc["tokens"],
           "elapsed": round(elapsed, 2), "lr": s.optimizer.lr, "train_loss": train_loss,
           "val_loss": val, "val_ppl": perplexity(val), "tok_per_s": round(tok_per_s, 1)}
    if cfg.level == "char":
        row["val_bpc"] = bits_per_token(val)
    is_best = val < sc["best_val"] - IMPROVE_EPS
    lr_note = None
    if is_best:
        sc["best_val"], sc["best_step"], sc["bad_evals"] = val, sc["step"], 0
    else:
        sc["bad_evals"] += 1
        if sc["bad_evals"] > cfg.patience and s.optimizer.lr > cfg.min_lr:
            s.optimizer.lr = max(cfg.min_lr, s.optimizer.lr * cfg.lr_decay)
            sc["bad_evals"] = 0
            lr_note = f"validation loss stalled: learning rate lowered to {s.optimizer.lr:.2e}"
    sc["last_eval_step"] = sc["step"]
    sc["elapsed"] = elapsed
    stop.saving = True
    try:
        # last.npz first: a run killed before best.npz is written still has this best's
        # weights in last.npz, and `repair_best` restores best.npz from them on resume
        save_arrays(os.path.join(s.run_dir, "last.npz"), snapshot(s))
        if is_best:
            save_best(s)
        append_jsonl(os.path.join(s.run_dir, "metrics.jsonl"), row)
    finally:
        stop.saving = False
    redraw_curves(s, log)
    log(format_eval_line(row, is_best, cfg.level))
    if lr_note:
        log(lr_note)
    if cfg.sample_length:
        log(indent(sample_text(s, cfg.sample_length)))
    return val


def save_best(s):
    """best.npz: the model's weights now, with the step and validation loss of the best."""
    sc = s.scalars
    save_arrays(os.path.join(s.run_dir, "best.npz"),
                {**{f"param/{k}": v for k, v in s.model.params.items()},
                 "state/step": np.asarray(sc["best_step"], dtype=np.int64),
                 "state/val_loss": np.asarray(sc["best_val"], dtype=np.float64)})


def repair_best(s):
    """On resume: if the run stopped between saving last.npz and best.npz at a new best,
    best.npz is written now from last.npz's weights (the best was evaluated at that very
    step). Returns whether it wrote."""
    sc = s.scalars
    if sc["best_step"] != sc["step"] or not math.isfinite(sc["best_val"]):
        return False
    path = os.path.join(s.run_dir, "best.npz")
    if os.path.exists(path) and int(load_arrays(path).get("state/step", -1)) == sc["step"]:
        return False
    save_best(s)
    return True


def train(cfg, given=frozenset(), log=None, progress=None, stop=None):
    """Train as `cfg` says; returns a TrainResult. See the module docstring.

    given: flag names set on the command line (resume keeps the others from config.json).
    log: function taking one line (default: print through tqdm). progress: show a bar
    (None: only when stderr is a terminal). stop: a StopFlag (default: a new one).
    """
    from tqdm.auto import tqdm

    log = log or (lambda line: tqdm.write(line, file=sys.stdout))
    s = setup(cfg, given)
    cfg, sc = s.cfg, s.scalars
    for line in banner(s):
        log(line)
    if s.resumed:
        trim_metrics(s.run_dir, sc["step"])
        if repair_best(s):
            log(f"best.npz rewritten from last.npz (the run stopped before saving it at step {sc['step']})")
    stop = stop or StopFlag()
    total = _total_steps(cfg, s.batcher)
    t_start = time.monotonic()
    elapsed0, step0 = sc["elapsed"], sc["step"]
    good = snapshot(s)  # the last state known to be finite
    bar = tqdm(total=total, initial=min(sc["step"], total), unit="step", dynamic_ncols=True,
               disable=(not sys.stderr.isatty()) if progress is None else not progress,
               file=sys.stderr)
    rate_t, rate_tok, recent, reason = time.monotonic(), 0, [], None
    tok_per_s = 0.0
    try:
        with stop:
            while True:
                now = time.monotonic()
                if stop.requested:
                    reason = "interrupted"
                elif sc["step"] >= total:
                    reason = "max_steps" if cfg.max_steps and total == cfg.max_steps \
                        else "max_epochs"
                elif cfg.time_budget and now - t_start >= cfg.time_budget:
                    reason = "time_budget"
                if reason:
                    break
                loss, ntok = train_step(s)
                if loss is None:
                    good = _recover(s, good, log)
                    continue
                sc["step"] += 1
                sc["tokens"] += ntok
                sc["loss_sum"] += loss * ntok
                sc["loss_count"] += ntok
                rate_tok += ntok
                recent = (recent + [loss])[-20:]
                now = time.monotonic()
                tok_per_s = rate_tok / (now - rate_t) if now > rate_t else 0.0
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(recent):.3f}", tok_s=f"{tok_per_s:,.0f}",
                                eta=_eta(sc["step"] - step0, total - sc["step"], now - t_start,
                                         cfg.time_budget), refresh=False)
                if sc["step"] % cfg.eval_every == 0:
                    val = evaluate(s, stop, log, elapsed0 + time.monotonic() - t_start,
                                   tok_per_s)
                    if val is not None and not math.isfinite(val):
                        good = _recover(s, good, log)
                        continue
                    if val is not None:
                        good = snapshot(s)
                    rate_t, rate_tok = time.monotonic(), 0
            last_val = None
            if reason != "interrupted" and sc["last_eval_step"] != sc["step"]:
                last_val = evaluate(s, stop, log, elapsed0 + time.monotonic() - t_start,
                                    tok_per_s)
                if last_val is not None and not math.isfinite(last_val):
                    restore(s, good)  # never save a diverged model
            if stop.requested:
                reason = "interrupted"
            sc["elapsed"] = elapsed0 + time.monotonic() - t_start
            save_last(s, stop)
    finally:
        bar.close()
    return TrainResult(s.run_dir, sc["step"], reason, sc["best_val"], sc["best_step"], last_val)


def _eta(steps_done, steps_left, seconds, budget):
    """Time left as m:ss: by the step rate so far, capped by the time budget."""
    left = steps_left * seconds / steps_done if steps_done else float("inf")
    if budget:
        left = min(left, max(0.0, budget - seconds))
    if not math.isfinite(left):
        return "?"
    m, sec = divmod(int(left), 60)
    return f"{m // 60}:{m % 60:02d}:{sec:02d}" if m >= 60 else f"{m}:{sec:02d}"


def _recover(s, good, log):
    """After a non-finite loss: back to the last good state with half the lr, or stop."""
    restarts = s.scalars["nonfinite_restarts"] + 1
    step = s.scalars["step"]
    restore(s, good)
    s.scalars["nonfinite_restarts"] = restarts
    if restarts > MAX_RESTARTS:
        save_arrays(os.path.join(s.run_dir, "last.npz"), good)  # the last finite state
        raise CliError(f"training diverged: the loss became NaN or infinite at step {step + 1} "
                       f"even after halving the learning rate {MAX_RESTARTS} times; the last "
                       f"good checkpoint is {s.run_dir}/last.npz (try a smaller "
                       f"--learning_rate or --grad_clip)", code=1)
    s.optimizer.lr *= 0.5
    log(f"warning: non-finite loss at step {step + 1}: back to step {s.scalars['step']} "
        f"with learning rate {s.optimizer.lr:.2e} ({restarts}/{MAX_RESTARTS})")
    return snapshot(s)
