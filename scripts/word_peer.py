"""Word level, side by side: lm's defaults against PyTorch's word_language_model recipe.

Usage:
  python scripts/word_peer.py ptb --minutes 9              # ptb.test.txt trains, ptb.valid.txt held out
  python scripts/word_peer.py tinyshakespeare --minutes 9  # the last 10% of the characters held out
  python scripts/word_peer.py pydoc --minutes 9            # the same split of CPython's documentation
  python scripts/word_peer.py reviews --minutes 9          # $LM_DATA_DIR/sentiment's texts, the same split
  python scripts/word_peer.py --train A.txt --heldout B.txt --minutes 9
  python scripts/word_peer.py ptb --minutes 1 --lm_args "--hidden_size 128"   # other lm flags
  python scripts/word_peer.py ptb --lm_only --lm_args "--dropout 0.5"  # lm alone (trying flags)

Both sides start at the same moment on the same training file and train for the same
wall time, each in its own process with one thread (lm: `--threads 1`; PyTorch:
`torch.set_num_threads(1)`), then score the held-out file with their best weights
(lowest validation loss). The figure is bits per character of the held-out file: the
total loss of its tokens in nats / ln 2 / its number of characters, so models with
different tokens compare.

- lm: `python -m lm.train TRAIN --level word --time_budget S --threads 1`, i.e. its word
  defaults; validation is the last 10% of the training file's tokens (--val_frac).
- The peer (https://github.com/pytorch/examples, word_language_model, its defaults):
  tokens are `line.split() + ["<eos>"]`; embedding 200, a 2-layer LSTM of 200 units,
  dropout 0.2, a linear decoder, weights U(-0.1, 0.1); plain SGD at lr 20, gradient norm
  clipped at 0.25, windows of 35, batch 20, hidden state carried (cut from the graph)
  between windows; after every epoch (and when time is up) the validation loss, the
  last 10% of its tokens as for lm, keeps the best weights, else lr /= 4.
- Tokens: lm's default word tokens ("lines") are the peer's words, each with the space
  before it, and its line breaks (with the next line's indentation) where the peer has
  "<eos>"; on text with one space between words (Penn Treebank) the two streams are the
  same, token for token. lm also predicts the whitespace split() drops (indentation,
  runs of spaces within a line, blank lines), which the peer never pays for.
- lm scores with its word default's continuous cache (`--cache_size`, lm.models.cache):
  a second row gives its network alone (the same weights, `--cache_size 0`).
- Vocabulary, both sides: the tokens of the training file (its own tokeniser) seen at
  least --min_count times (lm's word default, 2, unless given), the others `<unk>`, as is
  the text's own marker "<unk>" (Penn Treebank's); a held-out token outside it is scored
  as `<unk>`, and the share of held-out tokens that are `<unk>` is printed for each side.
- Scoring, both sides: the held-out file as one stream (batch 1), the state carried, every
  token after the first predicted once.
"reviews" is prose of another source: the 2,800 texts of $LM_DATA_DIR/sentiment's
uci_amazon, uci_yelp and cs5242_corpus files (in that order, read as lm.text.labeled reads
them, each on one line with its whitespace runs made single spaces).
A corpus other than ptb is split at the first line break at or after 90% of its
characters; the two parts are written to a temporary directory (nothing into the repo).
The machine's load slows both sides alike; figures taken on a busy machine say so.
"""
import argparse
import json
from collections import Counter
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread per side, set before numpy or torch load

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # lm from this checkout (imported where used: the peer needs none)
LN2 = math.log(2.0)
UNK, EOS = "<unk>", "<eos>"


def fail(message):
    """One line on stderr and exit status 2, as lm's commands do."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# ---- files ---------------------------------------------------------------------------

REVIEW_FILES = ("uci_amazon.tsv", "uci_yelp.tsv", "cs5242_corpus.tsv")


def reviews_text(data_dir):
    """The texts of the shared sentiment files, one per line (the "reviews" corpus)."""
    from lm.text.labeled import read_labeled
    lines = []
    for name in REVIEW_FILES:
        lines += [" ".join(t.split()) for t in
                  read_labeled(os.path.join(data_dir, "sentiment", name)).texts]
    return "\n".join(lines) + "\n"


def corpus_files(name, data_dir, work):
    """(train path, held-out path): ptb's own files, or any other corpus (tinyshakespeare,
    pydoc, reviews, a path) split at the first line break at or after 90% of its characters."""
    if name == "ptb":
        d = os.path.join(data_dir, "ptb")
        return os.path.join(d, "ptb.test.txt"), os.path.join(d, "ptb.valid.txt")
    from lm.text.corpora import resolve_corpus
    try:
        if name == "reviews":
            source, text = "reviews.txt", reviews_text(data_dir)
        else:
            source, _ = resolve_corpus(name)  # tinyshakespeare, pydoc, names or a path
            with open(source, encoding="utf-8") as f:
                text = f.read()
    except (OSError, ValueError) as e:
        fail(str(e))
    cut = text.find("\n", int(len(text) * 0.9)) + 1 or len(text)
    stem = os.path.splitext(os.path.basename(source))[0]
    paths = os.path.join(work, f"{stem}_train.txt"), os.path.join(work, f"{stem}_heldout.txt")
    for path, part in zip(paths, (text[:cut], text[cut:])):
        with open(path, "w", encoding="utf-8") as f:
            f.write(part)
    return paths


def num_chars(path):
    with open(path, encoding="utf-8") as f:
        return len(f.read())


# ---- the peer: PyTorch's word_language_model recipe ------------------------------------

def peer_tokens(path):
    """word_language_model's tokens: whitespace-split words, "<eos>" after every line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out += line.split() + [EOS]
    return out


def batchify(data, bsz):
    """(n,) ids -> (n // bsz, bsz): column j is the j-th contiguous slice of the stream.

        a b c d e f g h i j k l   ->   a g
                                       b h      each column one stream; a window is
                                       c i      rows [i, i + bptt), its targets the rows
                                       ...      one below
    """
    n = data.size(0) // bsz
    return data[:n * bsz].view(bsz, -1).t().contiguous()


def peer_main(args):
    """The peer's process: train for args.seconds, then score the held-out file; prints JSON."""
    import torch
    import torch.nn as nn

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t0 = time.monotonic()
    tokens = peer_tokens(args.train)
    counts = Counter(tokens)  # lm's rule: tokens seen fewer than min_count times are <unk>
    itos = sorted(w for w, c in counts.items() if c >= args.min_count and w != UNK) + [UNK]
    stoi = {w: i for i, w in enumerate(itos)}
    ids = torch.tensor([stoi.get(w, stoi[UNK]) for w in tokens], dtype=torch.long)
    n_val = int(round(len(ids) * 0.1))
    train, val = batchify(ids[:-n_val], 20), batchify(ids[-n_val:], 10)
    V = len(itos)

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.2)
            self.encoder = nn.Embedding(V, 200)
            self.rnn = nn.LSTM(200, 200, 2, dropout=0.2)
            self.decoder = nn.Linear(200, V)
            nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

        def forward(self, x, hidden):
            out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
            return torch.log_softmax(self.decoder(self.drop(out)), dim=-1), hidden

    model, crit, bptt = RNNModel(), nn.NLLLoss(reduction="sum"), 35

    def evaluate(source, window=bptt):
        """(total nats, targets) of the stream(s) in `source` (T, B), state carried."""
        model.eval()
        total, count, hidden = 0.0, 0, None
        with torch.no_grad():
            for i in range(0, source.size(0) - 1, window):
                x, y = source[i:i + window], source[i + 1:i + 1 + window]
                x = x[:len(y)]
                out, hidden = model(x, hidden)
                total += crit(out.view(-1, V), y.reshape(-1)).item()
                count += y.numel()
        return total, count

    lr, best, best_state, epoch, steps, seen = 20.0, math.inf, None, 0, 0, 0
    budget_end = t0 + args.seconds
    done = False
    while not done:
        model.train()
        hidden = None
        for i in range(0, train.size(0) - 1, bptt):
            if time.monotonic() >= budget_end:
                done = True
                break
            x, y = train[i:i + bptt], train[i + 1:i + 1 + bptt]
            x = x[:len(y)]
            if hidden is not None:
                hidden = tuple(h.detach() for h in hidden)  # cut from the graph
            model.zero_grad()
            out, hidden = model(x, hidden)
            loss = crit(out.view(-1, V), y.reshape(-1)) / y.numel()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
            steps, seen = steps + 1, seen + y.numel()
        else:
            epoch += 1
        total, count = evaluate(val)
        v = total / count
        if v < best:
            best, best_state = v, {k: t.clone() for k, t in model.state_dict().items()}
        elif not done:
            lr /= 4.0
        print(f"peer epoch {epoch:3d} | steps {steps:5d} | val {v:.4f} | lr {lr:g} | "
              f"{time.monotonic() - t0:5.0f}s", file=sys.stderr, flush=True)
    train_seconds = time.monotonic() - t0
    model.load_state_dict(best_state)
    held = peer_tokens(args.heldout)
    hid = torch.tensor([stoi.get(w, stoi[UNK]) for w in held], dtype=torch.long)
    unk = int((hid == stoi[UNK]).sum())  # rare words and the text's own "<unk>", as lm counts
    total, count = evaluate(hid.view(-1, 1), window=512)
    print(json.dumps({"side": "peer", "vocab": V, "train_tokens": int(train.numel()),
                      "steps": steps, "epochs": epoch, "tok_per_s": seen / train_seconds,
                      "best_val": best, "heldout_tokens": len(held), "unk": unk,
                      "heldout_nats": total, "heldout_targets": count}))


# ---- lm -------------------------------------------------------------------------------

def lm_heldout(run_dir, heldout):
    """lm's best weights on the held-out file: one stream, state carried (as the peer).
    Two rows: the run's model (with its continuous cache, the word default) and, where it
    has a cache, the network alone (`--cache_size 0`: what the weights score by themselves)."""
    import numpy as np
    from lm.models.load import load_language_model
    from lm.text.stream import load_corpus
    from lm.training.evaluation import evaluate_loss

    model, vocab, cfg = load_language_model(run_dir, "best")
    corpus = load_corpus(heldout, vocab=vocab)
    n = len(corpus.ids)
    meta = json.load(open(os.path.join(run_dir, "config.json"), encoding="utf-8"))
    rows = [json.loads(x) for x in open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8")]
    evals = [r for r in rows if "val_loss" in r]
    row = {"side": "lm", "vocab": len(vocab), "heldout_tokens": n,
           "unk": int(np.count_nonzero(corpus.ids == vocab.unk_id)),
           "heldout_targets": n - 1, "steps": evals[-1]["step"], "epochs": evals[-1]["epoch"],
           "tok_per_s": evals[-1]["tokens"] / max(1e-9, evals[-1]["elapsed"]),
           "best_val": min(r["val_loss"] for r in evals), "config": meta["train"]}
    out = []
    for side, cache_size in [("lm", None), ("lm, network alone", 0)]:
        if cache_size == 0 and model.cache is None:
            break
        if cache_size is not None:
            model.set_cache(cache_size)
        loss = evaluate_loss(model, corpus.ids, vocab, batch_size=1, seq_length=512)
        out.append({**row, "side": side, "heldout_nats": loss * (n - 1)})
    return out


# ---- side by side -----------------------------------------------------------------------

def word_default(name):
    """lm's word-level default of a flag (lm.config.training.LEVEL_DEFAULTS)."""
    from lm.config.training import TrainConfig
    return getattr(TrainConfig(level="word").validate(), name)


def run(args):
    work = args.work_dir or tempfile.mkdtemp(prefix="word_peer_")
    os.makedirs(work, exist_ok=True)
    if args.train:
        train, heldout = args.train, args.heldout
        name = os.path.splitext(os.path.basename(train))[0]
    else:
        data_dir = os.environ.get("LM_DATA_DIR", "")
        if args.corpus in ("ptb", "reviews") and not data_dir:
            fail(f"set LM_DATA_DIR ({args.corpus} is read from $LM_DATA_DIR)")
        train, heldout = corpus_files(args.corpus, data_dir, work)
        name = os.path.splitext(os.path.basename(args.corpus))[0]  # a path's runs stay in work
    seconds = args.minutes * 60
    lm_dir = os.path.join(work, f"{name}-lm")
    lm_cmd = [sys.executable, "-m", "lm.train", train, "--level", "word", "--time_budget",
              str(seconds), "--threads", "1", "--out_dir", lm_dir, *shlex.split(args.lm_args)]
    min_count = args.min_count or word_default("min_count")
    if args.min_count:
        lm_cmd += ["--min_count", str(min_count)]
    peer_cmd = [sys.executable, os.path.abspath(__file__), "--peer", "--train", train,
                "--heldout", heldout, "--seconds", str(seconds), "--seed", str(args.seed),
                "--min_count", str(min_count)]
    print(f"# {name}: train {train}, held out {heldout}, {args.minutes:g} min each, side by side")
    print("# lm:   " + " ".join(map(shlex.quote, lm_cmd)))
    if not args.lm_only:
        print("# peer: " + " ".join(map(shlex.quote, peer_cmd)), flush=True)
    logs = {s: open(os.path.join(work, f"{name}-{s}.log"), "w") for s in ("lm", "peer")}
    procs = {"lm": subprocess.Popen(lm_cmd, cwd=ROOT, stdout=logs["lm"], stderr=subprocess.STDOUT)}
    if not args.lm_only:
        procs["peer"] = subprocess.Popen(peer_cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                         stderr=logs["peer"], text=True)
    peer_out = procs["peer"].communicate()[0] if "peer" in procs else ""
    if any(p.wait() != 0 for p in procs.values()):
        fail(f"a side failed; see the logs in {work}")
    results = lm_heldout(lm_dir, heldout)
    if peer_out:
        results.append(json.loads(peer_out.strip().splitlines()[-1]))
    chars = num_chars(heldout)
    print(f"\n{name}: held-out {heldout}, {chars:,} characters; {args.minutes:g} min of "
          f"training each; vocabulary: training tokens seen >= {min_count} times\n")
    print("| side | vocab | held-out tokens | `<unk>` share | steps | epochs | train tok/s | "
          "best val loss | held-out nats/token | bits per char |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        r["bpc"] = r["heldout_nats"] / LN2 / chars
        print(f"| {r['side']} | {r['vocab']:,} | {r['heldout_tokens']:,} | "
              f"{r['unk'] / r['heldout_tokens']:.2%} | {r['steps']:,} | {r['epochs']:.1f} | "
              f"{r['tok_per_s']:,.0f} | {r['best_val']:.3f} | "
              f"{r['heldout_nats'] / r['heldout_targets']:.3f} | {r['bpc']:.4f} |")
    if results[-1]["side"] == "peer":
        peer_bpc = results[-1]["bpc"]
        for r in results[:-1]:
            print(f"\n{r['side']} / peer bits per char: {r['bpc'] / peer_bpc:.3f} "
                  f"({(1 - r['bpc'] / peer_bpc):+.1%} for lm)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"corpus": name, "minutes": args.minutes, "chars": chars,
                       "results": results}, f, indent=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default="ptb",
                    help="ptb, or a corpus name or file split 90/10: tinyshakespeare, pydoc, "
                         "reviews")
    ap.add_argument("--train", help="training file (with --heldout, instead of a corpus)")
    ap.add_argument("--heldout", help="held-out file scored in bits per character")
    ap.add_argument("--minutes", type=float, default=9.0, help="training wall time per side")
    ap.add_argument("--lm_args", default="", help="extra lm.train flags, quoted")
    ap.add_argument("--work_dir", default="", help="where runs and logs go (default: a temp dir)")
    ap.add_argument("--json", default="", help="also write the figures here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min_count", type=int, default=0,
                    help="vocabulary rule of both sides (default: lm's word default)")
    ap.add_argument("--lm_only", action="store_true",
                    help="run lm's side alone (to try lm flags against an earlier peer figure)")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if bool(args.train) != bool(args.heldout):
        ap.error("--train and --heldout go together")
    if args.peer:
        peer_main(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
