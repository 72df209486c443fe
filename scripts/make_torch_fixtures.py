"""Write PyTorch reference outputs and gradients for our layers to tests/fixtures/.

Usage: python scripts/make_torch_fixtures.py [--out tests/fixtures] [--only rnn|adaptive|conv|interop]

For nn.RNN (tanh), nn.LSTM and nn.GRU (batch_first, one layer, float64), unidirectional
and bidirectional, it runs forward with fixed weights, inputs and initial states, with
and without variable lengths (pack_padded_sequence), then backward with a fixed random
upstream gradient on the outputs, and saves everything in OUR layout as plain arrays
(np.load(..., allow_pickle=False) works), so tests/test_torch_reference.py needs no torch.

Keys in each .npz:
  x (N, T, D), mask (N, T) bool, lengths (N,), dout (N, T, H or 2H): inputs;
  h0, c0 (N, H) or (H,), for bidirectional (N, 2H) = [forward, backward] (absent: zeros);
  param.<name>: weights in our layout (Wx (D, G*H), Wh (H, G*H), b or bx, bh;
    bidirectional: fwd.<name>, bwd.<name>);
  out (N, T, H or 2H), zero at padded steps like pad_packed_sequence;
  hN, cN: final states, (N, H), or (2, N, H) for bidirectional (forward, backward) as
    PyTorch gives them;
  dx, dh0, dc0 and grad.<name>: gradients of sum(out * dout).
Mapping: Wx = weight_ih.T, Wh = weight_hh.T; RNN/LSTM b = bias_ih + bias_hh; LSTM gate
blocks reordered from PyTorch's i, f, g, o to our i, f, o, g; GRU bx = bias_ih,
bh = bias_hh, blocks r, z, n as in PyTorch.

nn.Conv1d and nn.MaxPool1d (float64, torch_conv1d_*.npz, torch_maxpool1d_*.npz): PyTorch
has no masks, so a row with padding is run cut to its length (Conv1d) or with -inf at its
padded steps (MaxPool1d), and the outputs are zero where ours are invalid. Keys:
  x (N, T, D), with random junk at padded steps; mask (N, T) bool, lengths (N,);
  dout (N, T', F or D): the upstream gradient, zero at invalid outputs;
  out, out_mask (N, T'): outputs (zero where invalid) and which are valid;
  dx and (Conv1d) grad.W, grad.b: gradients of sum(out * dout);
  Conv1d: param.W (K, D, F) = weight.permute(2, 1, 0), param.b; kernel_size, padding;
  MaxPool1d: pool_size, stride.

nn.AdaptiveLogSoftmaxWithLoss (torch_adaptive_softmax{,_bias}.npz, float64, V=13,
cutoffs [4, 9], H=8, div_value 2; tests/test_adaptive_softmax.py): keys
  x (M, H), y (M,) targets covering the head and both clusters: inputs;
  param.<name>: W = head.weight.T, b = head.bias (with head_bias), proj{i} =
    tail.{i}.0.weight.T, out{i} = tail.{i}.1.weight.T;
  loss (mean over the M rows), output (M,) log p(y | x), log_prob (M, V);
  dx and grad.<name>: gradients of loss.

PyTorch-layout models (interop/<name>.safetensors + interop/<name>.npz, float32;
tests/test_interop*.py): lm.interop.torch_model modules (nn.Embedding, nn.RNN/GRU/LSTM,
nn.Linear, nn.AdaptiveLogSoftmaxWithLoss) with seeded weights, both biases random, saved
as PyTorch saves them (safetensors.torch, no lm checksum) with lm's metadata, so the file
is also what `python -m lm.import_torch` reads. The .npz holds ids (N, T), lengths (N,)
(classifiers), and the module's eval-mode output: logits (N, T, V), scores (N, C), or
for the bare adaptive layer x (M, H) and log_prob (M, V). Seq2seq models (s2s_*, the
1-digit adder's vocabulary, data.task addition): src (N, S), src_lengths (N,), targets
(N, T), target_lengths (N,), logits (N, T, V) and generated (N, L) (greedy decoding).
Convolutional classifiers (clf_cnn_*: cells cnn and cnn-lstm, nn.Conv1d under conv.) have
the classifiers' keys, with ids (3, 11) and lengths [11, 5, 1] of their own.
(The safetensors package writes the metadata in a hash order that changes from run to
run: regenerated files hold the same tensors and metadata, not the same bytes.)
"""
import argparse
import os
import sys

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

N, T, D, H = 3, 4, 3, 5                     # H != D, so transposes cannot hide
LENGTHS = [4, 2, 1]                         # one full row, so padding keeps T steps
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
MODULES = {"rnn": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
           "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def block_order(cell):
    """Our gate blocks as indices into PyTorch's blocks."""
    return [0, 1, 3, 2] if cell == "lstm" else list(range(GATES[cell]))


def to_ours(cell, w):
    """PyTorch (G*H, ...) weight or (G*H,) bias -> rows reordered into our gate order."""
    blocks = [w[k * H:(k + 1) * H] for k in block_order(cell)]
    return torch.cat(blocks, dim=0)


def our_params(cell, mod, suffix, grads=False):
    """Weights (or their gradients) of one direction of `mod`, in our layout, as numpy."""
    get = (lambda p: p.grad) if grads else (lambda p: p.detach())
    w_ih = get(getattr(mod, "weight_ih_l0" + suffix))
    w_hh = get(getattr(mod, "weight_hh_l0" + suffix))
    b_ih = get(getattr(mod, "bias_ih_l0" + suffix))
    b_hh = get(getattr(mod, "bias_hh_l0" + suffix))
    out = {"Wx": to_ours(cell, w_ih).T.numpy(), "Wh": to_ours(cell, w_hh).T.numpy()}
    if cell == "gru":
        out["bx"], out["bh"] = b_ih.numpy(), b_hh.numpy()
    elif grads:
        # b = bias_ih + bias_hh, so dL/db = dL/dbias_ih (== dL/dbias_hh)
        out["b"] = to_ours(cell, b_ih).numpy()
    else:
        out["b"] = to_ours(cell, b_ih + b_hh).numpy()
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def run_case(cell, bidirectional, packed, h0_kind, seed):
    """Run one configuration; return the dict of arrays to save."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mod = MODULES[cell](input_size=D, hidden_size=H, batch_first=True,
                        bidirectional=bidirectional).double()
    with torch.no_grad():                   # wider than the default init: saturate a little
        for p in mod.parameters():
            p.uniform_(-0.8, 0.8, generator=g)
    x = torch.randn(N, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor(LENGTHS if packed else [T] * N)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    ndir = 2 if bidirectional else 1
    dout = torch.randn(N, T, ndir * H, generator=g, dtype=torch.float64)

    states, leaves = [], {}
    if h0_kind != "none":
        shape = {"batch": (ndir, N, H), "shared": (H,)}[h0_kind]
        for name in ["h0", "c0"] if cell == "lstm" else ["h0"]:
            leaf = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
            leaves[name] = leaf
            states.append(leaf.expand(ndir, N, H))   # a shared (H,) state sums its gradient
    hx = None if not states else (tuple(states) if cell == "lstm" else states[0])

    inp = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False) if packed else x
    out, hn = mod(inp, hx)
    if packed:
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # zeros when padded
    (out * dout).sum().backward()

    hN, cN = (hn if cell == "lstm" else (hn, None))
    res = {"x": x.detach().numpy(), "mask": mask.numpy(), "lengths": lengths.numpy(),
           "dout": dout.numpy(), "out": out.detach().numpy(), "dx": x.grad.numpy()}
    res["hN"] = (hN if bidirectional else hN[0]).detach().numpy()
    if cN is not None:
        res["cN"] = (cN if bidirectional else cN[0]).detach().numpy()
    for name, leaf in leaves.items():
        # ours: (N, H), (H,), or (N, 2H) with both directions side by side
        ours = (lambda a: a.permute(1, 0, 2).reshape(N, ndir * H)) if leaf.dim() == 3 else (lambda a: a)
        res[name] = ours(leaf.detach()).numpy()
        res["d" + name] = ours(leaf.grad).numpy()
    directions = [("fwd.", ""), ("bwd.", "_reverse")] if bidirectional else [("", "")]
    for prefix, suffix in directions:
        for k, v in our_params(cell, mod, suffix).items():
            res[f"param.{prefix}{k}"] = v
        for k, v in our_params(cell, mod, suffix, grads=True).items():
            res[f"grad.{prefix}{k}"] = v
    return res


CASES = {  # name suffix: (bidirectional, packed, h0 kind)
    "full_h0": (False, False, "batch"),
    "packed_h0": (False, True, "batch"),
    "packed_shared_h0": (False, True, "shared"),
    "packed_no_h0": (False, True, "none"),
    "bi_full": (True, False, "none"),
    "bi_packed": (True, True, "none"),
    "bi_packed_h0": (True, True, "batch"),
}


CONV_T, CONV_F = 7, 4                       # F != D
CONV_CASES = {  # name: (kernel size, padding, lengths); a length < K leaves a row no valid output
    "conv1d_same_k3": (3, "same", [7, 4, 1]),
    "conv1d_same_k4": (4, "same", [7, 3, 2]),    # even kernel: the extra zero on the right
    "conv1d_valid_k4": (4, "valid", [7, 5, 2]),
    "conv1d_valid_k2_full": (2, "valid", [7, 7, 7]),
}
POOL_CASES = {  # name: (pool size, stride, lengths)
    "maxpool1d_p2": (2, None, [7, 7, 7]),        # T odd: the last step is in no window
    "maxpool1d_p3_s2": (3, 2, [7, 4, 1]),        # overlapping windows, padded rows
}


def run_conv_case(K, padding, lengths, seed):
    """nn.Conv1d on each row cut to its length; outputs zero-padded to T'."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    conv = torch.nn.Conv1d(D, CONV_F, K, padding=padding).double()   # PyTorch's own init
    x = torch.randn(N, CONV_T, D, generator=g, dtype=torch.float64, requires_grad=True)
    To = CONV_T if padding == "same" else CONV_T - K + 1
    dout = torch.randn(N, To, CONV_F, generator=g, dtype=torch.float64)
    out = torch.zeros(N, To, CONV_F, dtype=torch.float64)
    out_mask = torch.zeros(N, To, dtype=torch.bool)
    loss = 0
    for n, L in enumerate(lengths):
        if L < K and padding == "valid":
            continue                                    # no valid output in this row
        o = conv(x[n:n + 1, :L].transpose(1, 2))[0].T   # (T'_n, F)
        out[n, :len(o)] = o.detach()
        out_mask[n, :len(o)] = True
        loss = loss + (o * dout[n, :len(o)]).sum()
    loss.backward()
    dout = torch.where(out_mask[:, :, None], dout, 0)
    mask = torch.arange(CONV_T)[None, :] < torch.tensor(lengths)[:, None]
    to_ours = lambda w: np.ascontiguousarray(w.permute(2, 1, 0).numpy())   # (F, D, K) -> (K, D, F)
    return {"x": x.detach().numpy(), "mask": mask.numpy(), "lengths": np.array(lengths),
            "dout": dout.numpy(), "out": out.numpy(), "out_mask": out_mask.numpy(),
            "dx": x.grad.numpy(), "param.W": to_ours(conv.weight.detach()),
            "param.b": conv.bias.detach().numpy(), "grad.W": to_ours(conv.weight.grad),
            "grad.b": conv.bias.grad.numpy(), "kernel_size": np.array(K),
            "padding": np.array(padding)}


def run_pool_case(P, S, lengths, seed):
    """nn.MaxPool1d with -inf at padded steps; a window of padding only is invalid (0)."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.nn.MaxPool1d(P, S)
    x = torch.randn(N, CONV_T, D, generator=g, dtype=torch.float64)    # distinct values: no ties
    mask = torch.arange(CONV_T)[None, :] < torch.tensor(lengths)[:, None]
    xinf = torch.where(mask[:, :, None], x, -torch.inf).requires_grad_()
    out = pool(xinf.transpose(1, 2)).transpose(1, 2)                   # (N, T_out, D)
    out_mask = (out > -torch.inf).all(dim=2)
    dout = torch.randn(out.shape, generator=g, dtype=torch.float64)
    dout = torch.where(out_mask[:, :, None], dout, 0)                  # so -inf windows pass nothing
    (out * dout).sum().backward()
    return {"x": x.numpy(), "mask": mask.numpy(), "lengths": np.array(lengths),
            "dout": dout.numpy(), "out": torch.where(out_mask[:, :, None], out, 0).detach().numpy(),
            "out_mask": out_mask.numpy(), "dx": xinf.grad.numpy(), "pool_size": np.array(P),
            "stride": np.array(P if S is None else S)}


def save(out_dir, name, res):
    res["torch_version"] = np.array(torch.__version__)
    path = os.path.join(out_dir, f"torch_{name}.npz")
    np.savez(path, **res)
    print(f"wrote {path} ({len(res)} arrays)")


ASM_M, ASM_H, ASM_V, ASM_CUTOFFS, ASM_DIV = 10, 8, 13, [4, 9], 2.0


def adaptive_params(mod, grads=False):
    """nn.AdaptiveLogSoftmaxWithLoss weights (or their gradients) in our layout, as numpy."""
    get = (lambda p: p.grad) if grads else (lambda p: p.detach())
    out = {"W": get(mod.head.weight).T}
    if mod.head.bias is not None:
        out["b"] = get(mod.head.bias)
    for i, (proj, head) in enumerate(mod.tail):
        out[f"proj{i}"], out[f"out{i}"] = get(proj.weight).T, get(head.weight).T
    return {k: np.ascontiguousarray(v.numpy()) for k, v in out.items()}


def run_adaptive(head_bias, seed):
    """One nn.AdaptiveLogSoftmaxWithLoss case; return the dict of arrays to save."""
    g = torch.Generator().manual_seed(seed)
    mod = torch.nn.AdaptiveLogSoftmaxWithLoss(ASM_H, ASM_V, ASM_CUTOFFS, div_value=ASM_DIV,
                                              head_bias=head_bias).double()
    with torch.no_grad():                   # wider than the default init
        for p in mod.parameters():
            p.uniform_(-0.8, 0.8, generator=g)
    x = torch.randn(ASM_M, ASM_H, generator=g, dtype=torch.float64, requires_grad=True)
    # every group used, one cluster twice in a row, the first and last ids included
    y = torch.tensor([0, 3, 4, 8, 9, 12, 1, 5, 5, 10])
    output, loss = mod(x, y)
    loss.backward()
    res = {"x": x.detach().numpy(), "y": y.numpy(), "loss": loss.detach().numpy(),
           "output": output.detach().numpy(), "log_prob": mod.log_prob(x).detach().numpy(),
           "dx": x.grad.numpy()}
    for k, v in adaptive_params(mod).items():
        res[f"param.{k}"] = v
    for k, v in adaptive_params(mod, grads=True).items():
        res[f"grad.{k}"] = v
    return res


INTEROP_LM = {f"lm_{cell}_l{L}": dict(cell=cell, num_layers=L) for cell in GATES for L in (1, 2)}
INTEROP_LM["lm_gru_l1_tied"] = dict(cell="gru", num_layers=1, tie_weights=True)
INTEROP_CLF = {"clf_lstm_bi_last": dict(cell="lstm", bidirectional=True, pool="last"),
               "clf_gru_bi_l2_mean": dict(cell="gru", bidirectional=True, num_layers=2,
                                          pool="mean"),
               "clf_rnn_max": dict(cell="rnn", pool="max"),
               "clf_bag_mean": dict(cell="bag", pool="mean")}
INTEROP_V, INTEROP_E, INTEROP_H = 11, 6, 5
# convolutional classifiers (F = 4 filters; even kernel: the extra "same" zero on the right)
INTEROP_CNN = {"clf_cnn_max": dict(cell="cnn", pool="max", filters=4, kernel_size=4),
               "clf_cnn_lstm_bi_last": dict(cell="cnn-lstm", bidirectional=True, pool="last",
                                            filters=4, kernel_size=3, pool_size=3),
               "clf_cnn_lstm_l2_mean": dict(cell="cnn-lstm", num_layers=2, pool="mean",
                                            filters=4, kernel_size=2, pool_size=2)}
INTEROP_S2S = {"s2s_lstm_bi_l2_teacher": dict(cell="lstm", bidirectional=True, num_layers=2,
                                              decoder_input="teacher", feed_state=True),
               "s2s_lstm_repeat": dict(cell="lstm", decoder_input="repeat"),
               "s2s_gru_teacher_noreverse": dict(cell="gru", decoder_input="teacher",
                                                 reverse=False)}
S2S_ITOS = ["<unk>", "<bos>", "<eos>", "+", " "] + [str(d) for d in range(10)]  # 1-digit adder


def _interop_meta(kind, model_cfg):
    """config.json and vocab.json dicts that lm accepts for a fixture model."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lm.config.sentiment import SentimentConfig
    from lm.config.training import TrainConfig

    itos = ["<unk>"] + [chr(ord("a") + i) for i in range(INTEROP_V - 1)]
    vocab = {"format": "lm.vocab", "version": 1, "level": "char", "lowercase": False,
             "specials": ["<unk>"], "itos": itos}
    keys = ("cell", "embed_size", "hidden_size", "num_layers", "dropout")
    if kind == "language_model":
        train = TrainConfig(**{k: model_cfg[k] for k in keys},
                            tie_weights=model_cfg["tie_weights"]).to_dict()
        data = {}
    elif kind == "seq2seq":
        from lm.config.seq2seq import Seq2SeqConfig
        flags = keys + ("bidirectional", "decoder_input", "reverse", "feed_state")
        train = Seq2SeqConfig(**{k: model_cfg[k] for k in flags}, digits=1).to_dict()
        data = {"task": "addition", "digits": 1, "file": "", "path": ""}
        vocab.update(itos=S2S_ITOS, specials=S2S_ITOS[:3])
    else:
        conv = {k: model_cfg[k] for k in ("filters", "kernel_size", "pool_size") if k in model_cfg}
        train = SentimentConfig(**{k: model_cfg[k] for k in keys}, **conv, level="char",
                                bidirectional=model_cfg["bidirectional"],
                                pool=model_cfg["pool"]).to_dict()
        data = {"classes": ["neg", "pos", "neutral"], "drop_spaces": False}
    return {"kind": kind, "model": model_cfg, "train": train, "data": data}, vocab


def run_interop(out_dir):
    """PyTorch-made state dicts of lm's models and their outputs (see the docstring)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lm.interop import torch_model

    d = os.path.join(out_dir, "interop")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2024)
    ids = torch.randint(0, INTEROP_V, (3, 7), generator=g)
    lengths = torch.tensor([7, 4, 1])
    cases = [("language_model", n, {"vocab_size": INTEROP_V, "embed_size": INTEROP_E,
                                    "hidden_size": INTEROP_E if c.get("tie_weights") else INTEROP_H,
                                    "dropout": 0.0, "tie_weights": False, **c})
             for n, c in INTEROP_LM.items()]
    cases += [("sentiment", n, {"vocab_size": INTEROP_V, "embed_size": INTEROP_E,
                                "hidden_size": INTEROP_H, "num_layers": 1,
                                "bidirectional": False, "dropout": 0.0, "num_classes": 3, **c})
              for n, c in {**INTEROP_CLF, **INTEROP_CNN}.items()]
    V = len(S2S_ITOS)
    cases += [("seq2seq", n, {"vocab_size": V, "embed_size": INTEROP_E, "hidden_size": INTEROP_H,
                              "num_layers": 1, "bidirectional": False, "reverse": True,
                              "feed_state": False, "dropout": 0.0, "max_target_len": 6,
                              "bos_id": 1, "eos_id": 2, **c})
              for n, c in INTEROP_S2S.items()]
    g_s2s = torch.Generator().manual_seed(2026)   # its own: the other fixtures stay as they were
    src = torch.randint(0, V, (3, 5), generator=g_s2s)
    tgt = torch.randint(0, V, (3, 4), generator=g_s2s)
    src_lengths, tgt_lengths = torch.tensor([5, 3, 1]), torch.tensor([4, 2, 3])
    g_cnn = torch.Generator().manual_seed(2027)   # its own too
    ids_cnn = torch.randint(0, INTEROP_V, (3, 11), generator=g_cnn)   # several pool windows
    lengths_cnn = torch.tensor([11, 5, 1])
    for kind, name, cfg in cases:
        mod = torch_model.module_class(kind)(**cfg).eval()
        gen = g_s2s if kind == "seq2seq" else g_cnn if name in INTEROP_CNN else g
        with torch.no_grad():                    # wider than the default init
            for p in mod.parameters():
                p.uniform_(-0.6, 0.6, generator=gen)
        with torch.no_grad():
            res = {"ids": ids.numpy()}
            if kind == "language_model":
                res["logits"] = mod(ids)[0].numpy()
            elif kind == "seq2seq":
                res = {"src": src.numpy(), "src_lengths": src_lengths.numpy(),
                       "targets": tgt.numpy(), "target_lengths": tgt_lengths.numpy(),
                       "logits": mod(src, src_lengths, tgt, tgt_lengths).numpy(),
                       "generated": mod.generate(src, src_lengths).numpy()}
            elif name in INTEROP_CNN:
                res = {"ids": ids_cnn.numpy(), "lengths": lengths_cnn.numpy(),
                       "scores": mod(ids_cnn, lengths_cnn).numpy()}
            else:
                res["lengths"], res["scores"] = lengths.numpy(), mod(ids, lengths).numpy()
        config, vocab = _interop_meta(kind, cfg)
        path = os.path.join(d, name + ".safetensors")
        if os.path.exists(path):
            os.remove(path)
        torch_model.save_file(mod, path, config, vocab)
        np.savez(os.path.join(d, name + ".npz"), **res)
        print(f"wrote {path} and {name}.npz")
    # the adaptive softmax alone, as the state dict of the layer under decoder.
    from safetensors.torch import save_file

    for name, bias in (("adaptive", False), ("adaptive_bias", True)):
        mod = torch.nn.AdaptiveLogSoftmaxWithLoss(INTEROP_H, 13, [4, 9], div_value=2.0,
                                                  head_bias=bias)
        with torch.no_grad():
            for p in mod.parameters():
                p.uniform_(-0.8, 0.8, generator=g)
            x = torch.randn(6, INTEROP_H, generator=g)
            res = {"x": x.numpy(), "log_prob": mod.log_prob(x).numpy()}
        save_file({"decoder." + k: v.contiguous() for k, v in mod.state_dict().items()},
                  os.path.join(d, name + ".safetensors"))
        np.savez(os.path.join(d, name + ".npz"), **res)
        print(f"wrote {os.path.join(d, name)}.safetensors and .npz")


def main(out_dir, only=None):
    """Write every fixture, or only one family (rnn, conv, adaptive or interop)."""
    os.makedirs(out_dir, exist_ok=True)
    if only in (None, "rnn"):
        for ci, cell in enumerate(GATES):
            for k, (name, (bi, packed, h0_kind)) in enumerate(CASES.items()):
                save(out_dir, f"{cell}_{name}",
                     run_case(cell, bi, packed, h0_kind, seed=100 * ci + k))
    if only in (None, "conv"):
        for k, (name, (K, padding, lengths)) in enumerate(CONV_CASES.items()):
            save(out_dir, name, run_conv_case(K, padding, lengths, seed=1000 + k))
        for k, (name, (P, S, lengths)) in enumerate(POOL_CASES.items()):
            save(out_dir, name, run_pool_case(P, S, lengths, seed=1100 + k))
    if only in (None, "adaptive"):
        for k, (name, bias) in enumerate([("", False), ("_bias", True)]):
            save(out_dir, f"adaptive_softmax{name}", run_adaptive(bias, seed=1000 + k))
    if only in (None, "interop"):
        run_interop(out_dir)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    ap.add_argument("--only", choices=["rnn", "adaptive", "conv", "interop"], default=None,
                    help="write only these fixtures (default: all)")
    args = ap.parse_args()
    main(os.path.normpath(args.out), args.only)
