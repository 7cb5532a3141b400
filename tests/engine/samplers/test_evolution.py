"""The evolutionary sampler: improves on random, rebuilt from history it asks the same, conditional and batch asks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nbautoml.engine.pareto import hypervolume, pareto_front
from nbautoml.engine.registry import make_sampler
from nbautoml.engine.samplers.base import point_key
from nbautoml.engine.samplers.evolution import EvolutionSampler
from nbautoml.engine.samplers.random import RandomSampler
from nbautoml.space import Choice, Int, Real, Space

SPHERE = Space({f"x{i}": Real(-5.0, 5.0) for i in range(4)})


def sphere(params: dict[str, float]) -> float:
    return sum((params[f"x{i}"] - 1.0) ** 2 for i in range(4))


def run(sampler: EvolutionSampler | RandomSampler, function, evals: int, batch: int = 1) -> list[float]:
    values: list[float] = []
    while len(values) < evals:
        points = sampler.ask(batch)
        for point in points:
            value = function(point)
            sampler.tell(point, value)
            values.append(value)
    return values


def test_single_objective_beats_random_search() -> None:
    evolved = [min(run(EvolutionSampler(SPHERE, seed=s), sphere, 150)) for s in range(5)]
    randomly = [min(run(RandomSampler(SPHERE, seed=s), sphere, 150)) for s in range(5)]
    assert np.median(evolved) < np.median(randomly) / 3


def zdt1(params: dict[str, float]) -> tuple[float, float]:
    x = np.array([params[f"x{i}"] for i in range(8)])
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    return float(x[0]), g * (1.0 - math.sqrt(x[0] / g))


def test_nsga2_beats_random_search_on_zdt1() -> None:
    space = Space({f"x{i}": Real(0.0, 1.0) for i in range(8)})

    def score(sampler: EvolutionSampler | RandomSampler) -> float:
        points: list[tuple[float, float]] = []
        while len(points) < 120:
            for params in sampler.ask(4):
                points.append(zdt1(params))
                sampler.tell(params, points[-1])
        return hypervolume([points[i] for i in pareto_front(points)], [11.0, 11.0])

    evolved = np.mean([score(EvolutionSampler(space, seed=s)) for s in range(4)])
    randomly = np.mean([score(RandomSampler(space, seed=s)) for s in range(4)])
    assert evolved > randomly


def test_rebuilt_from_the_history_it_asks_what_it_would_have_asked() -> None:
    live = EvolutionSampler(SPHERE, seed=3, population=6)
    told: list[tuple[dict[str, float], float]] = []
    for _ in range(20):
        point = live.ask()[0]
        told.append((point, sphere(point)))
        live.tell(*told[-1])
    reopened = EvolutionSampler(SPHERE, seed=3, population=6)
    reopened.tell_many(told)
    assert reopened.ask(3) == live.ask(3)


def test_batch_asks_and_pending_are_distinct() -> None:
    sampler = EvolutionSampler(Space(a=Int(0, 3), b=Choice(["x", "y"])), seed=0, population=4)
    first = sampler.ask(4)
    keys = {point_key(p) for p in first}
    assert len(keys) == 4
    for point in first[:2]:
        sampler.tell(point, float(point["a"]))
    second = sampler.ask(3, pending=first[2:])
    assert not keys & {point_key(p) for p in second}
    assert len({point_key(p) for p in second}) == 3


def test_failed_trials_are_not_parents_and_not_repeated() -> None:
    sampler = EvolutionSampler(Space(a=Int(0, 5)), seed=1, population=2)
    sampler.tell({"a": 0}, None)
    sampler.tell({"a": 1}, 1.0)
    sampler.tell({"a": 2}, 2.0)
    asked = sampler.ask(3)
    assert all(p["a"] not in (0, 1, 2) for p in asked)


def test_constraints_steer_the_elite_to_feasible_points() -> None:
    sampler = EvolutionSampler(Space(x=Real(0.0, 1.0)), seed=0, population=2)
    sampler.tell({"x": 0.1}, (0.1, 0.9), [0.5])  # best values, infeasible
    sampler.tell({"x": 0.6}, (0.6, 0.4), [-1.0])
    sampler.tell({"x": 0.8}, (0.8, 0.2), [0.0])
    elite, ranks, _ = sampler._ranked()
    assert [m.params["x"] for m in elite] == [0.6, 0.8]
    assert ranks.tolist() == [0, 0]


def test_conditional_space_children_hold_only_their_active_params() -> None:
    space = Space(
        family=Choice(["mlp", "cnn"]),
        units=Int(8, 64, when={"family": "mlp"}),
        kernel=Int(3, 7, when={"family": "cnn"}),
        lr=Real(1e-4, 1e-1, log=True),
    )
    sampler = EvolutionSampler(space, seed=0, population=6)
    for _ in range(60):
        for point in sampler.ask(2):
            assert space.contains(point), point
            expected = {"family", "lr", "units" if point["family"] == "mlp" else "kernel"}
            assert set(point) == expected
            sampler.tell(point, point["lr"] + (0.0 if point["family"] == "cnn" else 1.0))
    assert sum(p.params["family"] == "cnn" for p in sampler._ranked()[0]) >= 5


def test_options_are_checked_and_the_name_is_registered() -> None:
    with pytest.raises(ValueError, match="population"):
        EvolutionSampler(SPHERE, population=1)
    with pytest.raises(ValueError, match="crossover"):
        EvolutionSampler(SPHERE, crossover=2.0)
    assert isinstance(make_sampler("evolution", SPHERE, seed=0, population=8), EvolutionSampler)
    sampler = EvolutionSampler(SPHERE)
    sampler.tell({"x0": 0.0, "x1": 0.0, "x2": 0.0, "x3": 0.0}, (1.0, 2.0))
    with pytest.raises(ValueError, match="objective values"):
        sampler.tell({"x0": 1.0, "x1": 0.0, "x2": 0.0, "x3": 0.0}, 1.0)
