"""Random search: independent draws from the space (log-uniform for log dimensions), seeded.

It is the baseline every model-based sampler has to beat, and the sampler of choice for very cheap
objectives. A point already told or pending is drawn again rather than repeated (in a continuous space that
never happens; in a small discrete one it would waste trials), and a finite space that is fully covered
returns fewer points than asked, finally none, which the study reads as "exhausted".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nbautoml.engine.samplers.base import Observation, Params, point_key
from nbautoml.space import Choice, Int, Space

__all__ = ["RandomSampler", "space_size"]

_ATTEMPTS = 64  # draws per point before a finite space is enumerated instead


def space_size(space: Space) -> float:
    """How many distinct points ``space`` has (inf when it has a Real dimension)."""
    size = 1
    for dim in space.values():
        if isinstance(dim, Choice):
            size *= len(dim.options)
        elif isinstance(dim, Int):
            size *= int(dim.high) - int(dim.low) + 1
        else:
            return math.inf
    return size


class _RemembersTold:
    """Samplers that learn nothing from values but never repeat a point already told."""

    space: Space
    _told: set[str]

    multi_objective = True  # values are never read, so any number of objectives will do

    def tell(self, params: Params, value: Any, constraints: Sequence[float] | None = None) -> None:
        point = self.space.project(params)
        if point is not None:
            self._told.add(point_key(point))

    def tell_many(self, observations: Sequence[Observation] | Sequence[tuple[Any, ...]]) -> None:
        for observation in observations:
            self.tell(*observation)

    def _seen(self, pending: Sequence[Params]) -> set[str]:
        """Keys of the points told or pending (inside the space): none of them is proposed again."""
        seen = set(self._told)
        for params in pending:
            point = self.space.project(params)
            if point is not None:
                seen.add(point_key(point))
        return seen


class RandomSampler(_RemembersTold):
    """Uniform random points; the same seed and the same tells give the same asks."""

    name = "random"

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self.space = space
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._told: set[str] = set()
        self._size = space_size(space)

    def ask(self, n: int = 1, pending: Sequence[Params] = ()) -> list[Params]:
        seen = self._seen(pending)
        out: list[Params] = []
        for _ in range(max(n, 0)):
            if len(seen) >= self._size:
                break
            point = self._draw(seen)
            if point is None:
                break
            seen.add(point_key(point))
            out.append(point)
        return out


    def _draw(self, seen: set[str]) -> Params | None:
        for _ in range(_ATTEMPTS):
            point = self.space.sample(self._rng)[0]
            if point_key(point) not in seen:
                return point
        if self._size > 1_000_000:  # a huge finite space this crowded: give up rather than enumerate it
            return None
        names = list(self.space)
        axes = [
            dim.options if isinstance(dim, Choice) else range(int(dim.low), int(dim.high) + 1)  # type: ignore[attr-defined]
            for dim in self.space.values()
        ]
        free = [p for p in (dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes))
                if point_key(p) not in seen]
        return free[int(self._rng.integers(len(free)))] if free else None

    def __repr__(self) -> str:
        return f"RandomSampler(told={len(self._told)}, seed={self.seed!r})"

