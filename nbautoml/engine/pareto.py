"""Pareto dominance for several objectives: non-dominated sorting, the front, crowding, hypervolume, constraints.

Every function here takes objective vectors to MINIMISE (the study negates "max" objectives first, as it
does for one objective), as an ``(n, m)`` array-like. Constraint values follow the usual convention: a point
is feasible when every constraint value is <= 0, and its *violation* is the sum of the positive parts.

Constrained domination is NSGA-II's (Deb et al. 2002, also Optuna's ``constraints_func``): a feasible point
dominates every infeasible one; of two infeasible points the one with the smaller violation dominates; two
feasible points compare by plain Pareto dominance. So infeasible points are never on the front while any
feasible point exists, and :func:`pareto_front` leaves them out altogether.

Hypervolume: exact in 2-D by a sweep (O(n log n)); in more dimensions by the WFG algorithm (While, Bradstreet
and Barone 2012: the sum of exclusive hypervolumes, each computed on the points it limits, recursing down to the
2-D sweep). WFG is exact and fast for the small fronts a hyperparameter search has (tens to a few hundred
points, 3-5 objectives); it is exponential in the worst case, so it is not meant for thousands of points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "constrained_dominates",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "nondominated_sort",
    "pareto_front",
    "violation",
]

Points = NDArray[np.float64]


def _points(values: ArrayLike) -> Points:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array.reshape(-1, 1) if array.size else array.reshape(0, 1)
    if array.ndim != 2:
        raise ValueError(f"objective values must be an (n, m) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("objective values must be finite (failed trials have no vector: leave them out)")
    return array


def violation(constraints: ArrayLike | None, n: int) -> NDArray[np.float64]:
    """Per point, the sum of its constraint values above 0 (0.0 = feasible); zeros when there are none."""
    if constraints is None:
        return np.zeros(n)
    array = np.asarray(constraints, dtype=float)
    if array.ndim == 1:
        array = array.reshape(n, -1)
    if array.shape[0] != n:
        raise ValueError(f"{array.shape[0]} constraint rows for {n} points")
    if np.any(np.isnan(array)):
        raise ValueError("constraint values must not be NaN")
    return np.clip(array, 0.0, None).sum(axis=1)


def dominates(a: ArrayLike, b: ArrayLike) -> bool:
    """True when ``a`` is no worse than ``b`` in every objective and better in at least one (minimising)."""
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(first <= second) and np.any(first < second))


def constrained_dominates(a: ArrayLike, b: ArrayLike, violation_a: float, violation_b: float) -> bool:
    """NSGA-II's constrained domination (see the module docstring)."""
    if violation_a <= 0.0 and violation_b <= 0.0:
        return dominates(a, b)
    if violation_a <= 0.0:
        return True
    if violation_b <= 0.0:
        return False
    return violation_a < violation_b


def _domination_matrix(points: Points, violations: NDArray[np.float64]) -> NDArray[np.bool_]:
    """``m[i, j]`` is True when point i (constrained-)dominates point j."""
    no_worse = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    better = np.any(points[:, None, :] < points[None, :, :], axis=2)
    pareto = no_worse & better
    feasible = violations <= 0.0
    both_feasible = feasible[:, None] & feasible[None, :]
    only_i = feasible[:, None] & ~feasible[None, :]
    both_infeasible = ~feasible[:, None] & ~feasible[None, :]
    less_violation = violations[:, None] < violations[None, :]
    return (both_feasible & pareto) | only_i | (both_infeasible & less_violation)


def nondominated_sort(values: ArrayLike, constraints: ArrayLike | None = None) -> NDArray[np.int64]:
    """The front rank of each point: 0 for the non-dominated ones, 1 for those dominated only by rank 0, ...

    Deb's fast non-dominated sort over a domination matrix (O(m n^2) time and n^2 memory: fine for the
    hundreds of trials a study has). With ``constraints`` (an ``(n, k)`` array) domination is constrained.
    """
    points = _points(values)
    n = len(points)
    ranks = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return ranks
    dominated_by = _domination_matrix(points, violation(constraints, n))
    counts = dominated_by.sum(axis=0)  # how many points dominate each one
    current = np.flatnonzero(counts == 0)
    rank = 0
    while current.size:
        ranks[current] = rank
        counts = counts - dominated_by[current].sum(axis=0)
        counts[ranks >= 0] = -1  # already ranked: never picked again
        current = np.flatnonzero(counts == 0)
        rank += 1
    return ranks


def pareto_front(values: ArrayLike, constraints: ArrayLike | None = None) -> list[int]:
    """Indices of the feasible non-dominated points, in input order (infeasible points are never on it).

    Duplicated vectors are all kept: two trials with the same objective values are equally good.
    """
    points = _points(values)
    if len(points) == 0:
        return []
    feasible = violation(constraints, len(points)) <= 0.0
    ranks = nondominated_sort(points[feasible]) if feasible.any() else np.array([], dtype=np.int64)
    kept = np.flatnonzero(feasible)[ranks == 0]
    return [int(i) for i in kept]


def crowding_distance(values: ArrayLike) -> NDArray[np.float64]:
    """NSGA-II's crowding distance of each point within ONE front (inf at each objective's extremes).

    Larger is lonelier, so preferred when a front has to be cut. An objective on which all points agree adds
    nothing (rather than dividing by zero).
    """
    points = _points(values)
    n, m = points.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(points[:, k], kind="stable")
        column = points[order, k]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span <= 0:
            continue
        distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def _hv2d(points: Points, reference: NDArray[np.float64]) -> float:
    """Exact 2-D hypervolume: sweep in the first objective, adding the strip each new best second value adds."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    area, best_second = 0.0, float(reference[1])
    for first, second in points[order]:
        if second < best_second:
            area += (float(reference[0]) - float(first)) * (best_second - float(second))
            best_second = float(second)
    return area


def _nondominated(points: Points) -> Points:
    if len(points) <= 1:
        return points
    keep = nondominated_sort(points) == 0
    unique = np.unique(points[keep], axis=0)
    return unique


def _wfg(points: Points, reference: NDArray[np.float64]) -> float:
    """WFG: sum over points (sorted by the last objective, worst first) of each one's exclusive hypervolume."""
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 2:
        return _hv2d(points, reference)
    if len(points) == 1:
        return float(np.prod(reference - points[0]))
    order = np.argsort(-points[:, -1], kind="stable")
    points = points[order]
    total = 0.0
    for i in range(len(points)):
        inclusive = float(np.prod(reference - points[i]))
        limited = np.maximum(points[i + 1:], points[i])
        total += inclusive - _wfg(_nondominated(limited), reference)
    return total


def hypervolume(values: ArrayLike, reference: Sequence[float] | ArrayLike) -> float:
    """The volume dominated by ``values`` and bounded by ``reference`` (every objective minimised).

    Points not strictly better than the reference in every objective add nothing and are dropped.
    """
    points = _points(values)
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if len(points) == 0:
        return 0.0
    if points.shape[1] != ref.size:
        raise ValueError(f"reference has {ref.size} objectives, the points {points.shape[1]}")
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    if ref.size == 1:
        return float(ref[0] - points[:, 0].min())
    return _wfg(_nondominated(points), ref)
