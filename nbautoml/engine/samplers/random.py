"""Random search: independent seeded draws from the space (log dimensions drawn log-uniformly)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from nbautoml.engine.samplers.base import Observation
from nbautoml.space import Space

__all__ = ["RandomSampler"]


class RandomSampler:
    name = "random"

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self.space = space
        self._rng = np.random.default_rng(seed)

    def ask(self, n: int = 1, pending: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        taken = {json.dumps(p, sort_keys=True) for p in pending}
        out: list[dict[str, Any]] = []
        for _ in range(100 * max(n, 1)):
            if len(out) >= n:
                break
            params = self.space.sample(self._rng)[0]
            key = json.dumps(params, sort_keys=True)
            if key not in taken:  # a tiny discrete space may run out of new points: repeats are then allowed
                taken.add(key)
                out.append(params)
        while len(out) < n:
            out.append(self.space.sample(self._rng)[0])
        return out

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        """Random search learns nothing from results."""

    def tell_many(self, observations: Sequence[Observation]) -> None:
        """Random search learns nothing from results."""
