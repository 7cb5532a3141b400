"""Log EI against the plain formula, and the local search: never worse than its starts, better than random."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import approx_fprime
from scipy.stats import norm

from nbautoml.engine.samplers._acquisition import Lattice, local_search, log_ei, log_ei_and_grad
from nbautoml.engine.samplers._gp import Posterior


def test_log_ei_is_the_log_of_expected_improvement_and_stays_finite_far_away():
    mu, var, best = np.array([0.0, 1.0, -0.5]), np.array([1.0, 0.25, 0.04]), 0.2
    sd = np.sqrt(var)
    z = (best - mu) / sd
    plain = (best - mu) * norm.cdf(z) + sd * norm.pdf(z)
    assert np.allclose(log_ei(mu, var, best), np.log(plain))
    far = log_ei(np.array([40.0, 400.0]), np.array([1.0, 1.0]), 0.0)  # plain EI underflows to 0 here
    assert np.isfinite(far).all() and far[1] < far[0]


def test_log_ei_derivatives_match_finite_differences():
    for mu, var in ((0.3, 0.5), (3.0, 0.1), (-1.0, 2.0)):
        _, d_mu, d_var = log_ei_and_grad(np.array([mu]), np.array([var]), 0.0)
        numeric = approx_fprime(np.array([mu, var]), lambda p: float(log_ei(p[:1], p[1:], 0.0)[0]), 1e-7)
        assert np.allclose([d_mu[0], d_var[0]], numeric, rtol=1e-4, atol=1e-6)


def _model() -> tuple[Posterior, float]:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.random((25, 2)), rng.integers(0, 3, 25)])
    y = (X[:, 0] - 0.7) ** 2 + (X[:, 1] - 0.2) ** 2 + 0.3 * (X[:, 2] != 1)
    y = (y - y.mean()) / y.std()
    theta = np.log(np.array([1.0, 0.3, 0.3, 1.0, 1e-4]))
    return Posterior(X, y, theta, np.array([False, False, True])), float(y.min())


def _snap(rows: np.ndarray) -> np.ndarray:
    out = np.clip(rows, 0.0, 1.0)
    out[:, 2] = np.clip(np.round(rows[:, 2]), 0, 2)
    return out


def test_local_search_never_loses_and_improves_on_random_starts():
    post, best = _model()
    lattice = Lattice(np.array([0, 1]), ((2, np.arange(3.0)),))
    starts = _snap(np.column_stack([np.random.default_rng(1).random((8, 2)), np.zeros(8)]))
    before = log_ei(*post.predict(starts), best)
    found, score = local_search(post, starts, best, lattice, _snap)
    assert np.allclose(score, log_ei(*post.predict(found), best))
    assert (score >= before - 1e-12).all() and score.max() > before.max() + 1e-3
    assert np.array_equal(found, _snap(found))  # on the lattice the objective sees
    assert set(found[:, 2]) <= {0.0, 1.0, 2.0}


def test_local_search_with_only_choices_sweeps_their_options():
    post, best = _model()
    lattice = Lattice(np.array([], int), ((2, np.arange(3.0)),))
    start = np.array([[0.7, 0.2, 0.0]])
    found, _ = local_search(post, start, best, lattice, _snap)
    assert found[0, 2] == 1.0 and math.isclose(found[0, 0], 0.7)  # the good option; numbers left alone
