"""How far back a loss reaches: the norm of d loss / d h_t against the distance from the loss.

For one batch, each row's loss sits at its last valid step t_n (a language model: the
loss of its last target; a classifier: its loss on the label, read through the model's
pooling). For every recurrent layer l and step t <= t_n the figure is

    g^l_{n,t} = d loss_n / d h^l_{n,t}     (the total derivative: through the layers above
                                            and through the layer's own later steps)

and `gradient_norms` averages ||g^l_{n,t}||_2 over the rows at each distance k = t_n - t.
A vanilla RNN's norms fall geometrically with k (the vanishing gradient); through an
LSTM's cell state each step multiplies them by the forget gate, so they stay up where the
gates are near 1. "input" is the same for the embeddings fed to the first layer.

Every number comes from the layers' own backward passes: g^l_t is the upstream gradient
into layer l at step t plus the gradient its backward returns for the initial state when
the layer is run again from step t + 1 with the state it had after step t (for an LSTM:
h and c, gradient taken with respect to h). That costs one extra pass per step (O(T^2)
steps per layer), fine for diagnosing a batch; tests check it against a BPTT written with
the step functions and against float64 finite differences.
"""
import contextlib

import numpy as np

from lm.data.batch import Batch
from lm.layers.bidirectional import Bidirectional, reverse_valid
from lm.layers.losses import temporal_softmax_loss
from lm.models.classifier import SentimentClassifier
from lm.models.language_model import LanguageModelRNN

STATES = ("h0", "c0")  # the initial-state arguments of the recurrent layers, in order


@contextlib.contextmanager
def encoder_output_grad(encoder):
    """Within the block, the model's own backward stops at its encoder's output and the
    gradient that arrives there, (N, T, H_out), is appended to the list yielded."""
    got = []
    encoder.backward = lambda dh: got.append(np.array(dh))  # shadows the method
    try:
        yield got
    finally:
        del encoder.backward


def last_steps(batch):
    """Each row's last valid input step, (N,) ints."""
    N, T = np.shape(batch.inputs)
    if batch.mask is None:
        return np.full(N, T - 1, dtype=np.int64)
    return np.asarray(batch.mask, dtype=bool).sum(axis=1).astype(np.int64) - 1


def top_gradient(model, batch):
    """(loss per row summed, d loss / d encoder output (N, T, H_out)); model in eval mode.

    LanguageModelRNN: the loss of each row's last target only. SentimentClassifier: its
    own loss. Both summed over the rows (each row's gradient is its own loss's).
    """
    N = len(batch.inputs)
    if isinstance(model, LanguageModelRNN):
        last = last_steps(batch)
        if (last < 0).any():
            raise ValueError("every row of the batch needs at least one valid step")
        at_last = np.zeros(np.shape(batch.inputs), dtype=bool)
        at_last[np.arange(N), last] = True
        with encoder_output_grad(model.encoder) as got:
            scores, _ = model.forward(batch.inputs, None, batch.mask)
            loss, dscores = temporal_softmax_loss(scores, batch.targets, at_last,
                                                  overwrite_scores=True)
            model.backward(dscores)
    elif isinstance(model, SentimentClassifier):
        with encoder_output_grad(model.encoder) as got:
            loss, _ = model.loss(Batch(batch.inputs, batch.targets, batch.mask))
    else:
        raise ValueError(f"gradient norms need a language model or a classifier, "
                         f"not {type(model).__name__}")
    return float(loss) * N, got[0] * N  # both were means over the N rows


def state_gradients(layer, x, upstream, mask=None):
    """d loss / d h_t of a recurrent layer at every step, (N, T, H).

    x: (N, T, D) the layer's input; upstream: (N, T, H) the gradient reaching its outputs
    from above (what the layer's backward takes); mask: (N, T) or None. Uses only the
    layer's forward and backward (see the module docstring). A Bidirectional layer gives
    both directions side by side, its backward direction worked out on reversed rows.
    Adds into the layer's `grads` (callers zero them).
    """
    if isinstance(layer, Bidirectional):
        lengths = None if mask is None else np.asarray(mask).sum(axis=1)
        Hf = layer.fwd.hidden_dim
        fwd = state_gradients(layer.fwd, x, upstream[:, :, :Hf], mask)
        rev = lambda a: reverse_valid(a, lengths)  # noqa: E731
        bwd = rev(state_gradients(layer.bwd, rev(x), rev(upstream[:, :, Hf:]), mask))
        return np.concatenate([fwd, bwd], axis=2)
    N, T = x.shape[:2]
    step_mask = (lambda a, b: None) if mask is None else (lambda a, b: mask[:, a:b])
    states, state = [], None  # states[t]: the layer's state after step t
    for t in range(T - 1):
        layer.forward(x[:, t:t + 1], **(state or {}), mask=step_mask(t, t + 1))
        state = dict(zip(STATES, layer.final_state))
        states.append(state)
    total = np.array(upstream, dtype=np.float64)  # the direct part, at every step
    for t in range(T - 1):  # plus what comes back through steps t+1 .. T-1
        layer.forward(x[:, t + 1:], **states[t], mask=step_mask(t + 1, T))
        _, dh0 = layer.backward(upstream[:, t + 1:])
        total[:, t] += dh0
    if mask is not None:
        total[~np.asarray(mask, dtype=bool)] = 0
    return total


def state_gradients_by_layer(model, batch):
    """(loss, {"input": (N, T, E), "layer 1": (N, T, H), ...}): d loss_n / d h^l_{n,t} of
    every layer at every step, zero at padding, and d loss_n / d (the first layer's input).
    The model is run in eval mode; its mode is restored and its gradients zeroed."""
    enc = model.encoder
    if enc.cell == "bag":
        raise ValueError("a bag-of-words encoder has no recurrent state to measure")
    mask = None if batch.mask is None else np.asarray(batch.mask, dtype=bool)
    batch = Batch(np.asarray(batch.inputs), np.asarray(batch.targets), mask)
    was_training = model.training
    model.eval()
    try:
        loss, upstream = top_gradient(model, batch)
        xs = [enc.embed.forward(batch.inputs)]  # each layer's input (no dropout in eval)
        for layer in enc.layers[:-1]:
            xs.append(layer.forward(xs[-1], mask=mask))
        grads = {}
        for i in range(len(enc.layers) - 1, -1, -1):
            layer = enc.layers[i]
            grads[f"layer {i + 1}"] = state_gradients(layer, xs[i], upstream, mask)
            layer.forward(xs[i], mask=mask)
            upstream, _ = layer.backward(upstream)  # d loss / d (its input), for the layer below
        grads["input"] = upstream
    finally:
        model.zero_grad()
        model.train(was_training)
    return loss, grads


def gradient_norms(model, batch):
    """{"input": (K,), "layer 1": (K,), ...}: the mean over rows of ||d loss_n / d h_t||
    at distance k = 0 .. K-1 from each row's last valid step (K: the longest row), NaN
    where no row reaches that far; "rows": (K,) how many rows reach each distance;
    "loss": the rows' losses summed. See `state_gradients_by_layer`.
    """
    loss, grads = state_gradients_by_layer(model, batch)
    last = last_steps(batch)
    K = int(last.max()) + 1
    out = {name: by_distance(np.linalg.norm(g, axis=2), last, K) for name, g in grads.items()}
    out["rows"] = np.array([(last >= k).sum() for k in range(K)])
    out["loss"] = loss
    return out


def by_distance(norms, last, K):
    """norms (N, T) at steps -> (K,): the mean over rows at distance k = last[n] - t."""
    out = np.full(K, np.nan)
    for k in range(K):
        rows = np.flatnonzero(last >= k)
        if len(rows):
            out[k] = norms[rows, last[rows] - k].mean()
    return out
