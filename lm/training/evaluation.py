"""Evaluation without gradients: a language model's held-out loss, a classifier's accuracy,
a sequence-to-sequence model's exact matches.

`evaluate_loss` is the language model's validation (and `lm.evaluate`'s score): the mean
negative log-likelihood per target token, in nats, with the hidden state carried across
BPTT windows exactly as in training (or per padded line in line mode).
"""
import numpy as np

from lm.data.batchers import BPTTBatcher, LineBatcher, Lines
from lm.layers.losses import temporal_softmax_loss


def _windows_loss(model, windows, carry_state, should_stop):
    """Sum of NLL (nats) and number of target tokens over the Batches in `windows`."""
    total, count, state = 0.0, 0, None
    for batch in windows:
        if should_stop is not None and should_stop():
            return None, count
        nats, n, state = model.nll(batch.inputs, batch.targets,
                                   state if carry_state else None, batch.mask)
        total += nats
        count += n
    return total, count


def first_lines(lines, max_tokens):
    """The first lines of `lines` (lm.data.batchers.Lines) holding at most about
    `max_tokens` targets (each line's tokens and its <eos>); at least one; all when 0."""
    if not max_tokens or len(lines) == 0:
        return lines
    k = int(np.searchsorted(np.cumsum(lines.lengths + 1), max_tokens, side="right"))
    return lines if k >= len(lines) else lines.take(np.arange(max(1, k)))


def evaluated_tokens(data, batch_size, seq_length, max_tokens):
    """How many validation targets evaluate_loss scores with these settings: the number
    the banner reports (all of them when max_tokens is 0 or larger than the split)."""
    if isinstance(data, Lines):
        sub = first_lines(data, max_tokens)
        return int(sub.lengths.sum()) + len(sub)
    batcher = BPTTBatcher(data, batch_size, seq_length)
    N, T, windows = batcher.batch_size, batcher.seq_length, len(batcher)
    if max_tokens:  # as evaluate_loss: whole windows, enough for max_tokens
        windows = min(windows, max(1, -(-max_tokens // (N * T))))
    return N * min(windows * T, batcher.data.shape[1] - 1)


def evaluate_loss(model, data, vocab, batch_size=64, seq_length=64, max_tokens=0,
                  should_stop=None):
    """Mean NLL per target token (nats) of `data` under `model`, dropout off.

    data: a 1-D id array (cut into `batch_size` parallel streams, windows of
    `seq_length`, state carried; at most about `max_tokens` targets when > 0), or
    `lm.data.batchers.Lines` (line mode: each line scored as <bos> line -> line <eos>).
    Returns None if `should_stop()` became true on the way (Ctrl-C).
    """
    was_training = model.training
    model.eval()
    try:
        if isinstance(data, Lines):
            data = first_lines(data, max_tokens)
            batches = LineBatcher(data, batch_size, shuffle=False, bos_id=vocab.bos_id,
                                  eos_id=vocab.eos_id)
            total, count = _windows_loss(model, batches, False, should_stop)
        else:
            batcher = BPTTBatcher(data, batch_size, seq_length)
            n_windows = len(batcher)
            if max_tokens:
                per_window = batcher.batch_size * batcher.seq_length
                n_windows = min(n_windows, max(1, -(-max_tokens // per_window)))
            windows = (batcher.batch(k) for k in range(n_windows))
            total, count = _windows_loss(model, windows, True, should_stop)
    finally:
        model.train(was_training)
    if total is None:
        return None
    if count == 0:
        raise ValueError("nothing to evaluate: no target tokens")
    return total / count


def evaluate_classifier(model, data, batch_size=64, should_stop=None):
    """Mean cross-entropy, accuracy and probabilities (n, C) of a classifier on `data`
    (lm.data.labeled.LabeledIds), dropout off. Returns {"loss", "acc", "probs", "pred"};
    loss and acc are None for an empty set; None if `should_stop()` became true."""
    from lm.data.labeled import TextBatcher

    probs = np.zeros((len(data), model.num_classes))
    if len(data):
        batcher = TextBatcher(data, batch_size, shuffle=False)
        for k in range(len(batcher)):
            if should_stop is not None and should_stop():
                return None
            b = batcher.batch(k)
            probs[batcher.last_indices] = model.predict_proba(b.inputs, b.mask)
    if not len(data):
        return {"loss": None, "acc": None, "probs": probs, "pred": np.zeros(0, np.int64)}
    pred = probs.argmax(axis=1)
    p_true = probs[np.arange(len(data)), data.labels]
    return {"loss": float(-np.mean(np.log(np.maximum(p_true, 1e-300)))),
            "acc": float(np.mean(pred == data.labels)), "probs": probs, "pred": pred}


def decode_targets(ids, vocab):
    """Decoded target ids (N, L) -> N strings, each cut at its first <eos>."""
    out = []
    for row in np.asarray(ids).tolist():
        if vocab.eos_id in row:
            row = row[:row.index(vocab.eos_id)]
        out.append("".join(vocab.decode(row)))
    return out


def evaluate_seq2seq(model, data, vocab, batch_size=256, should_stop=None, top_k=1, rng=None):
    """A sequence-to-sequence model on `data` (lm.data.pairs.PairIds), dropout off.

    Returns {"loss": mean NLL per target step with teacher forcing (nats), "acc": exact
    match of the decoded strings, "char_acc": characters right at their position over
    the target characters, "pred": the decoded strings}; loss and accuracies are None for
    an empty set; None if `should_stop()` became true.
    """
    from lm.data.pairs import PairBatcher

    if not len(data):
        return {"loss": None, "acc": None, "char_acc": None, "pred": []}
    pred = [None] * len(data)
    total = count = 0.0
    was_training = model.training
    model.eval()
    try:
        batcher = PairBatcher(data, batch_size, shuffle=False)
        for k in range(len(batcher)):
            if should_stop is not None and should_stop():
                return None
            b = batcher.batch(k)
            scores = model.forward(b.inputs, b.targets, b.mask, b.target_mask)
            n = b.num_targets()
            loss, _ = temporal_softmax_loss(scores, b.targets, b.target_mask,
                                            overwrite_scores=True, per_token=True)
            total, count = total + loss * n, count + n
            out = model.generate(b.inputs, b.mask, top_k=top_k, rng=rng)
            for i, text in zip(batcher.last_indices, decode_targets(out, vocab)):
                pred[i] = text
    finally:
        model.train(was_training)
    exact = sum(p == t for p, t in zip(pred, data.targets))
    chars = sum(sum(a == b for a, b in zip(p, t)) for p, t in zip(pred, data.targets))
    n_chars = sum(len(t) for t in data.targets)
    return {"loss": total / count, "acc": exact / len(data), "char_acc": chars / n_chars,
            "pred": pred}
