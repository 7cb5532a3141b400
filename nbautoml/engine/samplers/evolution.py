"""Evolutionary search (``sampler="evolution"``): NSGA-II for several objectives, (mu+lambda) for one.

Steady state, fed only by what the study tells: the first ``population`` points are random; after that each
asked point is a child of two parents drawn by binary tournament from the *elite*, the best ``population``
of everything told so far (mu+lambda: parents and children compete alike). The elite is ranked by
constrained non-dominated sorting and crowding distance (:mod:`nbautoml.engine.pareto`) for several
objectives, by (violation, value) for one. So there is no generation counter to lose: a sampler rebuilt from
the journal (resume, a new kernel) has the same state, and because each ask's random stream is seeded from
(seed, number told, number pending), a resumed study asks what an uninterrupted one would have asked.

Operators work on each dimension scaled to [0, 1] (log dimensions on the log scale): simulated binary
crossover (SBX, eta 15) and polynomial mutation (eta 20, each dimension with probability 1/active dims),
the NSGA-II defaults that Optuna and pymoo also use; a Choice is inherited from either parent and mutated by a
fresh draw. Conditional spaces: the child is built dimension by dimension in space order and gets only the
parameters active under its own choices; a parameter neither parent had (it was inactive for both) is drawn
fresh. Points told or pending are never proposed again; when a small finite space is nearly covered the free
points come from random search's enumeration, and a covered space gives fewer points, finally none.

Values: a float (one objective) or a sequence of floats (several), every one to MINIMISE, None for a failed
trial (remembered so it is not repeated, never selected). ``constraints`` (a sequence, feasible when all
<= 0) may come with each tell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbautoml.engine.pareto import crowding_distance, nondominated_sort, violation
from nbautoml.engine.samplers.base import Params, point_key
from nbautoml.engine.samplers.random import RandomSampler
from nbautoml.space import Choice, Dimension, Int, Space, SpaceError

__all__ = ["EvolutionSampler"]

_RETRIES = 16  # children drawn before a repeated point is replaced by a random one


@dataclass
class _Member:
    params: Params
    values: tuple[float, ...]
    violation: float


def _unit(dim: Dimension, value: Any) -> float:
    low, high = float(dim.low), float(dim.high)  # type: ignore[attr-defined]
    if dim.log:  # type: ignore[attr-defined]
        return (math.log(float(value)) - math.log(low)) / (math.log(high) - math.log(low))
    return (float(value) - low) / (high - low)


def _from_unit(dim: Dimension, unit: float) -> Any:
    low, high = float(dim.low), float(dim.high)  # type: ignore[attr-defined]
    unit = min(max(unit, 0.0), 1.0)
    log = bool(dim.log)  # type: ignore[attr-defined]
    value = math.exp(math.log(low) + unit * (math.log(high) - math.log(low))) if log else low + unit * (high - low)
    if isinstance(dim, Int):
        return int(min(max(round(value), int(low)), int(high)))
    return float(min(max(value, low), high))


def _sbx(a: float, b: float, eta: float, rng: np.random.Generator) -> float:
    """One child of simulated binary crossover on [0, 1] (Deb & Agrawal's bounded form)."""
    if abs(a - b) < 1e-14:
        return a
    low, high = min(a, b), max(a, b)
    u = float(rng.random())
    children = []
    for bound in (low, 1.0 - high):
        beta = 1.0 + 2.0 * bound / (high - low)
        alpha = 2.0 - beta ** -(eta + 1.0)
        if u <= 1.0 / alpha:
            beta_q = (u * alpha) ** (1.0 / (eta + 1.0))
        else:
            beta_q = (1.0 / (2.0 - u * alpha)) ** (1.0 / (eta + 1.0))
        children.append(beta_q)
    first = 0.5 * (low + high - children[0] * (high - low))
    second = 0.5 * (low + high + children[1] * (high - low))
    return min(max(first if rng.random() < 0.5 else second, 0.0), 1.0)


def _polynomial(x: float, eta: float, rng: np.random.Generator) -> float:
    """Polynomial mutation on [0, 1] (Deb's bounded form)."""
    u = float(rng.random())
    power = 1.0 / (eta + 1.0)
    if u < 0.5:
        delta = (2.0 * u + (1.0 - 2.0 * u) * (1.0 - x) ** (eta + 1.0)) ** power - 1.0
    else:
        delta = 1.0 - (2.0 * (1.0 - u) + 2.0 * (u - 0.5) * x ** (eta + 1.0)) ** power
    return min(max(x + delta, 0.0), 1.0)


class EvolutionSampler:
    """NSGA-II (several objectives) / (mu+lambda) evolution (one); see the module docstring."""

    name = "evolution"
    multi_objective = True

    def __init__(
        self,
        space: Space,
        seed: int | None = None,
        *,
        population: int = 20,
        crossover: float = 0.9,
        mutation: float | None = None,
        eta_crossover: float = 15.0,
        eta_mutation: float = 20.0,
    ) -> None:
        if isinstance(population, bool) or not isinstance(population, int) or population < 2:
            raise ValueError(f"evolution: population must be an integer >= 2, got {population!r}")
        if not 0.0 <= crossover <= 1.0:
            raise ValueError(f"evolution: crossover must be a probability in [0, 1], got {crossover!r}")
        if mutation is not None and not 0.0 <= mutation <= 1.0:
            raise ValueError(f"evolution: mutation must be a probability in [0, 1] or None, got {mutation!r}")
        self.space = space
        self.seed = seed
        self.population = population
        self.crossover = crossover
        self.mutation = mutation
        self.eta_crossover = eta_crossover
        self.eta_mutation = eta_mutation
        self._entropy = seed if seed is not None else int(np.random.SeedSequence().entropy % (2**63))  # type: ignore[operator]
        self._members: list[_Member] = []
        self._told: set[str] = set()
        self._told_points: list[Params] = []
        self._fallback = RandomSampler(space, seed=seed)
        self._objectives: int | None = None
        self._elite: tuple[list[_Member], np.ndarray, np.ndarray] | None = None  # cached until the next tell

    # ---- telling ---------------------------------------------------------------------------------------
    def tell(self, params: Params, value: float | Sequence[float] | None,
             constraints: Sequence[float] | None = None) -> None:
        point = self.space.project(params)
        if point is None:
            return
        if point_key(point) not in self._told:
            self._told_points.append(point)
        self._told.add(point_key(point))
        if value is None:
            return
        values = (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
        if self._objectives is None:
            self._objectives = len(values)
        elif len(values) != self._objectives:
            raise ValueError(f"evolution: told {len(values)} objective values, earlier tells had {self._objectives}")
        if not all(math.isfinite(v) for v in values):
            return
        broken = float(violation([list(constraints)], 1)[0]) if constraints else 0.0
        self._members.append(_Member(point, values, broken))
        self._elite = None

    def tell_many(self, observations: Sequence[tuple[Any, ...]]) -> None:
        """``(params, value)`` or ``(params, value, constraints)`` tuples, in the order they finished."""
        for observation in observations:
            self.tell(*observation)

    # ---- selection -------------------------------------------------------------------------------------
    def _ranked(self) -> tuple[list[_Member], np.ndarray, np.ndarray]:
        """The elite (best ``population`` told points) with each one's rank and crowding (higher is better)."""
        members = self._members
        values = np.array([m.values for m in members], dtype=float)
        constraints = np.array([[m.violation] for m in members])
        if values.shape[1] == 1:
            order = np.lexsort((values[:, 0], constraints[:, 0]))[: self.population]
            ranks = np.empty(len(members), dtype=np.int64)
            ranks[order] = np.arange(len(order))
            return [members[i] for i in order], ranks[order], np.zeros(len(order))
        ranks = nondominated_sort(values, constraints)
        chosen: list[int] = []
        crowding = np.zeros(len(members))
        for rank in range(int(ranks.max()) + 1):
            front = np.flatnonzero(ranks == rank)
            crowding[front] = crowding_distance(values[front])
            room = self.population - len(chosen)
            if len(front) <= room:
                chosen.extend(front.tolist())
            else:
                by_crowding = front[np.argsort(-crowding[front], kind="stable")]
                chosen.extend(by_crowding[:room].tolist())
            if len(chosen) >= self.population:
                break
        picked = np.array(chosen)
        return [members[i] for i in picked], ranks[picked], crowding[picked]

    def _tournament(self, ranks: np.ndarray, crowding: np.ndarray, rng: np.random.Generator) -> int:
        a, b = (int(i) for i in rng.integers(len(ranks), size=2))
        if ranks[a] != ranks[b]:
            return a if ranks[a] < ranks[b] else b
        return a if crowding[a] >= crowding[b] else b

    # ---- asking ----------------------------------------------------------------------------------------
    def ask(self, n: int = 1, pending: Sequence[Params] = ()) -> list[Params]:
        seen = set(self._told)
        for params in pending:
            point = self.space.project(params)
            if point is not None:
                seen.add(point_key(point))
        rng = np.random.default_rng([self._entropy, len(self._told), len(pending)])
        out: list[Params] = []
        for _ in range(max(n, 0)):
            if len(seen) < self.population or len(self._members) < 2:
                child = self._random(seen, rng)
            else:
                child = self._offspring(seen, rng)
            if point_key(child) in seen:  # a crowded finite space: enumerate what is left
                free = self._fallback.ask(1, pending=[*self._told_points, *pending, *out])
                if not free:
                    break
                child = free[0]
            seen.add(point_key(child))
            out.append(child)
        return out

    def _random(self, seen: set[str], rng: np.random.Generator) -> Params:
        point = self.space.sample(rng)[0]
        for _ in range(_RETRIES):
            if point_key(point) not in seen:
                break
            point = self.space.sample(rng)[0]
        return point

    def _offspring(self, seen: set[str], rng: np.random.Generator) -> Params:
        if self._elite is None:
            self._elite = self._ranked()
        elite, ranks, crowding = self._elite
        for _ in range(_RETRIES):
            first = elite[self._tournament(ranks, crowding, rng)]
            second = elite[self._tournament(ranks, crowding, rng)]
            child = self._child(first.params, second.params, rng)
            if point_key(child) not in seen:
                return child
        return self._random(seen, rng)

    def _child(self, first: Params, second: Params, rng: np.random.Generator) -> Params:
        cross = rng.random() < self.crossover
        active = len(self.space.active_names(first)) or 1
        rate = self.mutation if self.mutation is not None else 1.0 / active
        child: Params = {}
        for name, dim in self.space.items():
            if not self.space.is_active(name, child):
                continue
            sources = [p[name] for p in (first, second) if name in p]
            if not sources:
                child[name] = dim.sample(rng)
                continue
            if isinstance(dim, Choice):
                value = sources[int(rng.integers(len(sources)))] if cross else sources[0]
                if rng.random() < rate:
                    value = dim.sample(rng)
            else:
                unit = _unit(dim, sources[0])
                if cross and len(sources) == 2:
                    unit = _sbx(unit, _unit(dim, sources[1]), self.eta_crossover, rng)
                if rng.random() < rate:
                    unit = _polynomial(unit, self.eta_mutation, rng)
                value = _from_unit(dim, unit)
            try:
                child[name] = dim.normalise(value)
            except SpaceError:
                child[name] = dim.sample(rng)
        return child

    def __repr__(self) -> str:
        return f"EvolutionSampler(told={len(self._told)}, population={self.population}, seed={self.seed!r})"
