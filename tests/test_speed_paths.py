"""The paths written for speed: exp-built tanh/sigmoid, per-token loss scaling, blocked Adam, benchmark threads."""
import importlib.util
import math
import os

import numpy as np
import pytest

from lm.layers.lstm import exp_gates, gate_scale, gates_backward
from lm.layers.recurrent import exp_sigmoid, exp_sigmoid_, scaled_tanh, scaled_tanh_, tanh_, tanh_input_scale
from lm.layers.losses import temporal_softmax_loss
from lm.training.optim import CHUNK, SGD, Adam

SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "scripts")


def test_exp_built_activations_match_numpy_in_float32():
    x = np.linspace(-100, 100, 20001, dtype=np.float32)  # includes exp overflow to inf
    with np.errstate(over="ignore"):
        s = exp_sigmoid_(-x.copy())
        t = scaled_tanh_(x * tanh_input_scale(np.float32))
        t2 = tanh_(x, out=np.empty_like(x))
    x64 = x.astype(np.float64)
    assert s.dtype == t.dtype == np.float32
    assert np.abs(s - 1 / (1 + np.exp(-x64))).max() < 1e-7
    assert np.abs(t - np.tanh(x64)).max() < 3e-7 and np.array_equal(t, t2)
    assert t[0] == -1 and t[-1] == 1 and s[0] == 0 and s[-1] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_gate_helpers_match_the_equations(dtype):
    """exp_gates on the scaled pre-activations gives sigmoid/tanh of the plain ones, and
    gates_backward multiplies by their derivatives; the out= helpers equal the in-place ones."""
    H, N = 3, 5
    a = np.random.default_rng(0).normal(0, 4, (4 * H, N)).astype(dtype)
    dgates = np.random.default_rng(1).standard_normal((4 * H, N)).astype(dtype)
    with np.errstate(over="ignore"):
        gates = exp_gates(a * gate_scale(H, dtype)[:, None], out=np.empty_like(a))
        assert np.array_equal(exp_sigmoid(-a, out=np.empty_like(a)), exp_sigmoid_(-a))
        assert np.array_equal(scaled_tanh(2 * a, out=np.empty_like(a)), scaled_tanh_(2 * a))
    a64 = a.astype(np.float64)
    exact = np.concatenate([1 / (1 + np.exp(-a64[:3 * H])), np.tanh(a64[3 * H:])])
    tol = 3e-7 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(gates, exact, rtol=0, atol=tol)
    slope = np.concatenate([exact[:3 * H] * (1 - exact[:3 * H]), 1 - exact[3 * H:] ** 2])
    np.testing.assert_allclose(gates_backward(dgates, gates, out=np.empty_like(a)), dgates * slope,
                               rtol=0, atol=10 * tol)


def test_float64_tanh_keeps_relative_precision_near_zero():
    x = np.array([1e-12, -3e-9, 2e-5])
    assert tanh_input_scale(np.float64) == 1
    np.testing.assert_allclose(scaled_tanh_(x.copy()), np.tanh(x), rtol=1e-15)


def test_per_token_loss_divides_by_valid_steps():
    rng = np.random.default_rng(0)
    scores, y = rng.standard_normal((3, 4, 7)), rng.integers(0, 7, (3, 4))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)
    loss, d = temporal_softmax_loss(scores, y, mask)
    tok, dtok = temporal_softmax_loss(scores, y, mask, per_token=True)
    assert math.isclose(tok, loss * 3 / 7, rel_tol=1e-14)
    np.testing.assert_allclose(dtok, d * 3 / 7, rtol=1e-14)
    with pytest.raises(ValueError, match="valid step"):
        temporal_softmax_loss(scores, y, np.zeros((3, 4), bool), per_token=True)


class Params:
    def __init__(self, arrays):
        self.params = arrays
        self.grads = {k: np.zeros_like(v) for k, v in arrays.items()}


def adam_reference(ref, g, t, state):
    m, v = state.setdefault("m", {}), state.setdefault("v", {})
    for k in ref:
        gk = g[k] + 0.1 * ref[k]
        m[k] = 0.9 * m.get(k, 0) + 0.1 * gk
        v[k] = 0.999 * v.get(k, 0) + 0.001 * gk * gk
        ref[k] -= 0.01 / (1 - 0.9 ** t) * m[k] / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)


def sgd_reference(ref, g, t, state):
    buf = state.setdefault("buf", {})
    for k in ref:
        buf[k] = 0.5 * buf.get(k, 0) + g[k] + 0.1 * ref[k]
        ref[k] -= 0.01 * buf[k]


@pytest.mark.parametrize("make, reference", [
    (lambda m: Adam(m, lr=0.01, weight_decay=0.1), adam_reference),
    (lambda m: SGD(m, lr=0.01, momentum=0.5, weight_decay=0.1), sgd_reference),
    (lambda m: SGD(m, lr=0.01), lambda ref, g, t, state: [ref[k].__isub__(0.01 * g[k]) for k in ref]),
])
def test_blocked_update_equals_one_block_update(make, reference):
    """A parameter longer than CHUNK (updated block by block), a non-contiguous one (one
    block) and a small one all follow the same formula as a plain whole-array update."""
    rng = np.random.default_rng(1)
    big = rng.standard_normal(CHUNK * 2 + 5)
    strided = rng.standard_normal((6, 8))[:, ::2]
    model = Params({"big": big.copy(), "strided": strided, "small": rng.standard_normal(3)})
    ref = {k: v.copy() for k, v in model.params.items()}
    opt, state = make(model), {}
    for t in range(1, 4):
        g = {}
        for k, p in model.params.items():
            model.grads[k][...] = np.sin(3 * p)
            g[k] = np.sin(3 * ref[k])
        reference(ref, g, t, state)
        opt.step()
    for k in ref:
        np.testing.assert_allclose(model.params[k], ref[k], rtol=1e-12, atol=1e-14)


def load_bench_threads():
    spec = importlib.util.spec_from_file_location("bench_threads", os.path.join(SCRIPTS, "bench_threads.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_thread_choice(monkeypatch):
    bt = load_bench_threads()
    env = {}
    monkeypatch.setattr(os, "getloadavg", lambda: (1.7, 0, 0))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert bt.choose(["--suite", "layers"]) == (None, "numpy's default")
    assert bt.choose(["--suite", "layers", "--threads", "2"])[0] == "2"
    assert bt.choose(["--suite", "train", "--threads", "3"]) == ("3", "--threads")
    assert bt.choose(["--suite=train"])[0] == "1"
    assert bt.choose(["--suite", "sample", "--threads", "auto"], env, load=0.1)[0] == str(bt.lm_threads.cpus())
    assert bt.choose(["--suite", "train"], {"OPENBLAS_NUM_THREADS": "2"})[0] == "2"
    assert bt.choose(["--suite", "train", "--threads", "x"]) == (None, "numpy's default")
