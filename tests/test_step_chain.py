"""The fast sequence passes of every recurrent layer equal a chain of `step_forward` / `step_backward` calls.

Not a gradient check: the step functions are the readable reference (one equation a line),
and the sequence passes, written for speed, must give the same numbers to rounding in
float64: outputs, final states, dx, dh0 (dc0) and every weight gradient. Masked steps are
chained the way the layers define them: the state is carried unchanged, the output is zero,
and no gradient reaches the step's input or the weights.
"""
import numpy as np
import pytest

from lm.layers.gru import GRU
from lm.layers.lstm import LSTM
from lm.layers.rnn import VanillaRNN

CELLS = {"rnn": VanillaRNN, "lstm": LSTM, "gru": GRU}

# (N, T, D, H, lengths or None, initial state "batch" / "shared" / None)
CASES = {
    "full": (3, 5, 4, 3, None, "batch"),
    "masked": (4, 6, 3, 5, [6, 2, 0, 4], "batch"),
    # D + 1 <= H / 2: the LSTM brings x into each step's product (the other cases project
    # all steps before the loop)
    "narrow_input_masked": (3, 5, 2, 7, [5, 1, 3], "batch"),
    "shared_state": (2, 4, 2, 6, [4, 3], "shared"),
    "N1_no_initial_state": (1, 2, 3, 2, None, None),
}


def chain_forward(layer, x, states, mask):
    """x (N, T, D), states [(N, H)...], mask (N, T) -> (out (N, T, H), final states, caches)."""
    T = x.shape[1]
    outs, caches = [], []
    for t in range(T):
        *new, cache = layer.step_forward(x[:, t], *states)
        valid = mask[:, t, None]
        states = [np.where(valid, s_new, s) for s_new, s in zip(new, states)]
        outs.append(np.where(valid, new[0], 0))
        caches.append(cache)
    return np.stack(outs, axis=1), states, caches


def chain_backward(layer, dh, dfinal, caches, mask):
    """dh (N, T, H), dfinal: gradients on the final states -> (dx, dstates0, {param: grad})."""
    k = len(dfinal)                                   # 1 (h) or 2 (h, c)
    dstates = list(dfinal)                            # the gradient reaching each state
    grads = {name: np.zeros_like(p) for name, p in layer.params.items()}
    dxs = []
    for t in range(dh.shape[1] - 1, -1, -1):
        valid = mask[:, t, None]
        dnext = [dstates[0] + dh[:, t], *dstates[1:]]
        # a padded step: its output is constant zero and its state passes through unchanged
        dx, *rest = layer.step_backward(*(np.where(valid, d, 0) for d in dnext), caches[t])
        dprev, dparams = rest[:k], rest[k:]
        dstates = [np.where(valid, dp, d) for dp, d in zip(dprev, dstates)]
        for name, g in zip(layer.params, dparams):    # step_backward returns them in params order
            grads[name] += g
        dxs.append(dx)
    return np.stack(dxs[::-1], axis=1), dstates, grads


def assert_close(fast, chained, what):
    assert fast.shape == chained.shape, what
    np.testing.assert_allclose(fast, chained, rtol=0, atol=1e-10 * max(1.0, np.abs(chained).max()),
                               err_msg=what)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(CELLS))
def test_sequence_passes_equal_chained_steps(name, case):
    N, T, D, H, lengths, state = CASES[case]
    rng = np.random.default_rng(0)
    layer = CELLS[name](D, H, dtype=np.float64, rng=rng)
    k = len(layer.state_names)
    x = rng.standard_normal((N, T, D))
    dh = rng.standard_normal((N, T, H))
    shape = {"batch": (N, H), "shared": (H,), None: None}[state]
    states0 = [None if shape is None else rng.standard_normal(shape) for _ in range(k)]
    mask = np.ones((N, T), bool) if lengths is None else np.arange(T) < np.array(lengths)[:, None]
    x[~mask] = 100.0  # junk in padding must not matter to either side

    out = layer.forward(x, *states0, mask=None if lengths is None else mask)
    final = layer.final_state
    layer.zero_grad()
    dx, dh0 = layer.backward(dh)
    dstates0 = [dh0, getattr(layer, "dc0", None)][:k]

    full0 = [np.zeros((N, H)) if s is None else np.broadcast_to(s, (N, H)) for s in states0]
    out_c, final_c, caches = chain_forward(layer, x, full0, mask)
    # the layers take no gradient on their final states: the chain starts from zero there
    dx_c, dstates0_c, grads_c = chain_backward(layer, dh, [np.zeros((N, H))] * k, caches, mask)

    assert_close(out, out_c, "h")
    for s, s_c, nm in zip(final, final_c, layer.state_names):
        assert_close(s, s_c, f"final {nm}")
    assert_close(dx, np.where(mask[:, :, None], dx_c, 0), "dx")
    assert np.all(dx[~mask] == 0)
    for d, d_c, nm in zip(dstates0, dstates0_c, layer.state_names):
        if state is not None:
            assert_close(d, d_c.sum(axis=0) if state == "shared" else d_c, f"d{nm}0")
    for p in layer.params:
        assert np.abs(grads_c[p]).max() > 0, p  # the comparison below must be able to fail
        assert_close(layer.grads[p], grads_c[p], f"d{p}")
