"""Bayesian optimisation behind the Sampler protocol: a lean Gaussian-process loop, or skopt's forests.

Why not ``skopt.Optimizer``: with gp_minimize's defaults one tell + ask costs 0.47 s at 50 trials, 2.3 s at 200
and 16.8 s at 500 on a 2-core machine (the kernel hyperparameters are re-optimised from three starts at every
tell, then 10 000 candidates and L-BFGS runs of three acquisition functions). The same model, built leaner
(bench/engine_overhead.py measures both, and the search quality):

* **Encoding**: one column per dimension: Real and Int scaled to [0, 1], on a log scale when ``log``; Int
  rounded back; a Choice is its option *index* (so None, bools and lists round-trip untouched), and the GP
  measures it with a Hamming distance (same option or not: no order among options). One column per dimension
  also leaves one cell per absent parameter, should conditional spaces need it.
* **"gp"**: amplitude × Matern-5/2 with a length scale per dimension, plus white noise, on standardised values,
  with Optuna GPSampler's weak priors on the hyperparameters (see :mod:`._gp`). The hyperparameters (MAP, an
  analytic gradient; L-BFGS-B from the last fit, the default and ``n_restarts`` random starts) are refitted at
  every ask after a tell while the history has at most ``refit_every`` (100) points, then only when it grew by
  ``refit_growth`` (10 %), on at most ``max_fit_points`` random points; every ask still conditions on *every*
  told point. **"rf" / "et"**: skopt's forests, refit per ask.
* **Acquisition**: log expected improvement (margin ``xi``, 0 by default: on standardised values the old 0.01
  cost Branin two orders of magnitude) over ``n_candidates`` random points plus steps around the five best;
  the ``n_starts`` best candidates and the best point told then start a local search (:mod:`._acquisition`:
  L-BFGS-B on the numbers, value-by-value sweeps over Choices and small Ints), a third of the starts past
  ``refit_every`` points. bench/quality_functions.py measures what each piece gave against Optuna's GPSampler
  and gp_minimize. The first ``n_initial_points`` are random (RandomSampler).
* **Batches and pending trials**: kriging believer: each pending or already-chosen point joins the data at the
  best value seen (no refit), then EI is maximised again. A point told, pending or chosen is never proposed
  again; a finite space fully covered gives fewer points, finally none.
* **Failed values** (None, NaN, ±inf) never reach a surrogate: a failed point is modelled as the *worst finite
  value seen so far* (recomputed at every fit), so the search steers away from regions that crash; while no
  finite value exists they are held (the search stays random) and enter the model once one does.
* **Background refit** (``background=True``): the hyperparameter fit runs in a thread started after an ask, i.e.
  while the next trial runs; later asks use the newest finished fit, so the kernel may lag the history by a
  refit period (the posterior never does). Asks then depend on timing, so the default is synchronous when a
  ``seed`` is given (same seed + same tells → same asks) and background when it is not.
* numpy's BLAS runs on one thread while a sampler works: these matrices are small, and spinning BLAS threads
  next to a running trial (or on a loaded machine) made the same work 5-10× slower.

The GP maths (kernel, likelihood, posterior) are in :mod:`._gp`, EI and its optimiser in :mod:`._acquisition`;
this module encodes spaces and asks.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError
from skopt import space as sk_space
from skopt.learning import ExtraTreesRegressor, RandomForestRegressor

from nbautoml.engine.samplers._acquisition import local_search, log_ei
from nbautoml.engine.samplers._encoding import Encoder
from nbautoml.engine.samplers._gp import Posterior, default_theta, fit_theta, one_blas_thread, theta_bounds
from nbautoml.engine.samplers.base import Observation, Params
from nbautoml.engine.samplers.random import RandomSampler
from nbautoml.space import Choice, Int, Real, Space

__all__ = ["BayesSampler", "to_skopt_dimensions"]

log = logging.getLogger(__name__)
ESTIMATORS = ("gp", "rf", "et")


def to_skopt_dimensions(space: Space) -> list[sk_space.Dimension]:
    """The skopt dimensions for ``space`` (Choice → Categorical over option indices); used by the benchmarks."""
    out: list[sk_space.Dimension] = []
    for name, dim in space.items():
        if isinstance(dim, Real):
            prior = "log-uniform" if dim.log else "uniform"
            out.append(sk_space.Real(float(dim.low), float(dim.high), prior=prior, name=name))
        elif isinstance(dim, Int):
            prior = "log-uniform" if dim.log else "uniform"
            out.append(sk_space.Integer(int(dim.low), int(dim.high), prior=prior, name=name))
        else:
            assert isinstance(dim, Choice)
            out.append(sk_space.Categorical(list(range(len(dim.options))), name=name))
    return out


_FitInputs = tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]


def _key(row: np.ndarray) -> bytes:
    """Identity of an encoded row (rounded, so a decoded-and-re-encoded point has the same key)."""
    return (np.round(row, 10) + 0.0).tobytes()  # + 0.0 turns -0.0 into 0.0


def _forest_predict(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over the trees (skopt's law-of-total-variance std, in one pass per tree)."""
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    total, second = np.zeros(len(X)), np.zeros(len(X))
    for est in model.estimators_:
        leaves = est.tree_.apply(X32)
        mean = est.tree_.value[leaves, 0, 0]
        total += mean
        second += np.maximum(est.tree_.impurity[leaves], 0.0) + mean * mean
    count = len(model.estimators_)
    mu = total / count
    return mu, np.maximum(second / count - mu * mu, 1e-12)


class BayesSampler:
    """Model-based search: the first ``n_initial_points`` random, then EI on a GP ("gp") or forest ("rf", "et").

    Options (``Study(sampler_options=...)``): ``n_candidates`` random candidates per ask (plus local ones),
    ``n_starts`` local searches from the best of them, ``xi`` EI's exploration margin (in standard deviations
    of the values), ``refit_every``, ``refit_growth`` and ``max_fit_points`` for the GP's hyperparameter
    refits, ``n_restarts`` random L-BFGS starts per refit,
    ``n_estimators`` trees per forest, ``background`` (see the module docstring).
    """

    def __init__(self, space: Space, estimator: str = "gp", seed: int | None = None, n_initial_points: int = 10,
                 *, n_candidates: int = 1000, xi: float = 0.0, refit_every: int = 100, refit_growth: float = 0.1,
                 max_fit_points: int = 200, n_restarts: int = 1, n_starts: int = 10, n_estimators: int = 32,
                 background: bool | None = None) -> None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        self.name = self.estimator = estimator
        self.space, self.seed = space, seed
        self.n_initial_points, self.n_candidates = max(1, n_initial_points), max(10, n_candidates)
        self.xi, self.refit_every, self.refit_growth = xi, refit_every, refit_growth
        self.max_fit_points, self.n_restarts, self.n_starts = max_fit_points, n_restarts, n_starts
        self.n_estimators = n_estimators
        self.background = seed is None if background is None else background
        self._enc = Encoder(space)
        self._lattice = self._enc.lattice()
        streams = np.random.SeedSequence(seed).spawn(3)
        self._rng, self._fit_rng = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
        self._random = RandomSampler(space, None if seed is None else int(streams[2].generate_state(1)[0]))
        self._rows: list[np.ndarray] = []
        self._values: list[float] = []  # nan for failed
        self._seen: set[bytes] = set()
        self._lock = threading.RLock()
        self._theta: np.ndarray | None = None
        self._theta_n = 0  # history size the kernel was fitted at
        self._ready: tuple[np.ndarray, int] | None = None  # a finished background fit
        self._job: threading.Thread | None = None

    def tell(self, params: Params, value: float | None) -> None:
        self.tell_many([(params, value)])

    def tell_many(self, observations: Sequence[Observation]) -> None:
        """Record points (the model is refitted lazily, once, at the next ask); points outside the space are skipped."""
        with self._lock:
            for params, value in observations:
                point = self.space.project(params)
                if point is None:
                    continue
                row = self._enc.encode([point])[0]
                number = math.nan if value is None else float(value)
                self._rows.append(row)
                self._values.append(number if math.isfinite(number) else math.nan)
                self._seen.add(_key(row))
                self._random.tell(point, value)

    def ask(self, n: int = 1, pending: Sequence[Params] = ()) -> list[Params]:
        with self._lock, one_blas_thread():
            projected = [p for p in (self.space.project(q) for q in pending) if p is not None]
            finite = int(np.isfinite(self._values).sum()) if self._values else 0
            if n < 1 or len(self._rows) < self.n_initial_points or finite < 2:
                return self._random.ask(n, pending=projected)
            rows = self._enc.encode(projected) if projected else np.zeros((0, self._enc.width))
            seen = self._seen | {_key(row) for row in rows}
            try:
                asked = self._ask_gp(n, rows, seen) if self.estimator == "gp" else self._ask_forest(n, rows, seen)
            except (LinAlgError, ValueError) as error:  # a degenerate history must not stop the search
                log.warning("%s sampler: model failed (%s); this ask is random", self.estimator, error)
                asked = []
            out = self._enc.decode(np.array(asked)) if asked else []
            if len(out) < n:  # every candidate was taken (a small discrete space): random unseen points
                out += self._random.ask(n - len(out), pending=[*projected, *out])
            return out

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background refit has finished (its kernel is used from the next ask on)."""
        job = self._job
        if job is not None:
            job.join(timeout)

    def __repr__(self) -> str:
        return f"BayesSampler({self.estimator!r}, told={len(self._rows)}, seed={self.seed!r})"

    # -- the model ----------------------------------------------------------------------------------------
    def _training(self) -> tuple[np.ndarray, np.ndarray]:
        """Told rows and standardised values; failed ones at the worst finite value (the module's policy)."""
        X, y = np.array(self._rows), np.array(self._values)
        y = np.where(np.isnan(y), np.nanmax(y), y)
        return X, (y - y.mean()) / max(float(y.std()), 1e-12)

    def _pool(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Random candidates plus steps of 0.1 around the five best points."""
        centres = X[np.argsort(y, kind="stable")[:5]]
        return np.vstack([self._enc.random(self._rng, self.n_candidates),
                          self._enc.perturb(self._rng, centres, self.n_candidates // 20, 0.1)])

    @staticmethod
    def _choose(pool: np.ndarray, score: np.ndarray, seen: set[bytes]) -> int | None:
        """The best-scoring row not in ``seen`` (then added to it); None when every row was seen."""
        for i in np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable"):
            key = _key(pool[i])
            if key not in seen:
                seen.add(key)
                return int(i)
        return None

    def _ask_gp(self, n: int, pending: np.ndarray, seen: set[bytes]) -> list[np.ndarray]:
        """Kriging believer: each pending or chosen row joins the data at the best value, then EI again."""
        X, y = self._training()
        theta, refit = self._kernel(X, y)
        best = float(y.min()) - self.xi
        pool = self._pool(X, y)
        incumbent = X[np.argmin(y)][None, :]
        data_X, data_y = np.vstack([X, pending]), np.concatenate([y, np.full(len(pending), float(y.min()))])
        # past refit_every points a local search costs more (O(n²) a step): a third of the starts
        starts = self.n_starts if len(X) <= self.refit_every else max(2, self.n_starts // 3)
        rows: list[np.ndarray] = []
        for _ in range(n):
            post = Posterior(data_X, data_y, theta, self._enc.choice)
            score = log_ei(*post.predict(pool), best)
            top = np.argsort(-score, kind="stable")[:starts]
            found, found_score = local_search(post, np.vstack([pool[top], incumbent]), best, self._lattice,
                                              self._enc.snap)
            i = self._choose(cand := np.vstack([found, pool]), np.concatenate([found_score, score]), seen)
            if i is None:
                break
            rows.append(cand[i])
            data_X, data_y = np.vstack([data_X, cand[i]]), np.append(data_y, float(y.min()))
        if refit is not None:
            self._launch(*refit)
        return rows

    def _ask_forest(self, n: int, pending: np.ndarray, seen: set[bytes]) -> list[np.ndarray]:
        X, y = self._training()
        best, pool = float(y.min()), self._pool(X, y)
        X, y = np.vstack([X, pending]), np.concatenate([y, np.full(len(pending), best)])
        forest = RandomForestRegressor if self.estimator == "rf" else ExtraTreesRegressor
        rows: list[np.ndarray] = []
        for _ in range(n):  # constant liar: refit with each chosen point told at the best value
            model = forest(n_estimators=self.n_estimators, min_samples_leaf=3,
                           random_state=int(self._rng.integers(2**31 - 1)))
            model.fit(X, y)
            i = self._choose(pool, log_ei(*_forest_predict(model, pool), best - self.xi), seen)
            if i is None:
                break
            rows.append(pool[i])
            X, y = np.vstack([X, pool[i]]), np.append(y, best)
        return rows

    # -- kernel hyperparameters ---------------------------------------------------------------------------
    def _kernel(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, _FitInputs | None]:
        """The kernel for this ask, and the inputs of a background refit to start after it (or None)."""
        ready = self._ready  # the worker writes it once, only while no ask has cleared it: no lost result
        if ready is not None:
            self._ready = None
            self._theta, self._theta_n = ready
        growth = 1 if len(X) <= self.refit_every else max(1, math.ceil(self.refit_growth * self._theta_n))
        due = self._theta is None or len(X) >= self._theta_n + growth
        if self._theta is not None and not due:
            return self._theta, None
        inputs = self._fit_inputs(X, y)
        if self._theta is None or not self.background:
            self._theta, self._theta_n = fit_theta(*inputs), len(X)
            return self._theta, None
        busy = self._job is not None and self._job.is_alive()
        return self._theta, None if busy else inputs

    def _fit_inputs(self, X: np.ndarray, y: np.ndarray) -> _FitInputs:
        """A bounded random subset of the history, and the L-BFGS starts: the last fit, the default, random."""
        if len(X) > self.max_fit_points:
            keep = np.sort(self._fit_rng.choice(len(X), self.max_fit_points, replace=False))
            X, y = X[keep], (y[keep] - y[keep].mean()) / max(float(y[keep].std()), 1e-12)
        bounds = theta_bounds(self._enc.width)
        starts = [] if self._theta is None else [self._theta]
        starts.append(default_theta(X.shape[1]))
        starts += [self._fit_rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.n_restarts)]
        return X, y, self._enc.choice, starts, bounds

    def _launch(self, X: np.ndarray, y: np.ndarray, choice: np.ndarray, starts: list[np.ndarray],
                bounds: np.ndarray) -> None:
        size = len(self._rows)

        def work() -> None:
            with one_blas_thread():
                # one assignment: the next ask picks it up
                self._ready = (fit_theta(X, y, choice, starts, bounds), size)

        self._job = threading.Thread(target=work, name="nbautoml-gp-refit", daemon=True)
        self._job.start()
