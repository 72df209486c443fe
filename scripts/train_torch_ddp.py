"""Continue training an exported lm language model in PyTorch with DistributedDataParallel.

    python -m lm.export --checkpoint RUN_DIR model.safetensors --format pytorch
    torchrun --nproc_per_node 2 scripts/train_torch_ddp.py model.safetensors --out_dir DIR
    python -m lm.import_torch DIR/best.safetensors --out_dir RUN_DIR2

Same corpus, vocabulary and batching as lm (lm's own reader, split and BPTTBatcher): the
--batch_size streams of truncated-BPTT windows are split across the ranks, rank r taking
streams [r*B/W, (r+1)*B/W), each carrying its hidden state from window to window (cut
from the graph between windows, reset at each epoch); DDP averages the gradients, so a
step is the step one process would take on all B streams. Validation is lm's (all
validation windows, state carried, B streams), its sums all-reduced across ranks. Adam,
gradient clipping and the halving of the learning rate when validation stalls follow the
run's config. Backend gloo on CPU, nccl on GPUs (one per rank). Rank 0 writes
DIR/best.safetensors (best validation loss) and DIR/last.safetensors in PyTorch layout
with lm's metadata, which `python -m lm.import_torch` reads. Needs `pip install -e ".[torch]"`.
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", help="exported language model (.safetensors, PyTorch layout)")
    p.add_argument("--out_dir", required=True, help="directory for best/last.safetensors")
    p.add_argument("--corpus", default=None, help="text file (default: the run's corpus)")
    p.add_argument("--max_steps", type=int, default=300)
    p.add_argument("--eval_every", type=int, default=50)
    p.add_argument("--batch_size", type=int, default=None,
                   help="streams in all (default: the run's)")
    p.add_argument("--seq_length", type=int, default=None, help="BPTT window (default: the run's)")
    p.add_argument("--learning_rate", type=float, default=None, help="default: the run's")
    p.add_argument("--eval_tokens", type=int, default=0,
                   help="validation targets per evaluation (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    return p.parse_args(argv)


def load_data(config, vocab_json, corpus):
    """(train ids, val ids) exactly as lm.train split them, with the run's vocabulary."""
    from lm.data.batchers import split_corpus
    from lm.text.corpora import resolve_corpus
    from lm.text.stream import load_corpus
    from lm.text.vocab import Vocab

    t = config["train"]
    if t["line_mode"]:
        raise ValueError("this script trains on token streams; the run uses --line_mode")
    if corpus is None:
        saved = config.get("data", {}).get("path")
        corpus = saved if isinstance(saved, str) and os.path.isfile(saved) else t["corpus"]
    path, _ = resolve_corpus(corpus)
    c = load_corpus(path, t["level"], t["lowercase"], line_mode=False, encoding=t["encoding"],
                    errors=t["encoding_errors"], vocab=Vocab.from_json(vocab_json))
    return split_corpus(c, t["val_frac"])


def my_rows(batch_size, rank, world):
    """This rank's streams: [r*B/W, (r+1)*B/W), as even as B allows."""
    return slice(rank * batch_size // world, (rank + 1) * batch_size // world)


def evaluate(model, val_ids, batch_size, seq_length, rank, world, device, max_tokens=0):
    """lm's validation loss (nats/token), the windows' streams split across ranks."""
    import torch
    import torch.distributed as dist
    from lm.data.batchers import BPTTBatcher

    batcher = BPTTBatcher(val_ids, batch_size, seq_length)
    n = len(batcher)
    if max_tokens:
        n = min(n, max(1, -(-max_tokens // (batcher.batch_size * batcher.seq_length))))
    rows = my_rows(batcher.batch_size, rank, world)
    total = torch.zeros(2, dtype=torch.float64, device=device)
    state = None
    model.eval()
    with torch.no_grad():
        for k in range(n):
            b = batcher.batch(k)
            x = torch.from_numpy(b.inputs[rows]).to(device)
            y = torch.from_numpy(b.targets[rows]).to(device)
            loss, state = model.loss(x, y, state)
            total[0] += float(loss) * y.numel()
            total[1] += y.numel()
    model.train()
    dist.all_reduce(total)
    return float(total[0] / total[1])


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def main(argv=None):
    args = parse_args(argv)
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from lm.data.batchers import BPTTBatcher
    from lm.interop import torch_model

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + rank)  # dropout masks differ across ranks

    def say(*a):
        if rank == 0:
            print(*a, flush=True)

    def fail(message):  # every rank stops; one line from rank 0
        if rank == 0:
            print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2)

    try:
        model, config, vocab = torch_model.read_file(args.file)
    except (ValueError, OSError) as e:  # a CheckpointError is a ValueError
        fail(e)
    if config["kind"] != "language_model":
        fail(f"{args.file} holds a {config['kind']} model, not a language model")
    t = config["train"]
    B = args.batch_size or t["batch_size"]
    T = args.seq_length or t["seq_length"]
    lr = args.learning_rate or t["learning_rate"]
    if B % world:
        fail(f"--batch_size {B} is not divisible by {world} processes")
    if os.path.isdir(args.out_dir) and any(f.endswith(".safetensors")
                                           for f in os.listdir(args.out_dir)):
        fail(f"{args.out_dir} already holds checkpoints (nothing was changed)")
    if rank == 0:
        os.makedirs(args.out_dir, exist_ok=True)
    try:
        train_ids, val_ids = load_data(config, vocab, args.corpus)
    except (ValueError, OSError) as e:
        fail(e)
    model.to(device).train()
    ddp = DDP(model, device_ids=[local] if cuda else None)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=t.get("weight_decay", 0.0))
    batcher = BPTTBatcher(train_ids, B, T)
    rows = my_rows(batcher.batch_size, rank, world)
    n_weights = sum(p.numel() for p in model.parameters())
    if batcher.batch_size % world:
        fail(f"the corpus allows only {batcher.batch_size} streams, not "
                         f"divisible by {world} processes")
    say(f"{world} processes ({'nccl' if cuda else 'gloo'}), {n_weights:,} weights, "
        f"{len(train_ids):,} training tokens, {batcher.batch_size} streams x "
        f"{batcher.seq_length} ({rows.stop - rows.start} per process), lr {lr:g}")
    config = {**config, "train": {**t, "batch_size": batcher.batch_size,
                                  "seq_length": batcher.seq_length, "learning_rate": lr}}

    def save(name):
        if rank == 0:
            torch_model.save_file(model, os.path.join(args.out_dir, name + ".safetensors"),
                                  config, vocab, overwrite=True)

    best = evaluate(model, val_ids, B, T, rank, world, device, args.eval_tokens)
    say(f"step {0:5d} | val {best:.4f} (the exported model)")
    save("best")
    stalls, state, start, run_loss, run_n = 0, None, time.time(), 0.0, 0
    for step in range(1, args.max_steps + 1):
        b = batcher.next_batch()
        if batcher.starts_epoch:
            state = None
        x = torch.from_numpy(b.inputs[rows]).to(device)
        y = torch.from_numpy(b.targets[rows]).to(device)
        loss, state = _ddp_loss(ddp, x, y, state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.get("grad_clip", 0):
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        state = detach(state)
        run_loss, run_n = run_loss + loss.item(), run_n + 1
        if step % args.eval_every == 0 or step == args.max_steps:
            val = evaluate(model, val_ids, B, T, rank, world, device, args.eval_tokens)
            tok = step * batcher.batch_size * batcher.seq_length / (time.time() - start)
            mark = ""
            if val < best:
                best, stalls, mark = val, 0, " | best"
                save("best")
            else:
                stalls += 1
                if stalls > t.get("patience", 1):
                    for g in opt.param_groups:
                        g["lr"] = max(g["lr"] * t.get("lr_decay", 0.5), t.get("min_lr", 0.0))
                    stalls = 0
            say(f"step {step:5d} | train {run_loss / run_n:.4f} | val {val:.4f} | "
                f"val bpc {val / math.log(2):.3f} | {tok:,.0f} tok/s | "
                f"lr {opt.param_groups[0]['lr']:.2e}{mark}")
            run_loss, run_n = 0.0, 0
    save("last")
    say(f"best val {best:.4f}: {os.path.join(args.out_dir, 'best.safetensors')}")
    dist.destroy_process_group()


def _ddp_loss(ddp, x, y, state):
    """The mean NLL through DDP's forward, so its gradient hooks average across ranks."""
    import torch.nn.functional as F

    logits, state = ddp(x, state)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state


if __name__ == "__main__":
    main()
