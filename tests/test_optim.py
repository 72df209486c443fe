"""Adam, SGD and gradient clipping against hand-computed values."""
import math

import numpy as np
import pytest

from lm.training.optim import SGD, Adam, clip_grad_norm
from conftest import adam_reference


class Quadratic:
    """f(p) = 0.5 * sum((w - a)^2) + 0.5 * sum(b^2): grads w - a and b."""

    def __init__(self, dtype=np.float64):
        self.params = {"w": np.array([1.0, -2.0, 0.5], dtype=dtype),
                       "b": np.array([[3.0]], dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.a = np.array([0.0, 1.0, 0.5], dtype=dtype)

    def fill_grads(self):
        self.grads["w"][...] = self.params["w"] - self.a
        self.grads["b"][...] = self.params["b"]



def test_adam_first_step_is_lr_times_sign():
    model = Quadratic()
    opt = Adam(model, lr=0.1)
    model.fill_grads()
    opt.step()
    # bias-corrected m/sqrt(v) = g/|g| on step 1 (a zero gradient does not move)
    np.testing.assert_allclose(model.params["w"], [0.9, -1.9, 0.5], atol=1e-7)
    np.testing.assert_allclose(model.params["b"], [[2.9]], atol=1e-7)


@pytest.mark.parametrize("wd", [0.0, 0.3])
def test_adam_matches_reference_for_several_steps(wd):
    model = Quadratic()
    a = model.a
    opt = Adam(model, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd)
    for _ in range(5):
        model.fill_grads()
        opt.step()
    ref = adam_reference(np.r_[[1.0, -2.0, 0.5], 3.0],
                         lambda p: [p[0] - a[0], p[1] - a[1], p[2] - a[2], p[3]],
                         5, 0.05, 0.8, 0.99, 1e-6, wd)
    np.testing.assert_allclose(model.params["w"], ref[:3], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.params["b"].ravel(), ref[3:], rtol=1e-12)
    assert opt.scalars["t"] == 5


def test_adamw_decoupled_decay_differs_from_l2():
    m1, m2 = Quadratic(), Quadratic()
    o1 = Adam(m1, lr=0.1, weight_decay=0.5, decoupled=True)
    o2 = Adam(m2, lr=0.1, weight_decay=0.5)
    m1.fill_grads(); o1.step()
    m2.fill_grads(); o2.step()
    # decoupled: p *= 1 - lr*wd, then the plain Adam step of -lr*sign(g)
    np.testing.assert_allclose(m1.params["b"], [[3.0 * 0.95 - 0.1]], atol=1e-7)
    assert not np.allclose(m1.params["w"], m2.params["w"])


def test_adam_does_not_modify_grads_and_skips_frozen():
    model = Quadratic()
    opt = Adam(model, lr=0.1, weight_decay=0.1, frozen={"b"})
    model.fill_grads()
    g = model.grads["w"].copy()
    opt.step()
    np.testing.assert_array_equal(model.grads["w"], g)
    np.testing.assert_array_equal(model.params["b"], [[3.0]])
    assert "adam.m.b" not in opt.state_dict()
    with pytest.raises(ValueError, match="not parameters"):
        Adam(model, frozen={"nope"})


def test_sgd_plain_and_momentum_values():
    model = Quadratic()
    opt = SGD(model, lr=0.5)
    model.fill_grads()
    opt.step()
    np.testing.assert_allclose(model.params["w"], [0.5, -0.5, 0.5])

    model = Quadratic()
    opt = SGD(model, lr=0.1, momentum=0.9)
    model.fill_grads()  # g = 3
    opt.step()          # buf = 3,            b = 3 - 0.3 = 2.7
    assert model.params["b"][0, 0] == pytest.approx(2.7)
    model.fill_grads()  # g = 2.7
    opt.step()          # buf = 2.7 + 2.7 = 5.4, b = 2.7 - 0.54 = 2.16
    assert model.params["b"][0, 0] == pytest.approx(2.16)
    np.testing.assert_allclose(opt.state["buf"]["b"], [[5.4]])


def test_sgd_weight_decay():
    model = Quadratic()
    opt = SGD(model, lr=0.1, weight_decay=0.5)
    model.fill_grads()  # g = 3 + 0.5 * 3 = 4.5
    opt.step()
    assert model.params["b"][0, 0] == pytest.approx(3.0 - 0.45)


@pytest.mark.parametrize("make", [lambda m: Adam(m, lr=0.03),
                                  lambda m: SGD(m, lr=0.1, momentum=0.5)])
def test_state_dict_round_trip_continues_identically(make):
    m1 = Quadratic()
    o1 = make(m1)
    for _ in range(3):
        m1.fill_grads(); o1.step()
    state = o1.state_dict()
    saved = {k: v.copy() for k, v in m1.params.items()}
    for _ in range(4):
        m1.fill_grads(); o1.step()

    m2 = Quadratic()
    for k, v in saved.items():
        m2.params[k][...] = v
    o2 = make(m2)
    o2.load_state_dict({k: np.array(v) for k, v in state.items()})
    for _ in range(4):
        m2.fill_grads(); o2.step()
    for k in m1.params:
        np.testing.assert_array_equal(m1.params[k], m2.params[k])


def test_load_state_dict_rejects_mismatch():
    model = Quadratic()
    state = Adam(model).state_dict()
    with pytest.raises(ValueError, match="does not match"):
        SGD(model, lr=0.1, momentum=0.9).load_state_dict(state)
    bad = dict(state)
    bad["adam.m.w"] = np.zeros(5)
    with pytest.raises(ValueError, match="shape"):
        Adam(model).load_state_dict(bad)


def test_state_dict_restores_lr_and_step():
    model = Quadratic()
    opt = Adam(model, lr=0.01)
    model.fill_grads(); opt.step()
    opt.lr = 0.005
    other = Adam(Quadratic(), lr=0.1)
    other.load_state_dict(opt.state_dict())
    assert other.lr == 0.005 and other.scalars["t"] == 1


def test_bad_hyperparameters():
    model = Quadratic()
    for kwargs in [dict(lr=0), dict(lr=-1.0), dict(betas=(1.0, 0.9)), dict(weight_decay=-1)]:
        with pytest.raises(ValueError):
            Adam(model, **kwargs)
    with pytest.raises(ValueError):
        SGD(model, lr=0.1, momentum=1.5)


def test_adam_float32_stays_float32_in_place():
    model = Quadratic(np.float32)
    w = model.params["w"]
    opt = Adam(model, lr=0.1)
    model.fill_grads(); opt.step()
    assert model.params["w"] is w and w.dtype == np.float32
    np.testing.assert_allclose(w, [0.9, -1.9, 0.5], atol=1e-6)


def test_clip_grad_norm_values():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    total = clip_grad_norm(grads, 10.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])  # below the limit: untouched
    total = clip_grad_norm(grads, 1.0)
    assert total == pytest.approx(5.0)  # the norm before clipping
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    np.testing.assert_allclose(grads["b"], [[0.8]])
    assert clip_grad_norm(grads, None) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        clip_grad_norm(grads, 0.0)


def test_clip_grad_norm_float32_overflow_and_nonfinite():
    g = {"a": np.full(4, 1e30, dtype=np.float32)}
    total = clip_grad_norm(g, 1.0)
    assert total == pytest.approx(2e30, rel=1e-6)
    np.testing.assert_allclose(g["a"], np.full(4, 0.5), rtol=1e-5)
    g = {"a": np.array([np.nan, 1.0])}
    assert math.isnan(clip_grad_norm(g, 1.0))
    assert g["a"][1] == 1.0  # nothing scaled
