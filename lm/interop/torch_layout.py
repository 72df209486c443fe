"""PyTorch layout: an lm model's flat params <-> a PyTorch state dict, in numpy (no torch).

One registry entry per model kind (`LAYOUTS[kind]`: how to build the lm model from its
config, and the two mappings), so a new model adds its mapping with `register`. The
pieces are shared: `embedding_*`, `rnn_stack_*` (nn.RNN/nn.GRU/nn.LSTM, any depth,
either direction; `rnn_layer_*` one layer of it), `conv1d_*` (nn.Conv1d), `linear_*`
(nn.Linear) and `adaptive_*` (nn.AdaptiveLogSoftmaxWithLoss).

Conventions (ours -> PyTorch): weights are multiplied on the right in lm (`x @ Wx`, Wx
(D, G*H)) and on the left in PyTorch (weight_ih (G*H, D)), so every matrix is transposed.
LSTM gate blocks are i, f, o, g in lm and i, f, g, o in PyTorch (the same swap both ways).
lm's LSTM and RNN have one bias b, PyTorch two: export writes bias_ih = b (reordered),
bias_hh = 0, and import takes b = bias_ih + bias_hh, which gives the same outputs. The
GRU's bx, bh are bias_ih, bias_hh exactly (n = tanh(x Wx_n + bx_n + r*(h Wh_n + bh_n))).
lm's Conv1D weight is W (K, D, F) and nn.Conv1d's (F, D, K) = W.transpose(2, 1, 0); both
cross-correlate and pad "same" alike (an even kernel's extra zero on the right).

A new kind is a few lines: `seq2seq_to_torch` below (encoder.*, decoder.*) is one, built
from the same pieces and registered with `register("seq2seq", ...)`.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lm.models.classifier import SentimentClassifier
from lm.models.language_model import LanguageModelRNN
from lm.models.seq2seq import Seq2Seq

LSTM_BLOCKS = [0, 1, 3, 2]  # lm i, f, o, g <-> PyTorch i, f, g, o (its own inverse)
BIASES = {"rnn": ("b",), "lstm": ("b",), "gru": ("bx", "bh")}
CONV_CELLS = ("cnn", "cnn-lstm")  # Conv1D (+ max-pool and an LSTM stack for cnn-lstm)
ENCODER_CELLS = ("bag", *BIASES, *CONV_CELLS)  # the encoders that have a layout


def _gates(a, cell):
    """Rows of a (G*H, ...) array with the LSTM's gate blocks swapped (others as is)."""
    if cell != "lstm":
        return np.array(a)
    H = a.shape[0] // 4
    return np.concatenate([a[k * H:(k + 1) * H] for k in LSTM_BLOCKS])


def _t(a):
    """A contiguous transposed copy (never a view of the model's own arrays)."""
    return np.ascontiguousarray(np.asarray(a).T)


# ---- the pieces ------------------------------------------------------------------

def embedding_to_torch(params, lm_name="embed.W", torch_prefix="embedding."):
    """nn.Embedding: weight (V, E) = W (V, E)."""
    return {torch_prefix + "weight": np.array(params[lm_name])}


def embedding_from_torch(state, lm_name="embed.W", torch_prefix="embedding."):
    return {lm_name: np.array(state[torch_prefix + "weight"])}


def linear_to_torch(params, lm_prefix, torch_prefix, bias=True):
    """nn.Linear: weight (M, H) = W.T, bias (M,) = b; lm's W is (H, M)."""
    out = {torch_prefix + "weight": _t(params[lm_prefix + "W"])}
    if bias:
        out[torch_prefix + "bias"] = np.array(params[lm_prefix + "b"])
    return out


def linear_from_torch(state, lm_prefix, torch_prefix, bias=True):
    out = {lm_prefix + "W": _t(state[torch_prefix + "weight"])}
    if bias:
        out[lm_prefix + "b"] = np.array(state[torch_prefix + "bias"])
    return out


def conv1d_to_torch(params, lm_prefix="conv.", torch_prefix="conv."):
    """nn.Conv1d: weight (F, D, K) = W.transpose(2, 1, 0), bias (F,) = b; lm's W is (K, D, F)."""
    w = np.asarray(params[lm_prefix + "W"])
    return {torch_prefix + "weight": np.ascontiguousarray(w.transpose(2, 1, 0)),
            torch_prefix + "bias": np.array(params[lm_prefix + "b"])}


def conv1d_from_torch(state, lm_prefix="conv.", torch_prefix="conv."):
    w = np.asarray(state[torch_prefix + "weight"])
    return {lm_prefix + "W": np.ascontiguousarray(w.transpose(2, 1, 0)),
            lm_prefix + "b": np.array(state[torch_prefix + "bias"])}


def _directions(bidirectional):
    """(lm infix, PyTorch suffix) of each direction of a layer."""
    return [("fwd.", ""), ("bwd.", "_reverse")] if bidirectional else [("", "")]


def rnn_layer_to_torch(params, cell, lm_prefix, torch_prefix, suffix):
    """One recurrent layer `{lm_prefix}Wx, Wh, b|bx,bh` -> `{torch_prefix}weight_ih{suffix}`,
    weight_hh, bias_ih, bias_hh (suffix e.g. "_l0" or "_l1_reverse")."""
    p = {n: params[lm_prefix + n] for n in ("Wx", "Wh") + BIASES[cell]}
    out = {f"{torch_prefix}weight_ih{suffix}": _gates(_t(p["Wx"]), cell),
           f"{torch_prefix}weight_hh{suffix}": _gates(_t(p["Wh"]), cell)}
    if cell == "gru":
        out[f"{torch_prefix}bias_ih{suffix}"] = np.array(p["bx"])
        out[f"{torch_prefix}bias_hh{suffix}"] = np.array(p["bh"])
    else:
        out[f"{torch_prefix}bias_ih{suffix}"] = _gates(p["b"], cell)
        out[f"{torch_prefix}bias_hh{suffix}"] = np.zeros_like(p["b"])
    return out


def rnn_layer_from_torch(state, cell, lm_prefix, torch_prefix, suffix):
    """Inverse of rnn_layer_to_torch; lm's single bias b = bias_ih + bias_hh."""
    def get(n):
        return np.asarray(state[f"{torch_prefix}{n}{suffix}"])
    out = {lm_prefix + "Wx": _t(_gates(get("weight_ih"), cell)),
           lm_prefix + "Wh": _t(_gates(get("weight_hh"), cell))}
    if cell == "gru":
        out[lm_prefix + "bx"] = np.array(get("bias_ih"))
        out[lm_prefix + "bh"] = np.array(get("bias_hh"))
    else:
        out[lm_prefix + "b"] = _gates(get("bias_ih") + get("bias_hh"), cell)
    return out


def rnn_stack_to_torch(params, cell, num_layers, bidirectional=False, lm_prefix="rnn",
                       torch_prefix="rnn."):
    """Recurrent layers `{lm_prefix}{k}.[fwd.|bwd.]Wx, Wh, b|bx,bh` -> nn.RNN/GRU/LSTM keys
    `{torch_prefix}weight_ih_l{k}[_reverse]`, weight_hh, bias_ih, bias_hh."""
    out = {}
    for k in range(num_layers):
        for infix, suffix in _directions(bidirectional):
            out.update(rnn_layer_to_torch(params, cell, f"{lm_prefix}{k}.{infix}",
                                          torch_prefix, f"_l{k}{suffix}"))
    return out


def rnn_stack_from_torch(state, cell, num_layers, bidirectional=False, lm_prefix="rnn",
                         torch_prefix="rnn."):
    """Inverse of rnn_stack_to_torch; lm's single bias b = bias_ih + bias_hh."""
    out = {}
    for k in range(num_layers):
        for infix, suffix in _directions(bidirectional):
            out.update(rnn_layer_from_torch(state, cell, f"{lm_prefix}{k}.{infix}",
                                            torch_prefix, f"_l{k}{suffix}"))
    return out


def adaptive_to_torch(params, lm_prefix="head.", torch_prefix="decoder."):
    """lm.layers.AdaptiveSoftmax params (W, b, proj{i}, out{i}) -> the state dict of
    nn.AdaptiveLogSoftmaxWithLoss: head.weight = W.T, head.bias = b (with head_bias),
    tail.{i}.0.weight = proj{i}.T, tail.{i}.1.weight = out{i}.T."""
    out = {torch_prefix + "head.weight": _t(params[lm_prefix + "W"])}
    if lm_prefix + "b" in params:
        out[torch_prefix + "head.bias"] = np.array(params[lm_prefix + "b"])
    i = 0
    while f"{lm_prefix}proj{i}" in params:
        out[f"{torch_prefix}tail.{i}.0.weight"] = _t(params[f"{lm_prefix}proj{i}"])
        out[f"{torch_prefix}tail.{i}.1.weight"] = _t(params[f"{lm_prefix}out{i}"])
        i += 1
    return out


def adaptive_from_torch(state, lm_prefix="head.", torch_prefix="decoder."):
    out = {lm_prefix + "W": _t(state[torch_prefix + "head.weight"])}
    if torch_prefix + "head.bias" in state:
        out[lm_prefix + "b"] = np.array(state[torch_prefix + "head.bias"])
    i = 0
    while f"{torch_prefix}tail.{i}.0.weight" in state:
        out[f"{lm_prefix}proj{i}"] = _t(state[f"{torch_prefix}tail.{i}.0.weight"])
        out[f"{lm_prefix}out{i}"] = _t(state[f"{torch_prefix}tail.{i}.1.weight"])
        i += 1
    return out


# ---- the models ------------------------------------------------------------------

def _rnn_cell(config, cells=None):
    """The recurrent cell of an encoder config (None: none); ValueError for a cell that has
    no layout (cells: those allowed, default ENCODER_CELLS)."""
    cells = ENCODER_CELLS if cells is None else cells
    cell = config.get("cell")
    if cell not in cells:
        raise ValueError(f"no PyTorch layout for cell {cell!r}; known: {', '.join(cells)}")
    return {"bag": None, "cnn": None, "cnn-lstm": "lstm"}.get(cell, cell)


def _encoder_to_torch(config, params, cells=None):
    """embedding.*, conv.* (cnn, cnn-lstm), rnn.* (the recurrent cells and cnn-lstm)."""
    rnn = _rnn_cell(config, cells)
    out = embedding_to_torch(params)
    if config["cell"] in CONV_CELLS:
        out.update(conv1d_to_torch(params))
    if rnn is not None:
        out.update(rnn_stack_to_torch(params, rnn, config.get("num_layers", 1),
                                      config.get("bidirectional", False)))
    return out


def _encoder_from_torch(config, state, cells=None):
    rnn = _rnn_cell(config, cells)
    out = embedding_from_torch(state)
    if config["cell"] in CONV_CELLS:
        out.update(conv1d_from_torch(state))
    if rnn is not None:
        out.update(rnn_stack_from_torch(state, rnn, config.get("num_layers", 1),
                                        config.get("bidirectional", False)))
    return out


def lm_to_torch(config, params):
    """LanguageModelRNN -> embedding.*, rnn.*, decoder.weight/bias (nn.Linear, written
    even when tied: weight = the embedding), or decoder.* of an adaptive softmax."""
    out = _encoder_to_torch(config, params, tuple(BIASES))
    if "head.proj0" in params:
        out.update(adaptive_to_torch(params))
    elif config.get("tie_weights", False):
        out["decoder.weight"] = np.array(params["embed.W"])
        out["decoder.bias"] = np.array(params["head.b"])
    else:
        out.update(linear_to_torch(params, "head.", "decoder."))
    return out


def lm_from_torch(config, state):
    out = _encoder_from_torch(config, state, tuple(BIASES))
    if "decoder.head.weight" in state:
        out.update(adaptive_from_torch(state))
    elif config.get("tie_weights", False):
        if not np.array_equal(state["decoder.weight"], state["embedding.weight"]):
            raise ValueError("the model ties its weights but decoder.weight differs from "
                             "embedding.weight")
        out["head.b"] = np.array(state["decoder.bias"])
    else:
        out.update(linear_from_torch(state, "head.", "decoder."))
    return out


def classifier_to_torch(config, params):
    """SentimentClassifier -> embedding.*, conv.weight (F, E, K), conv.bias (F,) (cells cnn,
    cnn-lstm), rnn.* (with _reverse keys when bidirectional; cnn-lstm's LSTM stack),
    classifier.weight (C, H_out), classifier.bias (C,); pooling has no weights."""
    return {**_encoder_to_torch(config, params),
            **linear_to_torch(params, "head.", "classifier.")}


def classifier_from_torch(config, state):
    return {**_encoder_from_torch(config, state),
            **linear_from_torch(state, "head.", "classifier.")}


def seq2seq_to_torch(config, params):
    """Seq2Seq -> encoder.embedding.weight, encoder.rnn.* (nn.RNN/GRU/LSTM, `_reverse`
    keys when bidirectional), decoder.embedding.weight ("teacher" only), decoder.rnn.*_l0
    (one layer of Hd units), decoder.out.weight (V, Hd), decoder.out.bias (V,)."""
    cell = _rnn_cell(config, tuple(BIASES))
    out = {**embedding_to_torch(params, "embed.W", "encoder.embedding."),
           **rnn_stack_to_torch(params, cell, config["num_layers"], config["bidirectional"],
                                "rnn", "encoder.rnn.")}
    if config["decoder_input"] == "teacher":
        out.update(embedding_to_torch(params, "dec_embed.W", "decoder.embedding."))
    out.update(rnn_layer_to_torch(params, cell, "dec.", "decoder.rnn.", "_l0"))
    out.update(linear_to_torch(params, "head.", "decoder.out."))
    return out


def seq2seq_from_torch(config, state):
    cell = _rnn_cell(config, tuple(BIASES))
    out = {**embedding_from_torch(state, "embed.W", "encoder.embedding."),
           **rnn_stack_from_torch(state, cell, config["num_layers"], config["bidirectional"],
                                  "rnn", "encoder.rnn.")}
    if config["decoder_input"] == "teacher":
        out.update(embedding_from_torch(state, "dec_embed.W", "decoder.embedding."))
    out.update(rnn_layer_from_torch(state, cell, "dec.", "decoder.rnn.", "_l0"))
    out.update(linear_from_torch(state, "head.", "decoder.out."))
    return out


# ---- the registry ----------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """How one kind of model crosses over. build(model_config, dtype) -> lm model;
    to_torch(model_config, params) -> state dict; from_torch(model_config, state) ->
    params (numpy arrays on both sides)."""
    build: Callable
    to_torch: Callable
    from_torch: Callable


LAYOUTS = {}


def register(kind, build, to_torch, from_torch):
    """Add the mapping of a model kind (config.json's "kind")."""
    LAYOUTS[kind] = Layout(build, to_torch, from_torch)


def layout(kind):
    if kind not in LAYOUTS:
        raise ValueError(f"no PyTorch layout for model kind {kind!r}; known: "
                         f"{', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[kind]


register("language_model", LanguageModelRNN.from_config, lm_to_torch, lm_from_torch)
register("sentiment", SentimentClassifier.from_config, classifier_to_torch,
         classifier_from_torch)
# The recall task's model is the classifier (last-step pooling): the same layout.
register("recall", SentimentClassifier.from_config, classifier_to_torch,
         classifier_from_torch)
register("seq2seq", Seq2Seq.from_config, seq2seq_to_torch, seq2seq_from_torch)


def to_torch(kind, model):
    """The PyTorch state dict (name -> numpy array, fresh copies) of an lm model."""
    return layout(kind).to_torch(model.config(), model.params)


def from_torch(kind, config, state):
    """lm params {name: array} from a PyTorch state dict; KeyError names a missing key."""
    return layout(kind).from_torch(config, state)
