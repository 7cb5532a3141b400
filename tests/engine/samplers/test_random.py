"""RandomSampler: seeded determinism, bounds, log scale, pending/told exclusion, exhaustion of a finite space."""

from __future__ import annotations

import math
import statistics

from nbautoml.engine.registry import make_sampler
from nbautoml.engine.samplers.base import Sampler, point_key
from nbautoml.engine.samplers.random import RandomSampler, space_size
from nbautoml.space import Choice, Int, Real, Space

SPACE = Space(lr=Real(1e-5, 1e-1, log=True), units=Int(1, 8), drop=Real(0.0, 0.5), act=Choice(["relu", None, [1, 2]]))


def test_made_by_name_and_follows_the_protocol():
    sampler = make_sampler("random", SPACE, seed=1)
    assert isinstance(sampler, RandomSampler) and isinstance(sampler, Sampler)


def test_same_seed_same_points_and_a_different_seed_differs():
    first, again, other = RandomSampler(SPACE, seed=3), RandomSampler(SPACE, seed=3), RandomSampler(SPACE, seed=4)
    assert first.ask(20) == again.ask(20)
    assert first.ask(5) != other.ask(5)


def test_points_are_plain_values_inside_the_space():
    for point in RandomSampler(SPACE, seed=0).ask(300):
        assert SPACE.contains(point)
        assert type(point["lr"]) is float and type(point["drop"]) is float and type(point["units"]) is int
    units = {p["units"] for p in RandomSampler(SPACE, seed=1).ask(300)}
    assert units == set(range(1, 9))  # both Int bounds are reachable


def test_log_dimension_is_sampled_log_uniformly():
    values = [p["lr"] for p in RandomSampler(SPACE, seed=2).ask(2000)]
    geometric_mean = math.sqrt(1e-5 * 1e-1)  # 1e-3; a uniform draw's median would be about 0.05
    assert 0.5 * geometric_mean < statistics.median(values) < 2 * geometric_mean


def test_pending_and_told_points_are_not_repeated_and_a_finite_space_runs_out():
    space = Space(a=Int(0, 2), b=Choice([True, False]))
    assert space_size(space) == 6 and space_size(SPACE) == math.inf
    sampler = RandomSampler(space, seed=0)
    first = sampler.ask(2)
    sampler.tell(first[0], 1.0)
    rest = sampler.ask(10, pending=[first[1]])
    assert len(rest) == 4  # 6 points, one told, one pending
    keys = {point_key(p) for p in [*first, *rest]}
    assert len(keys) == 6
    sampler.tell_many([(p, None) for p in [first[1], *rest]])
    assert sampler.ask(3) == []
