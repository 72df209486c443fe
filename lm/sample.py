"""Generate text from a trained run: `python -m lm.sample [--checkpoint DIR] [--start TEXT]`.

Text streams to stdout as it is generated; everything else (which run, the seed, warnings,
speed) goes to stderr, so `python -m lm.sample > out.txt` holds only the samples.
"""
import sys
import time

if __name__ == "__main__":  # BLAS threads must be chosen before numpy loads
    from lm.cli import apply_threads
    apply_threads(sys.argv[1:], default="1")

import numpy as np  # noqa: E402

from lm.cli import check_str  # noqa: E402
from lm.config.checks import check_choice, check_float, check_int  # noqa: E402


def prompt_text(start):
    """The --start text: `FILE:path` reads a file; None or '' means no prompt."""
    if start is None or start == "":
        return ""
    if start.startswith("FILE:"):
        from lm.text.files import read_text
        path = start[len("FILE:"):]
        if not path:
            raise ValueError("--start FILE: needs a file name, e.g. --start FILE:prompt.txt")
        return read_text(path)
    return start


def encode_prompt(text, vocab, line_mode, warn):
    """Prompt ids (1-D int64) for `text`; unknown tokens become <unk> with a warning.

    No text: <bos> in line mode, else a newline (or the most frequent token), which is
    not printed. Returns (ids, shown) where `shown` is the prompt text to print.
    """
    tokens = vocab.tokenize(text) if text else []
    for tok in dict.fromkeys(t for t in tokens if t not in vocab.stoi):
        close = vocab.closest(tok)
        hint = f" (close: {', '.join(map(repr, close))})" if close else ""
        warn(f"warning: {tok!r} is not in the vocabulary{hint}; using <unk>")
    ids = [vocab[t] for t in tokens]
    shown = "".join(tokens)
    if line_mode:
        ids = [vocab.bos_id] + ids
    elif not ids:
        first = len(vocab.specials)
        ids = [vocab.stoi.get("\n", first)]
    return np.asarray(ids, dtype=np.int64), shown


class StopWriter:
    """Writes streamed text, holding back just enough to cut it after a --stop string."""

    def __init__(self, out, stop=None):
        self.out, self.stop, self.buf, self.done = out, stop or None, "", False

    def write(self, text):
        """Returns True once the stop string has been written (generation should end)."""
        if self.done:
            return True
        if not self.stop:
            self.out.write(text)
            self.out.flush()
            return False
        self.buf += text
        i = self.buf.find(self.stop)
        if i >= 0:
            self.out.write(self.buf[:i + len(self.stop)])
            self.buf, self.done = "", True
        else:
            keep = len(self.stop) - 1  # a stop string may be starting at the end
            cut = max(0, len(self.buf) - keep)
            self.out.write(self.buf[:cut])
            self.buf = self.buf[cut:]
        self.out.flush()
        return self.done

    def close(self):
        if self.buf:
            self.out.write(self.buf)
        self.buf = ""
        self.out.flush()


def generate_one(model, vocab, ids, length, temperature, top_k, top_p, rng, writer, line_mode):
    """Stream one sample through `writer`; returns the number of tokens generated."""
    n = 0
    stop_id = vocab.eos_id if line_mode else None
    for tok in model.generate(ids, length, temperature, top_k or None,
                              None if top_p >= 1 else top_p, rng, stop_id=stop_id):
        n += 1
        if tok in (vocab.bos_id, vocab.eos_id):
            continue
        if writer.write(vocab.itos[tok]):
            break
    writer.close()
    return n


def main(*, checkpoint=None, start=None, length=500, temperature=1.0, top_k=0, top_p=1.0,
         num_samples=1, seed=None, stop=None, which="best", cache_size=None, threads=1):
    """Generate text from a trained language model.

    Args:
      checkpoint: run directory (default: the most recently trained run under checkpoints/)
      start: prompt text the samples continue (FILE:prompt.txt reads a file)
      length: tokens to generate per sample (in line mode: at most, per line)
      temperature: divides the scores before softmax: < 1 more predictable, > 1 more random
      top_k: sample only from the k most likely tokens (0 = off, 1 = greedy)
      top_p: sample only from the most likely tokens whose probabilities sum to top_p (nucleus; 1 = off)
      num_samples: number of independent samples
      seed: random seed; the same seed gives the same text (default: a fresh one, printed)
      stop: end a sample once this string has been generated
      which: best (lowest validation loss) or last weights
      cache_size: the continuous cache's size instead of the run's (0: the network alone)
      threads: BLAS threads (1 is fastest for one token at a time; auto or N)
    """
    from lm.storage.run_dir import check_run_dir, checkpoint_name, find_latest_run
    from lm.models.load import load_language_model as load_run

    from lm.cli import choose_threads as choose
    choose(check_str("threads", threads))  # range check; the count was set at start-up
    length = check_int("length", length, 0, 10_000_000)
    temperature = check_float("temperature", temperature, 0, 100, lo_open=True)
    top_k = check_int("top_k", top_k, 0)
    top_p = check_float("top_p", top_p, 0, 1, lo_open=True)
    num_samples = check_int("num_samples", num_samples, 1, 100000)
    which = check_choice("which", which, ("best", "last"))
    stop = check_str("stop", stop)
    text = prompt_text(check_str("start", start, allow_empty=True))
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    else:
        seed = check_int("seed", seed, 0, 2**63 - 1)
    run_dir = check_run_dir(check_str("checkpoint", checkpoint)) if checkpoint is not None \
        else find_latest_run()

    def warn(msg):
        print(msg, file=sys.stderr, flush=True)

    model, vocab, cfg = load_run(run_dir, which, cache_size=cache_size)
    warn(f"sampling from {checkpoint_name(run_dir, which)}, seed {seed}")
    ids, shown = encode_prompt(text, vocab, cfg.line_mode, warn)
    rng = np.random.default_rng(seed)
    out = sys.stdout
    t0, n_tokens = time.perf_counter(), 0
    for i in range(num_samples):
        if i and not cfg.line_mode:
            out.write("\n\n")
        out.write(shown)
        writer = StopWriter(out, stop)
        n_tokens += generate_one(model, vocab, ids, length, temperature, top_k, top_p, rng,
                                 writer, cfg.line_mode)
        if cfg.line_mode:
            out.write("\n")
    if not cfg.line_mode:
        out.write("\n")
    out.flush()
    dt = time.perf_counter() - t0
    warn(f"{n_tokens:,} tokens in {dt:.2f} s ({n_tokens / max(dt, 1e-9):,.0f} tokens/s)")


if __name__ == "__main__":
    from lm.cli import run_cli
    run_cli(main)
