"""Grid search: the Cartesian product of a few values per dimension, visited in a seeded shuffled order.

Values per dimension: a Real gets ``points`` evenly spaced values (log-spaced when ``log``), an Int all its
integers when there are at most ``points`` of them and otherwise ``points`` evenly (log-) spaced ones, a
Choice all its options. The order is shuffled because a grid search is often stopped early: a shuffled
prefix covers the space evenly, a lexicographic one would vary only the last dimension.

A point already told or pending is never proposed again. When the grid is used up, points that were handed
out but never told nor are pending (their trial was abandoned) are offered once more; after that ``ask``
returns fewer points than asked, finally none, which the study reads as "exhausted".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nbautoml.engine.samplers.base import Params, point_key
from nbautoml.engine.samplers.random import _RemembersTold
from nbautoml.space import Choice, Dimension, Int, Real, Space

__all__ = ["GridSampler"]

_PERMUTE_MAX = 1 << 20  # grids up to this size get a true random permutation; larger ones an affine one


def grid_values(dim: Dimension, points: int) -> list[Any]:
    """The values a dimension takes on the grid (plain Python ints, floats or the options themselves)."""
    if isinstance(dim, Choice):
        return list(dim.options)
    assert isinstance(dim, (Real, Int))
    low, high = float(dim.low), float(dim.high)
    if isinstance(dim, Int) and int(high) - int(low) + 1 <= points:
        return list(range(int(low), int(high) + 1))
    spaced = np.geomspace(low, high, points) if dim.log else np.linspace(low, high, points)
    spaced[0], spaced[-1] = low, high  # exact bounds, no rounding drift at the ends
    if isinstance(dim, Int):
        return sorted({round(float(v)) for v in spaced})
    return [float(v) for v in spaced]


class GridSampler(_RemembersTold):
    """Exhaustive search over a grid (see the module docstring); seeded, deterministic."""

    name = "grid"

    def __init__(self, space: Space, seed: int | None = None, points: int = 5) -> None:
        if not isinstance(points, int) or points < 2:
            raise ValueError(f"grid points must be an integer >= 2, got {points!r}")
        self.space, self.seed, self.points = space, seed, points
        self._names = list(space)
        self._axes = [grid_values(dim, points) for dim in space.values()]
        self.size = math.prod(len(axis) for axis in self._axes)
        rng = np.random.default_rng(seed)
        if self.size <= _PERMUTE_MAX:
            self._order: np.ndarray | None = rng.permutation(self.size)
            self._step, self._offset = 1, 0
        else:  # i -> (a*i + b) mod size with gcd(a, size) = 1: a bijection needing no memory
            self._order = None
            self._offset = int(rng.integers(self.size))
            self._step = int(rng.integers(1, self.size))
            while math.gcd(self._step, self.size) != 1:
                self._step += 1
        self._cursor = 0
        self._told: set[str] = set()
        self._issued: dict[str, Params] = {}

    def ask(self, n: int = 1, pending: Sequence[Params] = ()) -> list[Params]:
        seen = self._seen(pending)
        out: list[Params] = []
        while len(out) < n and self._cursor < self.size:
            point = self._point(self._cursor)
            self._cursor += 1
            key = point_key(point)
            if key not in seen:
                seen.add(key)
                self._issued[key] = point
                out.append(point)
        for key, point in self._issued.items():  # the grid is used up: abandoned points once more
            if len(out) >= n:
                break
            if key not in seen:
                seen.add(key)
                out.append(dict(point))
        return out

    def _point(self, position: int) -> Params:
        index = int(self._order[position]) if self._order is not None else (
            (self._step * position + self._offset) % self.size)
        point: Params = {}
        for name, axis in zip(reversed(self._names), reversed(self._axes), strict=True):
            index, digit = divmod(index, len(axis))
            point[name] = axis[digit]
        full = {name: point[name] for name in self._names}
        return self.space.project(full) or full  # conditional: only the active ones (repeats are skipped)

    def __repr__(self) -> str:
        return f"GridSampler(size={self.size}, visited={self._cursor}, seed={self.seed!r})"
