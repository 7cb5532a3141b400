"""GridSampler: grid values per dimension, seeded shuffled order, no repeats, exhaustion."""

from __future__ import annotations

import pytest

from nbautoml.engine.registry import make_sampler
from nbautoml.engine.samplers.base import point_key
from nbautoml.engine.samplers.grid import GridSampler, grid_values
from nbautoml.space import Choice, Int, Real, Space

SPACE = Space(lr=Real(1e-4, 1e-1, log=True), layers=Int(1, 3), units=Int(16, 512, log=True), act=Choice([None, "relu"]))


def test_values_per_dimension():
    assert grid_values(Real(0.0, 1.0), 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert grid_values(Real(1e-4, 1e-1, log=True), 4) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert grid_values(Int(1, 3), 5) == [1, 2, 3]  # few integers: all of them, bounds inclusive
    assert grid_values(Int(0, 100), 5) == [0, 25, 50, 75, 100]
    assert grid_values(Int(16, 512, log=True), 6) == [16, 32, 64, 128, 256, 512]
    assert grid_values(Choice([None, [1], False]), 2) == [None, [1], False]
    with pytest.raises(ValueError, match="points"):
        GridSampler(SPACE, points=1)


def test_covers_the_whole_grid_once_then_is_exhausted():
    sampler = make_sampler("grid", SPACE, seed=0, points=4)
    assert isinstance(sampler, GridSampler) and sampler.size == 4 * 3 * 4 * 2
    seen = []
    while batch := sampler.ask(7):
        seen += batch
        sampler.tell_many([(p, 1.0) for p in batch])
    assert len(seen) == sampler.size and len({point_key(p) for p in seen}) == sampler.size
    assert all(SPACE.contains(p) for p in seen)
    assert sampler.ask(1) == []


def test_order_is_seeded_and_shuffled():
    first, again, other = (GridSampler(SPACE, seed=s) for s in (1, 1, 2))
    assert first.ask(10) == again.ask(10)
    assert first.ask(10) != other.ask(10)
    prefix = GridSampler(SPACE, seed=3).ask(12)
    assert len({p["lr"] for p in prefix}) >= 3  # a lexicographic order would keep lr fixed for 60 points


def test_never_repeats_told_or_pending_and_reoffers_abandoned_points():
    space = Space(a=Int(0, 1), b=Choice(["x", "y"]))
    sampler = GridSampler(space, seed=0)
    told = {"a": 1, "b": "y"}
    sampler.tell(told, 0.5)  # told before it was handed out (a resumed study)
    handed = sampler.ask(2)
    assert told not in handed and len(handed) == 2
    last = sampler.ask(5, pending=handed)
    assert len(last) == 1 and last[0] not in handed
    sampler.tell(handed[0], 1.0)
    sampler.tell(last[0], 1.0)
    assert sampler.ask(5) == [handed[1]]  # handed out, never told, not pending: abandoned, so offered again
    assert sampler.ask(5, pending=[handed[1]]) == []


def test_a_huge_grid_needs_no_permutation_table():
    big = Space({f"x{i}": Real(0, 1) for i in range(10)})  # 5**10 points
    sampler = GridSampler(big, seed=0)
    points = sampler.ask(50)
    assert sampler.size == 5**10 and len({point_key(p) for p in points}) == 50
