"""The Sampler protocol every search algorithm implements, and the factory that picks one by name.

Samplers always MINIMISE: the study negates values when ``mode="max"``. A trial that failed, was invalid
(NaN, ±inf) or has no value is told as ``None``; each sampler documents what it does with those (none of them
lets a non-finite number reach a surrogate model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from nbautoml.space import Space

__all__ = ["SAMPLER_NAMES", "Observation", "Sampler", "make_sampler"]

Params = dict[str, Any]
Observation = tuple[Params, "float | None"]

SAMPLER_NAMES = ("bayes", "gp", "rf", "et", "random", "grid")


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


def make_sampler(sampler: str | Sampler, space: Space, seed: int | None = None, **options: Any) -> Sampler:
    """A sampler for ``space`` by name ("bayes" = "gp", "rf", "et", "random", "grid") or an instance as is."""
    if not isinstance(sampler, str):
        return sampler
    name = sampler.lower()
    if name in ("bayes", "gp", "rf", "et"):
        from nbautoml.engine.samplers.bayes import BayesSampler

        return BayesSampler(space, estimator="gp" if name == "bayes" else name, seed=seed, **options)
    if name == "random":
        from nbautoml.engine.samplers.random import RandomSampler

        return RandomSampler(space, seed=seed, **options)
    if name == "grid":
        from nbautoml.engine.samplers.grid import GridSampler

        return GridSampler(space, seed=seed, **options)
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLER_NAMES)}")
