"""The Gaussian-process maths of :class:`nbautoml.engine.samplers.bayes.BayesSampler` (its "gp" estimator).

Amplitude × Matern-5/2 with a length scale per encoded column plus white noise, on standardised values; the
hyperparameters by maximum marginal likelihood (analytic gradient, L-BFGS-B from several starts); a posterior
that conditions on every told point with the kernel fixed and takes fantasy points (constant liar) by rank-one
updates; expected improvement. Kept apart from the sampler so each reads in one screen; nothing here knows
about spaces or skopt.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize
from scipy.special import ndtr
from threadpoolctl import ThreadpoolController

__all__ = ["Posterior", "default_theta", "expected_improvement", "fit_theta", "one_blas_thread", "theta_bounds"]

_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)
# log-space bounds of [amplitude, length scales..., noise]; gp_minimize's amplitude and length-scale bounds.
_AMP, _LS, _NOISE = (0.01, 1000.0), (0.01, 100.0), (1e-6, 2.0)
_JITTER = 1e-9
_CHOICE_LS = 5.0  # a Choice column's length-scale cap: switching an option always leaves some doubt


_blas_lock = threading.Lock()
_blas_state: dict[str, Any] = {"users": 0, "limiter": None, "controller": None}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread while any sampler works (reference-counted: threads may overlap)."""
    with _blas_lock:
        if _blas_state["users"] == 0:
            if _blas_state["controller"] is None:
                _blas_state["controller"] = ThreadpoolController()
            _blas_state["limiter"] = _blas_state["controller"].limit(limits=1, user_api="blas")
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                _blas_state["limiter"].restore_original_limits()


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d2, 0.0)


def _matern(A: np.ndarray, B: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """amplitude × Matern-5/2 with per-column length scales; ``theta`` = log [amplitude, scales..., noise]."""
    ls = np.exp(theta[1:-1])
    r = _sqdist(A / ls, B / ls)
    np.sqrt(r, out=r)
    r *= _SQRT5
    k = r * r
    k *= 1.0 / 3.0
    k += r
    k += 1.0
    np.negative(r, out=r)
    np.exp(r, out=r)
    k *= r
    k *= math.exp(theta[0])
    return k


def _nll(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood and its gradient in ``theta`` (O(n³ + n²·d), no n×n×d arrays)."""
    n = len(X)
    amp, noise = math.exp(theta[0]), math.exp(theta[-1])
    a = X / np.exp(theta[1:-1])
    r = _SQRT5 * np.sqrt(_sqdist(a, a))
    e = np.exp(-r)
    k_amp = amp * (1.0 + r + r * r / 3.0) * e
    K = k_amp.copy()
    K[np.diag_indices(n)] += noise + _JITTER
    try:
        L = cholesky(K, lower=True, check_finite=False)
    except LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = cho_solve((L, True), y, check_finite=False)
    value = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * _LOG_2PI
    W = np.outer(alpha, alpha) - cho_solve((L, True), np.eye(n), check_finite=False)
    grad = np.empty_like(theta)
    grad[0] = 0.5 * float((W * k_amp).sum())
    M = W * (amp * 5.0 / 3.0) * (1.0 + r) * e  # ∂K/∂log(scale_k) = that × (a_ik - a_jk)²
    grad[1:-1] = M.sum(1) @ (a * a) - (a * (M @ a)).sum(0)
    grad[-1] = 0.5 * noise * float(np.trace(W))
    return value, -grad


def theta_bounds(choice: np.ndarray) -> np.ndarray:
    """log-bounds of theta; a Choice column's length scale is capped at _CHOICE_LS (see the module docstring)."""
    scales = [(_LS[0], _CHOICE_LS if is_choice else _LS[1]) for is_choice in choice]
    return np.log(np.array([_AMP, *scales, _NOISE]))


def default_theta(width: int) -> np.ndarray:
    return np.log(np.array([1.0] + [1.0] * width + [1e-2]))


def fit_theta(X: np.ndarray, y: np.ndarray, starts: Sequence[np.ndarray], bounds: np.ndarray) -> np.ndarray:
    """Maximum-likelihood kernel hyperparameters: the best of an L-BFGS-B run from each start."""
    best_x, best_f = starts[0], math.inf
    for start in starts:
        x0 = np.clip(start, bounds[:, 0], bounds[:, 1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(_nll, x0, args=(X, y), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 60, "ftol": 1e-6, "gtol": 1e-4})
        if np.isfinite(res.fun) and res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return np.asarray(best_x, float)


class Posterior:
    """The GP posterior with the kernel fixed, extended by fantasy observations through rank-one updates."""

    def __init__(self, X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> None:
        self.X, self.theta = X, theta
        self.amp = math.exp(theta[0])
        self.noise = math.exp(theta[-1]) + _JITTER
        K = _matern(X, X, theta)
        for extra in (0.0, 1e-6, 1e-4):  # a near-duplicate point can make K singular: add jitter and retry
            try:
                self.L = cholesky(K + (self.noise + extra) * np.eye(len(X)), lower=True, check_finite=False)
                break
            except LinAlgError:
                continue
        else:
            raise LinAlgError("kernel matrix is not positive definite")
        self.alpha = cho_solve((self.L, True), y, check_finite=False)
        self.fantasies: list[tuple[np.ndarray, np.ndarray, float, float]] = []  # row, v, d, step

    def predict(self, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, latent variance and the V block (L⁻¹ k(X, B), grown by one row per fantasy) at rows ``B``."""
        Kb = _matern(self.X, B, self.theta)
        V = solve_triangular(self.L, Kb, lower=True, check_finite=False)
        return self.extend(B, Kb.T @ self.alpha, self.amp - (V * V).sum(0), V, 0)

    def extend(self, B: np.ndarray, mu: np.ndarray, var: np.ndarray, V: np.ndarray, start: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply the fantasies from ``start`` on to a block predicted before they were added."""
        for row, v, d, step in self.fantasies[start:]:
            r = (_matern(row[None, :], B, self.theta)[0] - v @ V) / d
            mu, var, V = mu + r * step, var - r * r, np.vstack([V, r])
        return mu, np.maximum(var, 1e-12), V

    def add(self, row: np.ndarray, v: np.ndarray, mu: float, var: float, lie: float) -> None:
        d = math.sqrt(var + self.noise)
        self.fantasies.append((row, v.copy(), d, (lie - mu) / d))

    def add_row(self, row: np.ndarray, lie: float) -> None:
        mu, var, V = self.predict(row[None, :])
        self.add(row, V[:, 0], float(mu[0]), float(var[0]), lie)


def expected_improvement(mu: np.ndarray, var: np.ndarray, best: float, xi: float) -> np.ndarray:
    sd = np.sqrt(var)
    improvement = best - mu - xi
    z = improvement / sd
    return improvement * ndtr(z) + sd * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
