"""ParEGO (Knowles 2006): Bayesian optimisation of several objectives through random scalarisations.

Each ask draws a weight vector uniformly on the simplex, scales every objective to [0, 1] over the values told
so far, and gives the GP sampler (:mod:`.bayes`, unchanged) the augmented Chebyshev scalarisation
``max_j(w_j f_j) + 0.05 * sum_j(w_j f_j)`` of every told point; its expected-improvement ask is this ask. Over
many asks the random weights spread the points along the whole Pareto front, which one fixed weighted sum
cannot do for a concave front. An infeasible point's scalar is the worst feasible scalar plus its violation
(scaled like the objectives), so the model learns to leave infeasible regions while their values still
count. Failed points stay failed (the GP sampler's policy for None).

The weights and the inner sampler's seed come from (seed, number told, number pending), so a sampler rebuilt
from the journal asks what the uninterrupted one would have (the GP's hyperparameters are refitted per ask on
the new scalars: at a hyperparameter search's 100-200 points that costs tens of milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nbautoml.engine.pareto import violation
from nbautoml.engine.samplers.base import Params
from nbautoml.engine.samplers.bayes import BayesSampler
from nbautoml.engine.samplers.random import RandomSampler
from nbautoml.space import Space

__all__ = ["ParEGOSampler"]

_RHO = 0.05  # the augmentation weight Knowles uses


class ParEGOSampler:
    """Random Chebyshev scalarisations on the GP sampler; see the module docstring."""

    name = "parego"
    multi_objective = True

    def __init__(self, space: Space, seed: int | None = None, n_initial_points: int = 10, **bayes_options: Any) -> None:
        self.space, self.seed = space, seed
        self.n_initial_points = max(1, n_initial_points)
        self.bayes_options = {"background": False, **bayes_options}
        self._entropy = seed if seed is not None else int(np.random.SeedSequence().entropy % (2**63))  # type: ignore[operator]
        self._random = RandomSampler(space, seed=seed)
        self._points: list[Params] = []
        self._losses: list[tuple[float, ...] | None] = []
        self._violations: list[float] = []

    def tell(self, params: Params, value: float | Sequence[float] | None,
             constraints: Sequence[float] | None = None) -> None:
        point = self.space.project(params)
        if point is None:
            return
        self._random.tell(point, None)
        losses: tuple[float, ...] | None = None
        if value is not None:
            losses = (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
            if not all(math.isfinite(v) for v in losses):
                losses = None
        self._points.append(point)
        self._losses.append(losses)
        self._violations.append(float(violation([list(constraints)], 1)[0]) if constraints else 0.0)

    def tell_many(self, observations: Sequence[tuple[Any, ...]]) -> None:
        for observation in observations:
            self.tell(*observation)

    def ask(self, n: int = 1, pending: Sequence[Params] = ()) -> list[Params]:
        finite = [loss for loss in self._losses if loss is not None]
        if n < 1 or len(self._points) < self.n_initial_points or len(finite) < 2:
            return self._random.ask(n, pending=pending)
        rng = np.random.default_rng([self._entropy, len(self._points), len(pending)])
        inner = BayesSampler(self.space, "gp", seed=int(rng.integers(2**31 - 1)), n_initial_points=1,
                             **self.bayes_options)
        inner.tell_many(list(zip(self._points, self._scalars(rng), strict=True)))
        return inner.ask(n, pending=pending)

    def _scalars(self, rng: np.random.Generator) -> list[float | None]:
        values = np.array([loss for loss in self._losses if loss is not None], dtype=float)
        low, span = values.min(axis=0), np.maximum(values.max(axis=0) - values.min(axis=0), 1e-12)
        weights = rng.dirichlet(np.ones(values.shape[1]))
        scalars: list[float | None] = []
        for loss in self._losses:
            if loss is None:
                scalars.append(None)
                continue
            scaled = weights * (np.asarray(loss) - low) / span
            scalars.append(float(scaled.max() + _RHO * scaled.sum()))
        feasible = [s for s, v in zip(scalars, self._violations, strict=True) if s is not None and v <= 0.0]
        worst = max(feasible) if feasible else 1.0 + _RHO
        broken = [v for v in self._violations if v > 0.0]
        scale = max(broken) if broken else 1.0
        return [s if s is None or v <= 0.0 else worst + v / scale
                for s, v in zip(scalars, self._violations, strict=True)]

    def __repr__(self) -> str:
        return f"ParEGOSampler(told={len(self._points)}, seed={self.seed!r})"
