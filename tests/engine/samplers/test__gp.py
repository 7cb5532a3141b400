"""The GP maths against direct numpy formulas: kernel (with the Hamming distance), posterior, gradients."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import approx_fprime

from nbautoml.engine.samplers import _gp
from nbautoml.engine.samplers._gp import Posterior, kernel

CHOICE = np.array([False, False, True])  # two numeric columns and a Choice's option index


def rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([rng.random((n, 2)), rng.integers(0, 4, n)])


def direct_kernel(A: np.ndarray, B: np.ndarray, theta: np.ndarray) -> np.ndarray:
    amp, ls = math.exp(theta[0]), np.exp(theta[1:-1])
    out = np.empty((len(A), len(B)))
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            d2 = sum(((a[k] - b[k]) / ls[k]) ** 2 for k in (0, 1)) + float(a[2] != b[2]) / ls[2] ** 2
            r = math.sqrt(5.0 * d2)
            out[i, j] = amp * (1 + r + r * r / 3) * math.exp(-r)
    return out


THETA = np.log(np.array([1.7, 0.3, 0.8, 0.6, 0.01]))


def test_kernel_matches_the_matern_formula_with_a_hamming_distance_for_choices():
    rng = np.random.default_rng(0)
    A, B = rows(rng, 7), rows(rng, 5)
    assert np.allclose(kernel(A, B, THETA, CHOICE), direct_kernel(A, B, THETA))


def test_the_choice_distance_knows_only_same_or_different():
    base = np.array([[0.5, 0.5, 0.0]])
    others = np.array([[0.5, 0.5, 1.0], [0.5, 0.5, 3.0], [0.5, 0.5, 0.0]])
    k = kernel(base, others, THETA, CHOICE)[0]
    assert np.isclose(k[0], k[1]) and k[0] < k[2] == math.exp(THETA[0])  # option 3 is no farther than option 1
    A = rows(np.random.default_rng(1), 6)
    K = kernel(A, A, THETA, CHOICE)
    assert np.allclose(K, K.T) and np.linalg.eigvalsh(K).min() > -1e-10


def test_posterior_matches_the_textbook_formula():
    rng = np.random.default_rng(2)
    X, B = rows(rng, 12), rows(rng, 4)
    y = rng.normal(size=12)
    post = Posterior(X, y, THETA, CHOICE)
    K = direct_kernel(X, X, THETA) + (math.exp(THETA[-1]) + 1e-9) * np.eye(12)
    Kb = direct_kernel(X, B, THETA)
    mu, var = post.predict(B)
    assert np.allclose(mu, Kb.T @ np.linalg.solve(K, y))
    assert np.allclose(var, math.exp(THETA[0]) - np.einsum("ib,ib->b", Kb, np.linalg.solve(K, Kb)))


def test_posterior_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    X, y = rows(rng, 15), rng.normal(size=15)
    post, cols = Posterior(X, y, THETA, CHOICE), np.array([0, 1])
    B = rows(rng, 3)
    _, _, dmu, dvar = post.predict_grad(B, cols)
    for b in range(len(B)):
        def at(x: np.ndarray, which: int, b: int = b) -> float:
            point = B[b].copy()
            point[cols] = x
            return float(post.predict(point[None, :])[which][0])

        assert np.allclose(dmu[b], approx_fprime(B[b, cols], at, 1e-7, 0), atol=1e-4)
        assert np.allclose(dvar[b], approx_fprime(B[b, cols], at, 1e-7, 1), atol=1e-4)


def test_likelihood_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    X, y = rows(rng, 20), rng.normal(size=20)
    theta = THETA + 0.1
    _, grad = _gp._loss(theta, X, y, CHOICE)
    numeric = approx_fprime(theta, lambda t: _gp._loss(t, X, y, CHOICE)[0], 1e-6)
    assert np.allclose(grad, numeric, rtol=1e-3, atol=1e-3)


def test_fit_recovers_a_short_length_scale_where_the_function_varies():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.random((40, 2)), rng.integers(0, 3, 40)])
    y = np.sin(12 * X[:, 0])  # varies along column 0 only
    y = (y - y.mean()) / y.std()
    bounds = _gp.theta_bounds(3)
    theta = _gp.fit_theta(X, y, CHOICE, [_gp.default_theta(3)], bounds)
    ls = np.exp(theta[1:-1])
    assert ls[0] < 0.5 < ls[1] and ls[0] < ls[2]
