import numpy as np

from lm.layers.gradcheck import (eval_numerical_gradient, eval_numerical_gradient_array,
                          rel_error)


def test_rel_error_nan_aware():
    a = np.array([1.0, np.nan, 3.0])
    assert rel_error(a, a.copy()) == 0.0
    assert rel_error(a, np.array([1.0, 2.0, 3.0])) == float("inf")
    assert rel_error(np.array([1.0]), np.array([1.1])) > 0.04


def test_numerical_gradient_of_quadratic():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    num = eval_numerical_gradient(lambda z: np.sum(z ** 2), x)
    assert rel_error(num, 2 * x) < 1e-8


def test_numerical_gradient_array_of_product():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((4, 2))
    df = rng.standard_normal((3, 2))
    num = eval_numerical_gradient_array(lambda z: z @ w, x, df)
    assert rel_error(num, df @ w.T) < 1e-8


def test_richardson_extrapolation_cancels_the_h_squared_error():
    """For x^3 the centred difference is off by exactly h^2; extrapolation removes it."""
    x = np.array([0.5, -1.0, 2.0])
    f = lambda v: v ** 3
    exact = 3 * x ** 2
    plain = eval_numerical_gradient_array(f, x, np.ones(3), h=1e-3)
    extrapolated = eval_numerical_gradient_array(f, x, np.ones(3), h=1e-3, extrapolate=True)
    np.testing.assert_allclose(plain - exact, 1e-6, rtol=1e-3)
    np.testing.assert_allclose(extrapolated, exact, rtol=0, atol=1e-9)
