"""Expected improvement in log form, and its maximisation: best candidates, then a mixed local search.

What Optuna's GPSampler does and the earlier sampling-only optimiser lacked: EI's optimum is sharp once the
model is sure, and random candidates land near it only by luck. So the best candidates (and the best point
told) start a local search that alternates L-BFGS-B over the numeric columns (all starts in one problem,
preconditioned by the length scales) with an exhaustive pass over each discrete column's values (a Choice's
options, an Int's integers when there are at most ``MAX_GRID``). Log EI keeps gradients alive far from the
incumbent, where plain EI underflows to zero.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr, ndtr

from nbautoml.engine.samplers._gp import Posterior

__all__ = ["MAX_GRID", "Lattice", "local_search", "log_ei", "log_ei_and_grad"]

MAX_GRID = 32  # an Int with more values is searched as a number and rounded
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Lattice:
    """Where each encoded column may move: ``numeric`` columns are searched by L-BFGS-B in [0, 1]; each of
    ``grids`` is (column, its allowed encoded values), searched exhaustively."""

    numeric: np.ndarray
    grids: tuple[tuple[int, np.ndarray], ...]


def _log_h(z: np.ndarray) -> np.ndarray:
    """log(z·Φ(z) + φ(z)), stable for very negative z (Ament et al. 2023, as Optuna's ``standard_logei``)."""
    out = np.empty_like(z)
    big = z > -25.0
    zb = z[big]
    out[big] = np.log(zb * ndtr(zb) + np.exp(-0.5 * zb * zb - _LOG_SQRT_2PI))
    zs = z[~big]
    out[~big] = -0.5 * zs * zs - _LOG_SQRT_2PI + np.log1p(zs * math.sqrt(math.pi / 2) * erfcx(-zs / math.sqrt(2)))
    return out


def log_ei(mu: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """log E[max(best - f, 0)] for f ~ N(mu, var) (we minimise)."""
    sd = np.sqrt(var)
    return np.log(sd) + _log_h((best - mu) / sd)


def log_ei_and_grad(mu: np.ndarray, var: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log EI and its derivatives in ``mu`` and ``var``: d/dz log h = Φ/h, and φ/h = 1 - z·Φ/h."""
    sd = np.sqrt(var)
    z = (best - mu) / sd
    log_h = _log_h(z)
    ratio = np.exp(log_ndtr(z) - log_h)  # Φ(z) / h(z)
    return np.log(sd) + log_h, -ratio / sd, (1.0 - z * ratio) / (2.0 * var)


def _polish_numeric(post: Posterior, rows: np.ndarray, best: float, cols: np.ndarray,
                    maxiter: int) -> np.ndarray:
    """L-BFGS-B on the numeric columns of every row at once (the sum of their -log EI separates)."""
    scale = post.ls[cols]  # search z = x / l: every direction equally curved
    fixed = rows.copy()

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        fixed[:, cols] = z.reshape(len(rows), len(cols)) * scale
        mu, var, dmu, dvar = post.predict_grad(fixed, cols)
        value, d_mu, d_var = log_ei_and_grad(mu, var, best)
        grad = (d_mu[:, None] * dmu + d_var[:, None] * dvar) * scale
        return -float(value.sum()), -grad.ravel()

    bounds = [(0.0, 1.0 / s) for s in scale] * len(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = minimize(objective, (rows[:, cols] / scale).ravel(), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": maxiter, "gtol": 1e-6})
    out = rows.copy()
    out[:, cols] = np.clip(res.x.reshape(len(rows), len(cols)) * scale, 0.0, 1.0)
    return out


def _sweep_grid(post: Posterior, rows: np.ndarray, score: np.ndarray, best: float, col: int,
                values: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Each row's ``col`` set to the value of highest log EI (kept when none beats the current one)."""
    trial = np.repeat(rows, len(values), axis=0)
    trial[:, col] = np.tile(values, len(rows))
    scores = log_ei(*post.predict(trial), best).reshape(len(rows), len(values))
    pick = np.argmax(scores, axis=1)
    better = scores[np.arange(len(rows)), pick] > score + 1e-12
    rows, score = rows.copy(), score.copy()
    rows[better, col] = values[pick[better]]
    score[better] = scores[better, pick[better]]
    return rows, score, bool(better.any())


def local_search(post: Posterior, starts: np.ndarray, best: float, lattice: Lattice,
                 snap: Callable[[np.ndarray], np.ndarray], rounds: int = 4, maxiter: int = 50
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows reached from ``starts`` and their log EI; never worse than a start (snapped to the lattice)."""
    rows = snap(starts)
    score = log_ei(*post.predict(rows), best)
    for _ in range(rounds):
        moved = False
        if len(lattice.numeric):
            polished = snap(_polish_numeric(post, rows, best, lattice.numeric, maxiter))
            new = log_ei(*post.predict(polished), best)
            better = new > score + 1e-12
            rows[better], score[better] = polished[better], new[better]
            moved = bool(better.any())
        for col, values in lattice.grids:
            rows, score, changed = _sweep_grid(post, rows, score, best, col, values)
            moved = moved or changed
        if not moved or not lattice.grids:
            break
    return rows, score
