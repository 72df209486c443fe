"""Setting up a training session: run directory, corpus, vocabulary, model, optimiser, resume."""
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from lm.config.training import TrainConfig, init_from_config, resume_config, train_config_from_json
from lm.data.batchers import make_batcher, split_corpus
from lm.models.language_model import LanguageModelRNN
from lm.storage.checkpoint import clean_stale_tmp, load_arrays, read_json, write_json
from lm.storage.run_dir import check_new_run_dir, check_run_dir, default_run_dir
from lm.text.corpora import corpus_info, resolve_corpus
from lm.text.stream import load_corpus
from lm.text.vocab import Vocab
from lm.training.optim import SGD, Adam
from lm.training.state import SCALARS, copy_params, unpack_state

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass
class Session:
    """Everything the training loop works on (no module-level state anywhere)."""
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
    scalars: dict = field(default_factory=dict)   # see lm.training.state.SCALARS
    carry: Optional[list] = None                  # hidden state between BPTT windows
    resumed: bool = False
    notes: list = field(default_factory=list)     # messages for the banner


def build_model(cfg, vocab_size, rng):
    return LanguageModelRNN(vocab_size, cfg.embed_size, cfg.hidden_size, cell=cfg.cell,
                            num_layers=cfg.num_layers, dropout=cfg.dropout,
                            tie_weights=cfg.tie_weights, dtype=DTYPES[cfg.dtype], rng=rng)


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
        if not os.path.isfile(os.path.join(run_dir, "last.npz")):
            raise FileNotFoundError(f"--resume: {run_dir} holds no last.npz to resume from"
                                    + ("" if cfg.out_dir else " (pass --out_dir RUN_DIR)"))
        meta = read_json(os.path.join(run_dir, "config.json"))
        saved = train_config_from_json(meta)
        cfg = resume_config(saved, cfg, given)
        saved_path = (meta.get("data") or {}).get("path")
        if isinstance(saved_path, str) and os.path.isfile(saved_path):
            cfg.corpus = saved_path  # the same file, whatever the current directory
        vocab = Vocab.from_json(read_json(os.path.join(run_dir, "vocab.json")))
    else:
        if cfg.init_from:
            source = check_run_dir(cfg.init_from, "init_from")
            src_cfg = train_config_from_json(read_json(os.path.join(source, "config.json")))
            cfg = init_from_config(src_cfg, cfg, given)
            vocab = Vocab.from_json(read_json(os.path.join(source, "vocab.json")))
            if cfg.line_mode and vocab.bos_id is None:
                raise ValueError(f"--init_from {source} was trained without --line_mode; "
                                 f"its vocabulary has no <bos>/<eos>")
            run_dir = cfg.out_dir or default_run_dir(cfg)
        check_new_run_dir(run_dir)
    return cfg, run_dir, source, vocab


def setup(cfg, given=frozenset()):
    """Build the Session for `cfg` (validated here); `given`: flags named on the command line.

    New run: refuses a directory that already holds a checkpoint. --resume: the saved
    config, vocabulary and last.npz state. --init_from: the source run's vocabulary and
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
    path, _ = resolve_corpus(cfg.corpus)
    corpus = load_corpus(path, cfg.level, cfg.lowercase, cfg.min_count,
                         cfg.max_vocab or None, cfg.line_mode, cfg.encoding,
                         cfg.encoding_errors, vocab=vocab)
    vocab = corpus.vocab
    train_data, val_data = split_corpus(corpus, cfg.val_frac,
                                        cfg.seed if cfg.shuffle_lines else None)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg, len(vocab), rng)
    batcher = make_batcher(train_data, vocab, cfg.batch_size, cfg.seq_length, rng=rng)
    optimizer = make_optimizer(cfg, model)
    s = Session(cfg, run_dir, corpus, vocab, train_data, val_data, batcher, model, optimizer,
                rng, scalars={k: typ(0) for k, typ in SCALARS.items()}, notes=notes)
    s.scalars["best_val"] = float("inf")
    if batcher.note:
        s.notes.append(batcher.note)
    if cfg.resume:
        arrays = load_arrays(os.path.join(run_dir, "last.npz"))
        s.scalars, data_state, s.carry = unpack_state(arrays, model, optimizer, rng)
        batcher.load_state_dict({k: int(v) for k, v in data_state.items()})
        if "learning_rate" in given:
            optimizer.lr = cfg.learning_rate
        s.resumed = True
    elif source is not None:
        best = os.path.join(source, "best.npz")
        arrays = load_arrays(best if os.path.exists(best) else os.path.join(source, "last.npz"))
        copy_params(model, arrays)
        s.notes.append(f"weights and vocabulary from {source}")
    os.makedirs(run_dir, exist_ok=True)
    clean_stale_tmp(run_dir)
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
