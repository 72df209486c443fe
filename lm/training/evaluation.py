"""Evaluation without gradients: a language model's held-out loss, a classifier's accuracy.

`evaluate_loss` is the language model's validation (and `lm.evaluate`'s score): the mean
negative log-likelihood per target token, in nats, with the hidden state carried across
BPTT windows exactly as in training (or per padded line in line mode).
"""
import numpy as np

from lm.data.batchers import BPTTBatcher, LineBatcher, Lines


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
