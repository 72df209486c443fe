"""Benchmark suites "train" and "sample": whole training steps and token-by-token sampling, lm against PyTorch.

Run through scripts/benchmark.py (`--suite train`, `--suite sample`), which owns the
command line, the interleaved timer and the output.

Suite "train": one training step is `LanguageModelRNN.loss` (forward, loss, backward)
+ `clip_grad_norm` + `Adam.step`; the PyTorch peer is nn.Embedding -> nn.LSTM / nn.GRU /
nn.RNN(tanh) -> nn.Linear -> cross_entropy, then clip_grad_norm_ and torch.optim.Adam,
with the same shapes. Tokens/s is N*T over the median step time. Peak memory is the
growth of the peak resident set (VmHWM over VmRSS) while a fresh process builds the model and
optimiser and runs a few steps (so it counts parameters, gradients, optimiser state and
every temporary), measured in a subprocess per side and config.

Suite "word": the training step of a word model with the word level's defaults (V =
10,000, E = H = 256, N = 20, T = 35, a 2-layer LSTM, plain SGD with clipping at 0.25,
targets drawn from a Zipf law as words are), and of the same model with 1 layer (the word
model's depth before these defaults), with each output layer:
`--softmax full` (lm's only one before the adaptive softmax) against the default above
8000 words, `--softmax adaptive` (lm.config.training.ADAPTIVE_ABOVE); PyTorch's nn.Linear
+ cross_entropy and nn.AdaptiveLogSoftmaxWithLoss (same cutoffs) alongside.

Suite "sample" (also appended to "train"): one stream (N=1) of 500 tokens drawn after a
one-token prompt, `LanguageModelRNN.sample` against a PyTorch loop of embedding, one
recurrent step with carried state, linear head and torch.multinomial under no_grad.
"""
import json
import os
import resource
import statistics
import subprocess
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from lm.data.batch import Batch  # noqa: E402
from lm.models.language_model import LanguageModelRNN  # noqa: E402
from lm.training.optim import SGD, Adam, clip_grad_norm  # noqa: E402

try:
    import torch
except ImportError:  # numpy figures only
    torch = None

# the configurations of issue 5: (name, V, E, H, N, T, cell)
TRAIN_CONFIGS = [
    ("char lstm H=512 N=64", 65, 64, 512, 64, 64, "lstm"),
    ("char lstm H=256 N=32", 65, 64, 256, 32, 64, "lstm"),
    ("char gru H=256 N=32", 65, 64, 256, 32, 64, "gru"),
    ("char rnn H=256 N=32", 65, 64, 256, 32, 64, "rnn"),
    ("word lstm V=10k H=256 N=32", 10000, 256, 256, 32, 35, "lstm"),
]
CLIP = 5.0            # max gradient norm, both sides
LR = 1e-3
SAMPLE_LENGTH = 500   # tokens per sampling stream
MEMORY_STEPS = 3      # training steps run by the memory probe


def config_dict(cfg):
    name, V, E, H, N, T, cell = cfg
    return {"name": name, "V": V, "E": E, "H": H, "N": N, "T": T, "cell": cell}


def batch(cfg, seed=0):
    """Fixed random (ids, targets), each (N, T) int64."""
    _, V, _, _, N, T, _ = cfg
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


# ---- numpy (lm) ----------------------------------------------------------------------

def numpy_model(cfg):
    _, V, E, H, _, _, cell = cfg
    return LanguageModelRNN(V, E, H, cell=cell, dtype=np.float32, rng=0)


def numpy_train_run(cfg):
    """A callable doing one lm training step on a fixed batch."""
    model = numpy_model(cfg)
    opt = Adam(model, lr=LR)
    b = Batch(*batch(cfg))

    def run():
        model.loss(b)
        clip_grad_norm(model.grads, CLIP)
        opt.step()
    return run


def numpy_sample_run(cfg):
    """A callable drawing SAMPLE_LENGTH tokens from an lm model (one stream)."""
    model = numpy_model(cfg)

    def run():
        model.sample([0], SAMPLE_LENGTH, rng=0)
    return run


# ---- PyTorch -------------------------------------------------------------------------

class TorchLM(torch.nn.Module if torch is not None else object):
    """nn.Embedding -> nn.LSTM / nn.GRU / nn.RNN(tanh) -> nn.Linear, batch first."""

    def __init__(self, V, E, H, cell):
        super().__init__()
        self.embed = torch.nn.Embedding(V, E)
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
        self.rnn = rnn(E, H, batch_first=True)
        self.head = torch.nn.Linear(H, V)

    def forward(self, ids, state=None):
        out, state = self.rnn(self.embed(ids), state)
        return self.head(out), state


def torch_model(cfg):
    _, V, E, H, _, _, cell = cfg
    torch.manual_seed(0)
    return TorchLM(V, E, H, cell)


def torch_train_run(cfg):
    """A callable doing the same training step in PyTorch."""
    model = torch_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    ids, targets = (torch.from_numpy(a) for a in batch(cfg))
    V = cfg[1]

    def run():
        opt.zero_grad()
        scores, _ = model(ids)
        loss = torch.nn.functional.cross_entropy(scores.reshape(-1, V), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    return run


def torch_sample_run(cfg):
    """A callable drawing SAMPLE_LENGTH tokens token by token with carried state."""
    model = torch_model(cfg).eval()
    gen = torch.Generator().manual_seed(0)

    def run():
        with torch.no_grad():
            x, state = torch.zeros((1, 1), dtype=torch.long), None
            for _ in range(SAMPLE_LENGTH):
                scores, state = model(x, state)
                probs = torch.softmax(scores[0, -1], dim=-1)
                x = torch.multinomial(probs, 1, generator=gen).view(1, 1)
    return run


# ---- suite "word": full against adaptive softmax ---------------------------------------

# the word level's defaults (lm.config.training): 2 layers, plain SGD, clipping at 0.25
WORD = {"V": 10000, "E": 256, "H": 256, "L": 2, "N": 20, "T": 35, "lr": 20.0, "clip": 0.25}


def word_batch(seed=0):
    """(ids, targets) (N, T) int64, Zipf-distributed like words (id 0 the most frequent)."""
    from bench_softmax import zipf_targets
    rng = np.random.default_rng(seed)
    shape = (WORD["N"], WORD["T"])
    return zipf_targets(WORD["V"], shape, rng), zipf_targets(WORD["V"], shape, rng)


def numpy_word_run(softmax, layers=WORD["L"]):
    model = LanguageModelRNN(WORD["V"], WORD["E"], WORD["H"], num_layers=layers,
                             softmax=softmax, dtype=np.float32, rng=0)
    opt = SGD(model, lr=WORD["lr"], momentum=0.0)
    b = Batch(*word_batch(), None)

    def run():
        model.loss(b)
        clip_grad_norm(model.grads, WORD["clip"])
        opt.step()
    return run


def torch_word_run(softmax, layers=WORD["L"]):
    from lm.layers.adaptive_softmax import default_cutoffs
    torch.manual_seed(0)
    V, E, H = WORD["V"], WORD["E"], WORD["H"]
    embed = torch.nn.Embedding(V, E)
    rnn = torch.nn.LSTM(E, H, layers, batch_first=True)
    head = torch.nn.Linear(H, V) if softmax == "full" else \
        torch.nn.AdaptiveLogSoftmaxWithLoss(H, V, default_cutoffs(V), div_value=4.0)
    params = [*embed.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=WORD["lr"])
    ids, targets = (torch.from_numpy(a) for a in word_batch())

    def run():
        opt.zero_grad()
        h, _ = rnn(embed(ids))
        h, y = h.reshape(-1, H), targets.reshape(-1)
        loss = torch.nn.functional.cross_entropy(head(h), y) if softmax == "full" \
            else head(h, y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, WORD["clip"])
        opt.step()
    return run


def suite_word(args, time_interleaved, format_row):
    """Rows: a word model's training step with the full and with the adaptive softmax, with
    the word default's 2 layers and with 1 (the depth of the word model before it)."""
    rows, tokens = [], WORD["N"] * WORD["T"]
    runs = {}
    pairs = [(layers, softmax) for layers in (WORD["L"], 1) for softmax in ("full", "adaptive")]
    for layers, softmax in pairs:
        runs[f"numpy {layers} {softmax}"] = numpy_word_run(softmax, layers)
        if use_torch(args):
            runs[f"torch {layers} {softmax}"] = torch_word_run(softmax, layers)
    times = time_interleaved(runs, args.repeats, args.warmup, args.settle)
    for layers, softmax in pairs:
        row = {"name": f"word {layers}-layer lstm V=10k E=H=256 N=20 T=35 sgd, {softmax} softmax",
               "kind": "word", "tokens": tokens, **WORD, "L": layers, "softmax": softmax}
        for side in ("numpy", "torch"):
            ts = times.get(f"{side} {layers} {softmax}")
            if ts:
                row[f"{side}_tok_s"], row[f"{side}_seconds"] = tokens / statistics.median(ts), ts
        if "torch_tok_s" in row:
            row["ratio"] = row["numpy_tok_s"] / row["torch_tok_s"]
        rows.append(row)
        print(format_row(row), flush=True)
    for full, adaptive in zip(rows[0::2], rows[1::2]):
        speedup = adaptive["numpy_tok_s"] / full["numpy_tok_s"]
        print(f"{adaptive['L']}-layer: adaptive / full softmax, lm training tokens/s: "
              f"{speedup:.2f}x", flush=True)
        adaptive["speedup_over_full"] = speedup
    return rows


# ---- peak memory (subprocess per side and config) -------------------------------------

def _rss_mib(field):
    """VmRSS (now) or VmHWM (peak) of this process in MiB, from /proc; None elsewhere.

    Not ru_maxrss: on Linux a child starts with its parent's ru_maxrss, so a probe
    started by a benchmark that already holds big models would measure nothing.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _peak_mib():
    peak = _rss_mib("VmHWM")
    if peak is None:  # no /proc (macOS): ru_maxrss, in bytes there
        scale = 1 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20
    return peak


def memory_probe(side, index):
    """In a fresh process: peak RSS growth (MiB) over building and MEMORY_STEPS steps."""
    cfg = TRAIN_CONFIGS[index]
    base = _rss_mib("VmRSS") or _peak_mib()
    run = (numpy_train_run if side == "numpy" else torch_train_run)(cfg)
    for _ in range(MEMORY_STEPS):
        run()
    return _peak_mib() - base


def measure_memory(side, index):
    """Run `memory_probe` in a subprocess; None if it fails."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe", side, str(index)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


# ---- suites ---------------------------------------------------------------------------

def _timed_row(cfg, runs, tokens, args, time_interleaved, kind):
    # sampling allocates nothing worth warming up twice: one untimed run is enough
    warmup = args.warmup if kind == "train" else min(args.warmup, 1)
    times = time_interleaved(runs, args.repeats, warmup, args.settle)
    row = {**config_dict(cfg), "kind": kind, "tokens": tokens}
    row["name"] = f"{kind}: {cfg[0]}" + (f" T={cfg[5]}" if kind == "train" else "")
    for side, ts in times.items():
        row[f"{side}_tok_s"] = tokens / statistics.median(ts)
        row[f"{side}_seconds"] = ts
    if "torch_tok_s" in row:
        row["ratio"] = row["numpy_tok_s"] / row["torch_tok_s"]
    return row


def use_torch(args):
    return torch is not None and not args.no_torch


def suite_train(args, time_interleaved, format_row, with_sampling=True):
    """Rows for every training config (tokens/s, ratio, peak MiB), then the sampling rows."""
    rows = []
    for index, cfg in enumerate(TRAIN_CONFIGS):
        runs = {"numpy": numpy_train_run(cfg)}
        if use_torch(args):
            runs["torch"] = torch_train_run(cfg)
        row = _timed_row(cfg, runs, cfg[4] * cfg[5], args, time_interleaved, "train")
        del runs
        if not getattr(args, "no_memory", False):
            for side in ("numpy", "torch") if use_torch(args) else ("numpy",):
                row[f"{side}_peak_mib"] = measure_memory(side, index)
        rows.append(row)
        print(format_row(row) + memory_text(row), flush=True)
    if with_sampling:
        rows += suite_sample(args, time_interleaved, format_row)
    return rows


def suite_sample(args, time_interleaved, format_row):
    """Rows of sampling speed, one 500-token stream per distinct model (N and T do not matter)."""
    rows, seen = [], set()
    for cfg in TRAIN_CONFIGS:
        key = (cfg[1], cfg[2], cfg[3], cfg[6])
        if key in seen:
            continue
        seen.add(key)
        runs = {"numpy": numpy_sample_run(cfg)}
        if use_torch(args):
            runs["torch"] = torch_sample_run(cfg)
        row = _timed_row(cfg, runs, SAMPLE_LENGTH, args, time_interleaved, "sample")
        _, V, E, H, _, _, cell = cfg
        row["name"] = f"sample: {cell} V={V} E={E} H={H}, 1x{SAMPLE_LENGTH}"
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def memory_text(row):
    parts = [f"{row[k]:.0f} MiB {k.split('_')[0]}" for k in ("numpy_peak_mib", "torch_peak_mib")
             if row.get(k) is not None]
    return " | peak " + ", ".join(parts) if parts else ""


def format_train_table(rows):
    """Markdown table: tokens/s both sides, their ratio, and peak memory where measured."""
    with_torch = any("torch_tok_s" in r for r in rows)
    with_mem = any(r.get("numpy_peak_mib") is not None for r in rows)
    head = "| benchmark | numpy tokens/s |"
    rule = "|---|---:|"
    if with_torch:
        head += " PyTorch tokens/s | numpy/PyTorch |"
        rule += "---:|---:|"
    if with_mem:
        head += " numpy peak MiB |" + (" PyTorch peak MiB |" if with_torch else "")
        rule += "---:|" + ("---:|" if with_torch else "")
    lines = [head, rule]
    for r in rows:
        line = f"| {r['name']} | {r['numpy_tok_s']:,.0f} |"
        if with_torch:
            line += (f" {r['torch_tok_s']:,.0f} | {r['ratio']:.2f} |" if "torch_tok_s" in r
                     else " - | - |")
        if with_mem:
            sides = ("numpy", "torch") if with_torch else ("numpy",)
            for side in sides:
                v = r.get(f"{side}_peak_mib")
                line += f" {v:,.0f} |" if v is not None else " - |"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-probe":
        print(json.dumps(memory_probe(sys.argv[2], int(sys.argv[3]))))
    else:
        sys.exit("run scripts/benchmark.py --suite train (or sample); this module is its helper")
