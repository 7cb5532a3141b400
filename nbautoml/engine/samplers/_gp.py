"""The Gaussian-process maths of :class:`nbautoml.engine.samplers.bayes.BayesSampler` (its "gp" estimator).

Amplitude × Matern-5/2 with a length scale per dimension plus white noise, on standardised values. Every
dimension is one column: a Real or Int in [0, 1], a Choice as its option index, whose distance is the Hamming
one (0 for the same option, 1 for another, divided by that column's squared length scale, as Optuna's
GPSampler does). Hyperparameters are the maximum of the marginal likelihood times weak priors (Optuna's
heuristic ones: length scales pulled towards the unit cube's size, amplitude towards 1, noise towards small),
found by L-BFGS-B with an analytic gradient; the priors keep the small-n fits (10-30 points) from collapsing to
a length scale that explains everything as noise or nothing as smooth. The posterior gives the mean, variance
and their gradients in the continuous columns, which the acquisition optimiser (:mod:`._acquisition`) needs.
Nothing here knows about spaces or skopt.

A column's distance is computed in one place (:func:`_sqdist`); a parameter that may be absent (conditional
spaces) would be a marked cell of its column handled there.
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
from threadpoolctl import ThreadpoolController

__all__ = ["Posterior", "default_theta", "fit_theta", "kernel", "one_blas_thread", "theta_bounds"]

_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)
# log-space bounds of [amplitude, length scales..., noise]
_AMP, _LS, _NOISE = (0.01, 1000.0), (0.01, 100.0), (1e-6, 2.0)
_JITTER = 1e-9


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


def _sqdist(A: np.ndarray, B: np.ndarray, ls: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Σ over columns of the scaled squared distance: ((a - b) / l)² for numbers, [a ≠ b] / l² for a Choice."""
    cont = ~choice
    a, b = A[:, cont] / ls[cont], B[:, cont] / ls[cont]
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(d2, 0.0, out=d2)
    for k in np.flatnonzero(choice):
        d2 += (A[:, k, None] != B[None, :, k]) / ls[k] ** 2
    return d2


def _matern_of(d2: np.ndarray, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """Matern-5/2 of squared distances: the kernel and amp·(5/3)(1 + r)e^(-r) (its derivative factor)."""
    r = np.sqrt(d2)
    r *= _SQRT5
    e = np.exp(-r)
    dfac = amp * (5.0 / 3.0) * (1.0 + r) * e
    return amp * (1.0 + r + r * r / 3.0) * e, dfac


def kernel(A: np.ndarray, B: np.ndarray, theta: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """amplitude × Matern-5/2; ``theta`` = log [amplitude, scales..., noise]."""
    return _matern_of(_sqdist(A, B, np.exp(theta[1:-1]), choice), math.exp(theta[0]))[0]


def _log_prior(theta: np.ndarray) -> tuple[float, np.ndarray]:
    """Optuna GPSampler's priors in log-parameters: on 1/l², -(0.1 l² + 0.1 / l²); Gamma(2, 1) on the
    amplitude; Gamma(1.1, 30) on the noise. Returns the log density (up to a constant) and its gradient."""
    amp, noise, ls2 = math.exp(theta[0]), math.exp(theta[-1]), np.exp(2.0 * theta[1:-1])
    value = -0.1 * float((ls2 + 1.0 / ls2).sum()) + (theta[0] - amp) + (0.1 * theta[-1] - 30.0 * noise)
    grad = np.empty_like(theta)
    grad[0] = 1.0 - amp
    grad[1:-1] = -0.2 * (ls2 - 1.0 / ls2)
    grad[-1] = 0.1 - 30.0 * noise
    return value, grad


def _loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray, choice: np.ndarray) -> tuple[float, np.ndarray]:
    """-(log marginal likelihood + log prior) and its gradient in ``theta`` (O(n³ + n²·d))."""
    n = len(X)
    amp, noise, ls = math.exp(theta[0]), math.exp(theta[-1]), np.exp(theta[1:-1])
    k_amp, dfac = _matern_of(_sqdist(X, X, ls, choice), amp)
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
    M = W * dfac  # ∂K/∂log(scale_k) = amp·(5/3)(1 + r)e^(-r) × (scaled squared distance in column k)
    cont = ~choice
    a = X[:, cont] / ls[cont]
    grad[1:-1][cont] = M.sum(1) @ (a * a) - (a * (M @ a)).sum(0)
    for k in np.flatnonzero(choice):
        grad[1 + k] = 0.5 * float((M * (X[:, k, None] != X[None, :, k])).sum()) / ls[k] ** 2
    grad[-1] = 0.5 * noise * float(np.trace(W))
    prior, prior_grad = _log_prior(theta)
    return value - prior, -grad - prior_grad


def theta_bounds(width: int) -> np.ndarray:
    return np.log(np.array([_AMP, *[_LS] * width, _NOISE]))


def default_theta(width: int) -> np.ndarray:
    return np.log(np.array([1.0] + [1.0] * width + [1e-2]))


def fit_theta(X: np.ndarray, y: np.ndarray, choice: np.ndarray, starts: Sequence[np.ndarray],
              bounds: np.ndarray) -> np.ndarray:
    """Maximum-a-posteriori kernel hyperparameters: the best of an L-BFGS-B run from each start."""
    best_x, best_f = starts[0], math.inf
    for start in starts:
        x0 = np.clip(start, bounds[:, 0], bounds[:, 1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(_loss, x0, args=(X, y, choice), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 60, "ftol": 1e-6, "gtol": 1e-4})
        if np.isfinite(res.fun) and res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return np.asarray(best_x, float)


class Posterior:
    """The GP posterior with the kernel fixed (fantasy observations enter as ordinary rows)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, theta: np.ndarray, choice: np.ndarray) -> None:
        self.X, self.theta, self.choice = X, theta, choice
        self.amp, self.ls = math.exp(theta[0]), np.exp(theta[1:-1])
        self.noise = math.exp(theta[-1]) + _JITTER
        K = kernel(X, X, theta, choice)
        for extra in (0.0, 1e-6, 1e-4):  # a near-duplicate point can make K singular: add jitter and retry
            try:
                self.L = cholesky(K + (self.noise + extra) * np.eye(len(X)), lower=True, check_finite=False)
                break
            except LinAlgError:
                continue
        else:
            raise LinAlgError("kernel matrix is not positive definite")
        self.alpha = cho_solve((self.L, True), y, check_finite=False)

    def predict(self, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and latent variance at rows ``B``."""
        Kb = kernel(self.X, B, self.theta, self.choice)
        V = solve_triangular(self.L, Kb, lower=True, check_finite=False)
        return Kb.T @ self.alpha, np.maximum(self.amp - (V * V).sum(0), 1e-12)

    def predict_grad(self, B: np.ndarray, cols: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance, and their gradients in the (numeric) columns ``cols`` at rows ``B``."""
        Kb, dfac = _matern_of(_sqdist(self.X, B, self.ls, self.choice), self.amp)
        V = solve_triangular(self.L, Kb, lower=True, check_finite=False)
        w = solve_triangular(self.L, V, lower=True, trans="T", check_finite=False)  # K⁻¹ k(X, B)
        mu, var = Kb.T @ self.alpha, np.maximum(self.amp - (V * V).sum(0), 1e-12)
        inv_ls2 = 1.0 / self.ls[cols] ** 2
        Xc, Bc = self.X[:, cols], B[:, cols]

        def through(weights: np.ndarray) -> np.ndarray:  # Σ_i weights_ib · ∂k(X_i, B_b)/∂B_bc
            G = -weights * dfac
            return (G.sum(0)[:, None] * Bc - G.T @ Xc) * inv_ls2

        return mu, var, through(self.alpha[:, None]), -2.0 * through(w)
