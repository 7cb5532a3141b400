"""The Sampler protocol every search algorithm implements (:mod:`nbautoml.engine.registry` picks one by name).

Samplers always MINIMISE: the study negates values when ``mode="max"``. A trial that failed, was invalid
(NaN, ±inf) or has no value is told as ``None``; each sampler documents what it does with those (none of them
lets a non-finite number reach a surrogate model).

Several objectives: a sampler that sets ``multi_objective = True`` is told a tuple of losses (one per metric,
each to minimise) and the trial's constraint values, ``tell(params, value, constraints)`` (constraints None or
a list, feasible when all <= 0), and ``tell_many`` gets such triples. A study of several objectives refuses any
other sampler with a message that names the ones that take it, rather than scalarising behind the user's back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Observation", "Params", "Sampler", "point_key"]

Params = dict[str, Any]
Observation = tuple[Params, "float | None"]


def point_key(params: Mapping[str, Any]) -> str:
    """The one hashable identity of a point (Choice options may be lists, which do not hash): the same names
    with the same values give the same key, whatever their order."""
    return json.dumps(dict(params), sort_keys=True, default=str)


@runtime_checkable
class Sampler(Protocol):
    name: str

    def ask(self, n: int = 1, pending: Sequence[Params] = ()) -> list[Params]:
        """Up to ``n`` new points; ``pending`` are points being evaluated now (avoid proposing them again).

        Fewer than ``n`` (possibly none) means the sampler is exhausted (a finished grid).
        """
        ...

    def tell(self, params: Params, value: float | None) -> None:
        """One finished evaluation; ``value`` is to be minimised, None for failed / invalid."""
        ...

    def tell_many(self, observations: Sequence[Observation]) -> None:
        """Several at once (resuming a study): one model refit at the end, not one per point."""
        ...
