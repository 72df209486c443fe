"""Gradient norms back through time: checked against a BPTT written with the layers' step
functions and against float64 finite differences; padding, bidirectional layers."""
import numpy as np
import pytest

from lm.data.batch import Batch, pad_batch
from lm.diagnostics.gradients import (by_distance, gradient_norms, state_gradients_by_layer,
                                      top_gradient)
from lm.layers.losses import softmax_cross_entropy, temporal_softmax_loss
from lm.models.classifier import SentimentClassifier
from lm.models.language_model import LanguageModelRNN

CELLS = ["rnn", "gru", "lstm"]
V, E, H = 7, 4, 3


def lm_model(cell, layers=2, seed=0):
    return LanguageModelRNN(V, E, H, cell=cell, num_layers=layers, dtype=np.float64,
                            rng=np.random.default_rng(seed))


def directions(layer):
    """[(cell layer, reversed?)]: one for a plain layer, two for a Bidirectional."""
    if hasattr(layer, "fwd"):
        return [(layer.fwd, False), (layer.bwd, True)]
    return [(layer, False)]


def step_run(model, ids, targets, inject=None):
    """The model's loss (summed over rows; the LM's last target, the classifier's label)
    computed with the layers' step_forward; `inject` = (layer, t, delta) adds delta to
    that layer's output h_t where it is made (so every later use sees it). Also returns
    each direction's step caches."""
    enc = model.encoder
    x = enc.embed.params["W"][ids]
    N, T = ids.shape
    caches = []
    for l, layer in enumerate(enc.layers):
        outs, lcaches, start = [], [], 0
        for cell, rev in directions(layer):
            Hd = cell.hidden_dim
            state = [np.zeros((N, Hd))] * len(cell.state_names)
            hs, cs = [None] * T, [None] * T
            for t in (reversed(range(T)) if rev else range(T)):
                out = cell.step_forward(x[:, t], *state)
                state, cs[t] = list(out[:-1]), out[-1]
                if inject is not None and inject[:2] == (l, t):
                    state[0] = state[0] + inject[2][:, start:start + Hd]
                hs[t] = state[0]
            outs.append(np.stack(hs, axis=1))
            lcaches.append(cs)
            start += Hd
        caches.append(lcaches)
        x = np.concatenate(outs, axis=2)
    if isinstance(model, LanguageModelRNN):
        scores = model.head.forward(x[:, -1:])
        loss, _ = temporal_softmax_loss(scores, targets[:, -1:])
    else:  # pool "last" of a bidirectional encoder: the backward half at step 0
        feats = model.pool.forward(x)
        if model.bidirectional and model.pool_mode == "last":
            feats[:, H:] = x[:, 0, H:]
        loss, _ = softmax_cross_entropy(model.head.forward(feats), targets)
    return loss * N, caches


def step_bptt(model, ids, targets):
    """Every layer's d loss / d h_t by chaining the layers' step_backward."""
    _, caches = step_run(model, ids, targets)
    _, up = top_gradient(model, Batch(ids, targets))
    N, T = ids.shape
    out = {}
    for l in range(len(model.encoder.layers) - 1, -1, -1):
        total, dx, start = np.zeros_like(up), 0, 0
        for (cell, rev), cs in zip(directions(model.encoder.layers[l]), caches[l]):
            Hd = cell.hidden_dim
            dnext = [np.zeros((N, Hd))] * len(cell.state_names)
            dxs = [None] * T
            for t in (range(T) if rev else reversed(range(T))):
                dh = up[:, t, start:start + Hd] + dnext[0]
                total[:, t, start:start + Hd] = dh
                res = cell.step_backward(dh, *dnext[1:], cs[t])
                dxs[t], dnext = res[0], list(res[1:1 + len(dnext)])
            dx = dx + np.stack(dxs, axis=1)
            start += Hd
        out[f"layer {l + 1}"], up = total, dx
    out["input"] = up
    return out


def lm_batch(N=2, T=6, seed=1):
    rng = np.random.default_rng(seed)
    return Batch(rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)))


@pytest.mark.parametrize("cell", CELLS)
def test_layer_backward_gives_the_step_functions_bptt(cell):
    model, batch = lm_model(cell), lm_batch()
    _, grads = state_gradients_by_layer(model, batch)
    assert not any(g.any() for g in model.grads.values())  # left zeroed
    ref = step_bptt(model, batch.inputs, batch.targets)
    assert set(grads) == {"input", "layer 1", "layer 2"}
    for name in grads:
        np.testing.assert_allclose(grads[name], ref[name], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_finite_differences_of_the_loss_in_h_t(cell):
    model, batch = lm_model(cell), lm_batch()
    _, grads = state_gradients_by_layer(model, batch)
    ids, y = batch.inputs, batch.targets
    h = 1e-6
    for layer, t in [(0, 0), (0, 3), (1, 2), (1, 5)]:
        num = np.zeros((2, H))
        for idx in np.ndindex(2, H):
            d = np.zeros((2, H))
            d[idx] = h
            num[idx] = (step_run(model, ids, y, (layer, t, d))[0]
                        - step_run(model, ids, y, (layer, t, -d))[0]) / (2 * h)
        np.testing.assert_allclose(grads[f"layer {layer + 1}"][:, t], num, rtol=1e-6,
                                   atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_classifier_against_the_step_functions(cell):
    model = SentimentClassifier.build(V, E, H, cell=cell, num_layers=2, bidirectional=True,
                                      pool="last", num_classes=3, dtype=np.float64, rng=2)
    rng = np.random.default_rng(3)
    ids, y = rng.integers(0, V, (2, 5)), rng.integers(0, 3, 2)
    _, grads = state_gradients_by_layer(model, Batch(ids, y))
    ref = step_bptt(model, ids, y)
    for name in grads:
        np.testing.assert_allclose(grads[name], ref[name], rtol=1e-9, atol=1e-13)
    d = np.zeros((2, 2 * H))
    d[1, 4] = 1e-6  # a backward-direction unit of layer 1 at step 2
    num = (step_run(model, ids, y, (0, 2, d))[0] - step_run(model, ids, y, (0, 2, -d))[0]) / 2e-6
    assert abs(grads["layer 1"][1, 2, 4] - num) < 1e-8 * max(1, abs(num))


@pytest.mark.parametrize("kind", ["lm", "last", "max", "bi"])
def test_a_padded_batch_equals_each_row_alone(kind):
    rng = np.random.default_rng(4)
    rows = [rng.integers(0, V, n) for n in (6, 2, 4)]
    ids, mask = pad_batch(rows)
    if kind == "lm":
        model = lm_model("lstm")
        targets = rng.integers(0, V, ids.shape)
        row_targets = [targets[i, :len(r)] for i, r in enumerate(rows)]
    else:
        model = SentimentClassifier.build(V, E, H, cell="gru", num_layers=2, pool=kind[:4]
                                          if kind != "bi" else "mean", bidirectional=kind == "bi",
                                          dtype=np.float64, rng=5)
        targets = np.array([0, 1, 1])
        row_targets = [targets[i:i + 1] for i in range(3)]
    loss, grads = state_gradients_by_layer(model, Batch(ids, targets, mask))
    total = 0.0
    for i, r in enumerate(rows):
        tg = row_targets[i][None] if kind == "lm" else row_targets[i]
        l_i, g_i = state_gradients_by_layer(model, Batch(r[None], tg))
        total += l_i
        for name in grads:
            np.testing.assert_allclose(grads[name][i, :len(r)], g_i[name][0], rtol=1e-9,
                                       atol=1e-13)
            assert not grads[name][i, len(r):].any()
    assert loss == pytest.approx(total, rel=1e-12)


def test_norms_by_distance_from_each_rows_end():
    norms = np.array([[1., 2., 3.], [4., 5., 0.]])
    out = by_distance(norms, np.array([2, 1]), 3)
    np.testing.assert_allclose(out, [(3 + 5) / 2, (2 + 4) / 2, 1])
    rng = np.random.default_rng(6)
    rows = [rng.integers(0, V, n) for n in (5, 3)]
    ids, mask = pad_batch(rows)
    model = lm_model("rnn", layers=1)
    out = gradient_norms(model, Batch(ids, ids, mask))
    assert out["rows"].tolist() == [2, 2, 2, 1, 1]
    assert out["layer 1"].shape == (5,) and np.isfinite(out["layer 1"]).all()
    assert out["layer 1"][0] > out["layer 1"][4] > 0  # a fresh vanilla RNN forgets


def test_bag_and_unknown_models_are_refused():
    bag = SentimentClassifier.build(V, E, H, cell="bag", dtype=np.float64)
    with pytest.raises(ValueError, match="no recurrent state"):
        gradient_norms(bag, Batch(np.zeros((1, 3), int), np.zeros(1, int)))
