"""The language model's task for the Trainer: run directory, corpus, vocabulary, model,
optimiser, resume; its validation, banner and samples. `train(cfg)` runs it."""
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lm.config.training import TrainConfig, init_from_config, resume_config, train_config_from_json
from lm.data.batchers import make_batcher, split_corpus
from lm.models.language_model import LanguageModelRNN
from lm.models.memory import check_memory, count_params, estimate_memory
from lm.storage.checkpoint import (check_fits_checkpoint, copy_into_params, find_checkpoint,
                                   load_arrays, read_json, read_vocab, validate_config,
                                   write_json)
from lm.storage.run_dir import (check_new_run_dir, check_run_dir, check_run_files,
                                default_run_dir, prepare_run_dir)
from lm.text.corpora import corpus_info, resolve_corpus
from lm.text.stream import load_corpus
from lm.text.vocab import Vocab
from lm.training.evaluation import evaluate_loss, evaluated_tokens
from lm.training.metrics import bits_per_char, bits_per_token, format_eval_line, perplexity
from lm.training.optim import SGD, Adam
from lm.training.trainer import train_task

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass
class LanguageModelTask:
    """What the Trainer trains (see lm.training.trainer); no module-level state anywhere."""
    cfg: TrainConfig
    run_dir: str
    corpus: Any            # lm.text.stream.Corpus
    vocab: Vocab
    train_data: Any        # ids (n,) or lm.data.batchers.Lines
    val_data: Any
    batcher: Any           # BPTTBatcher or LineBatcher over train_data
    model: LanguageModelRNN
    optimizer: Any
    rng: np.random.Generator   # initialisation, dropout (shared with the model's layers)
    notes: list = field(default_factory=list)     # messages for the banner
    count_name = "tokens"  # what the trainer counts: target tokens
    improve_eps = 1e-4     # a validation loss must beat the best by this to count

    @property
    def carries_state(self):
        """BPTT windows continue each other (line mode: every line starts afresh)."""
        return not self.cfg.line_mode

    def evaluate(self, should_stop):
        """The validation metrics (None if stopped by Ctrl-C)."""
        cfg = self.cfg
        val = evaluate_loss(self.model, self.val_data, self.vocab, cfg.batch_size,
                            cfg.seq_length, cfg.eval_tokens, should_stop=should_stop)
        if val is None:
            return None
        row = {"val_loss": val, "val_ppl": perplexity(val)}
        if cfg.level == "char":
            row["val_bpc"] = bits_per_token(val)
        elif self.val_chars:
            row["val_bpc"] = bits_per_char(val, _num_tokens(self.val_data), self.val_chars)
        return row

    @property
    def val_chars(self):
        """Characters of the validation text (the stream's tail) at word level; 0 when
        unknown (line mode)."""
        if "_val_chars" not in self.__dict__:
            n = None if self.cfg.line_mode else \
                self.corpus.num_chars(len(self.corpus.ids) - len(self.val_data))
            self.__dict__["_val_chars"] = n or 0
        return self.__dict__["_val_chars"]

    def score(self, row):
        return (-row["val_loss"],)

    def format_eval(self, row, is_best):
        return format_eval_line(row, is_best, self.cfg.level)

    def after_eval(self, step):
        """A short sample for the log (its own RNG: training is unaffected)."""
        return sample_text(self, step, self.cfg.sample_length) if self.cfg.sample_length else None

    def banner(self, resumed_at=None):
        """The start-up lines: corpus, vocabulary, parameters, tokens per step, seed."""
        s = self
        cfg, c, b = s.cfg, s.corpus, s.batcher
        split = f"{len(s.train_data):,} train / {len(s.val_data):,} validation"
        if cfg.line_mode:
            split += " lines, " + ("shuffled with the seed" if cfg.shuffle_lines else "file order")
        lines = [f"corpus  {c.path}: {c.num_bytes:,} bytes, {len(c.ids):,} {cfg.level} tokens"
                 + (f" in {c.num_lines:,} lines" if cfg.line_mode else "")
                 + f" ({split})",
                 f"vocab   {len(s.vocab):,} tokens"
                 + (f" (min_count {cfg.min_count})" if cfg.min_count > 1 else ""),
                 f"model   {cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, embed {cfg.embed_size}, "
                 f"dropout {cfg.dropout:g}, {cfg.softmax} softmax"
                 + (", tied" if cfg.tie_weights else "")
                 + f": {s.model.num_params():,} parameters ({cfg.dtype})"]
        if cfg.line_mode:
            per_step = f"{b.batch_size} lines per step ({len(b)} steps per epoch)"
        else:
            per_step = (f"{b.batch_size} x {b.seq_length} = {b.batch_size * b.seq_length:,} tokens "
                        f"per step ({len(b):,} steps per epoch)")
        lines.append(f"batch   {per_step}; {cfg.optimizer} lr {s.optimizer.lr:.2e}, "
                     f"grad_clip {cfg.grad_clip:g}")
        n_eval = evaluated_tokens(s.val_data, cfg.batch_size, cfg.seq_length, cfg.eval_tokens)
        n_all = evaluated_tokens(s.val_data, cfg.batch_size, cfg.seq_length, 0)
        lines.append(f"eval    {n_eval:,} of {n_all:,} validation tokens every "
                     f"{cfg.eval_every:,} steps" + ("" if n_eval >= n_all else
                                                     " (the first ones: --eval_tokens, 0 = all)"))
        lines.append(f"seed    {cfg.seed}; run directory {s.run_dir}"
                     + (f" (resumed at step {resumed_at:,})" if resumed_at is not None else ""))
        return lines + [f"note    {n}" for n in s.notes]


def sample_text(task, step, length, temperature=0.8):
    """A short sample of `task`'s model: continuing the validation text, or 5 lines."""
    rng = np.random.default_rng([task.cfg.seed, step])
    v, model = task.vocab, task.model
    if task.cfg.line_mode:
        lines = [v.decode_text(model.sample([v.bos_id], 100, temperature, rng=rng,
                                            stop_id=v.eos_id)) for _ in range(5)]
        return "\n".join(lines)
    prompt = np.asarray(task.val_data[:1], dtype=np.int64)
    ids = model.sample(prompt, length, temperature, rng=rng)
    return v.decode_text(np.concatenate([prompt, np.asarray(ids, dtype=np.int64)]))


MEMORY_HINT = ("choose a smaller --hidden_size, --num_layers, --embed_size, --batch_size or "
               "--seq_length (or --max_vocab)")


def check_model_memory(cfg, vocab_size, steps=None):
    """Refuse (NotEnoughMemory) a model and batch whose training step would not fit in the
    memory available, estimated from the sizes before anything is allocated (vocab_size
    None: not known yet, the smallest is assumed)."""
    known = vocab_size is not None
    vocab_size = vocab_size if known else 2
    model = {"vocab_size": vocab_size, "embed_size": cfg.embed_size,
             "hidden_size": cfg.hidden_size, "cell": cfg.cell, "num_layers": cfg.num_layers,
             "tie_weights": cfg.tie_weights, "cache_size": cfg.cache_size}
    est = estimate_memory(model, cfg.dtype, cfg.batch_size, steps or cfg.seq_length,
                          training=True, optimizer=cfg.optimizer)
    check_memory(est, f"training a {cfg.num_layers}-layer {cfg.cell} of {cfg.hidden_size:,} "
                 f"units ({count_params(model)[0]:,} parameters"
                 + (f", {vocab_size:,} tokens)" if known else ")"),
                 MEMORY_HINT)


def build_model(cfg, vocab_size, rng):
    return LanguageModelRNN(vocab_size, cfg.embed_size, cfg.hidden_size, cell=cfg.cell,
                            num_layers=cfg.num_layers, dropout=cfg.dropout,
                            tie_weights=cfg.tie_weights, softmax=cfg.softmax,
                            cache_size=cfg.cache_size, cache_theta=cfg.cache_theta,
                            cache_lambda=cfg.cache_lambda, dtype=DTYPES[cfg.dtype], rng=rng)


def make_optimizer(cfg, model):
    if cfg.optimizer == "sgd":
        return SGD(model, cfg.learning_rate, momentum=cfg.momentum,
                   weight_decay=cfg.weight_decay)
    return Adam(model, cfg.learning_rate, weight_decay=cfg.weight_decay)


def _run_dir_for(cfg, given):
    """Pick the run directory and the final config (resume / init_from merged in)."""
    run_dir = cfg.out_dir or default_run_dir(cfg)
    source = vocab = None
    if cfg.resume:
        if find_checkpoint(run_dir, "last") is None:
            raise FileNotFoundError(f"--resume: {run_dir} holds no last checkpoint to resume from"
                                    + ("" if cfg.out_dir else " (pass --out_dir RUN_DIR)"))
        check_run_files(run_dir)
        label = os.path.join(run_dir, "config.json")
        meta = validate_config(read_json(label), label)
        saved = train_config_from_json(meta, label)
        corpus = cfg.corpus
        cfg = resume_config(saved, cfg, given)
        saved_path = meta.get("data", {}).get("path")
        if "corpus" in given:
            cfg.corpus = corpus  # the corpus named now (the saved path may have moved)
        elif isinstance(saved_path, str) and os.path.isfile(saved_path):
            cfg.corpus = saved_path  # the same file, whatever the current directory
        check_fits_checkpoint(meta, find_checkpoint(run_dir, "last"), label)
        vocab = Vocab.from_json(read_vocab(run_dir, meta["model"]))
    else:
        if cfg.init_from:
            source = check_run_dir(cfg.init_from, "init_from")
            label = os.path.join(source, "config.json")
            meta = validate_config(read_json(label), label)
            src_cfg = train_config_from_json(meta, label)
            cfg = init_from_config(src_cfg, cfg, given)
            check_fits_checkpoint(meta, find_checkpoint(source, "best") or
                                  find_checkpoint(source, "last"), label)
            vocab = Vocab.from_json(read_vocab(source, meta["model"]))
            if cfg.line_mode and vocab.bos_id is None:
                raise ValueError(f"--init_from {source} was trained without --line_mode; "
                                 f"its vocabulary has no <bos>/<eos>")
            run_dir = cfg.out_dir or default_run_dir(cfg)
        check_new_run_dir(run_dir)
    return cfg, run_dir, source, vocab


def setup(cfg, given=frozenset()):
    """Build the task for `cfg` (validated here); `given`: flags named on the command line.

    New run: refuses a directory that already holds a checkpoint. --resume: the saved
    config, vocabulary and last checkpoint. --init_from: the source run's vocabulary and
    weights. Writes config.json and vocab.json only once everything loaded.
    """
    cfg = cfg.validate()
    notes = []
    if not cfg.resume and "line_mode" not in given and not cfg.line_mode \
            and corpus_info(cfg.corpus).get("line_mode"):
        cfg.line_mode = True  # the registry knows `names` is one sample per line
        notes.append(f"{cfg.corpus} is a one-sample-per-line corpus: using --line_mode "
                     f"(--noline_mode to turn it off)")
    cfg, run_dir, source, vocab = _run_dir_for(cfg, set(given))
    check_model_memory(cfg, len(vocab) if vocab is not None else None)  # before the corpus
    path, _ = resolve_corpus(cfg.corpus)
    corpus = load_corpus(path, cfg.level, cfg.lowercase, cfg.min_count,
                         cfg.max_vocab or None, cfg.line_mode, cfg.encoding,
                         cfg.encoding_errors, vocab=vocab, tokenizer=cfg.tokenizer)
    vocab = corpus.vocab
    cfg.resolve_softmax(len(vocab))  # --softmax auto: by the vocabulary's size
    train_data, val_data = split_corpus(corpus, cfg.val_frac,
                                        cfg.seed if cfg.shuffle_lines else None)
    check_model_memory(cfg, len(vocab), steps=int(train_data.lengths.max()) + 1
                       if cfg.line_mode and len(train_data) else None)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg, len(vocab), rng)
    batcher = make_batcher(train_data, vocab, cfg.batch_size, cfg.seq_length, rng=rng)
    optimizer = make_optimizer(cfg, model)
    s = LanguageModelTask(cfg, run_dir, corpus, vocab, train_data, val_data, batcher, model,
                          optimizer, rng, notes=notes)
    if batcher.note:
        s.notes.append(batcher.note)
    if source is not None and not cfg.resume:
        best = find_checkpoint(source, "best") or find_checkpoint(source, "last")
        copy_into_params(model.params, load_arrays(best), label=best)
        s.notes.append(f"weights and vocabulary from {source}")
    prepare_run_dir(run_dir, new=not cfg.resume)
    write_json(os.path.join(run_dir, "vocab.json"), vocab.to_json())
    write_json(os.path.join(run_dir, "config.json"), {
        "kind": "language_model", "model": model.config(), "train": cfg.to_dict(),
        "data": {"path": os.path.abspath(corpus.path), "bytes": int(corpus.num_bytes),
                 "tokens": int(len(corpus.ids)), "lines": corpus.num_lines,
                 "train_tokens": int(_num_tokens(train_data)),
                 "val_tokens": int(_num_tokens(val_data)),
                 "batch_size": int(batcher.batch_size),
                 "seq_length": int(getattr(batcher, "seq_length", 0))}})
    return s


def _num_tokens(data):
    return len(data.ids) if hasattr(data, "offsets") else len(data)


def train(cfg, given=frozenset(), log=None, progress=None, stop=None):
    """Train a language model as `cfg` says; returns the Trainer's TrainResult.

    given: flag names set on the command line (resume keeps the others from config.json).
    log: function taking one line (default: print through tqdm). progress: show a bar
    (None: only when stderr is a terminal). stop: a StopFlag (default: a new one).
    """
    return train_task(setup(cfg, given), given, log, progress, stop)
