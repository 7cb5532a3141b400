"""Pareto machinery on small cases worked out by hand, and hypervolume against an independent count."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nbautoml.engine.pareto import (
    constrained_dominates,
    crowding_distance,
    dominates,
    hypervolume,
    nondominated_sort,
    pareto_front,
    violation,
)


def test_dominates_needs_one_strict_improvement() -> None:
    assert dominates([1, 2], [2, 2])
    assert not dominates([1, 2], [1, 2])
    assert not dominates([1, 3], [2, 2])


def test_nondominated_sort_ranks_by_layers() -> None:
    values = [[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6], [2, 2]]
    assert nondominated_sort(values).tolist() == [0, 0, 0, 1, 2, 3, 0]
    assert pareto_front(values) == [0, 1, 2, 6]  # the duplicate of (2, 2) is kept: equally good


def test_constraints_keep_infeasible_points_off_the_front() -> None:
    values = [[0, 0], [1, 1], [2, 0.5], [3, 3]]
    constraints = [[1.0], [-1.0], [0.0], [2.0]]  # the first and the last are infeasible
    assert pareto_front(values, constraints) == [1, 2]
    ranks = nondominated_sort(values, constraints)
    assert ranks.tolist() == [1, 0, 0, 2]  # (0, 0) would dominate all but is infeasible: after the feasible;
    # (3, 3) violates more than (0, 0), so it comes after it
    assert pareto_front([[0, 0]], [[0.5]]) == []


def test_constrained_domination_rules() -> None:
    assert constrained_dominates([9, 9], [0, 0], 0.0, 0.1)
    assert not constrained_dominates([0, 0], [9, 9], 0.1, 0.0)
    assert constrained_dominates([9, 9], [0, 0], 0.1, 0.2)
    assert constrained_dominates([0, 0], [1, 1], 0.0, 0.0)
    assert violation([[-1.0, 2.0], [0.0, 0.0]], 2).tolist() == [2.0, 0.0]
    assert violation(None, 3).tolist() == [0.0, 0.0, 0.0]


def test_crowding_distance_of_a_line() -> None:
    distance = crowding_distance([[0, 4], [1, 3], [3, 1], [4, 0]])
    assert np.isinf(distance[0]) and np.isinf(distance[3])
    assert distance[1] == pytest.approx(3 / 4 + 3 / 4)
    assert distance[2] == pytest.approx(3 / 4 + 3 / 4)
    assert np.isinf(crowding_distance([[0, 1], [1, 0]])).all()
    assert crowding_distance([[1, 0], [1, 1], [1, 2]])[1] == pytest.approx(1.0)  # the constant axis adds 0


def test_hypervolume_2d_by_hand() -> None:
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(3 + 2 + 1)
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3]], [4, 4]) == pytest.approx(6)  # dominated adds 0
    assert hypervolume([[5, 0]], [4, 4]) == 0.0  # beyond the reference
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0
    with pytest.raises(ValueError, match="reference has 3"):
        hypervolume([[1, 1]], [2, 2, 2])


def _grid_volume(points: np.ndarray, reference: np.ndarray, cells: int) -> float:
    """Count grid cells (by their centres) dominated by some point: an independent check of the volume."""
    axes = [np.linspace(0, r, cells, endpoint=False) + r / cells / 2 for r in reference]
    hit = 0
    for centre in itertools.product(*axes):
        hit += bool(np.any(np.all(points <= np.asarray(centre), axis=1)))
    return hit * float(np.prod(reference)) / cells ** len(reference)


@pytest.mark.parametrize("dims", [3, 4])
def test_hypervolume_wfg_matches_a_grid_count(dims: int) -> None:
    rng = np.random.default_rng(dims)
    # points on a grid of 1/8 so that a 16-cell grid count is exact
    points = rng.integers(0, 8, size=(12, dims)) / 8.0
    reference = np.ones(dims)
    assert hypervolume(points, reference) == pytest.approx(_grid_volume(points, reference, 16))


def test_hypervolume_3d_box_union_by_hand() -> None:
    # boxes of 2*2*1 and 2*1*2 that overlap in 2*1*1
    points = [[0, 0, 1], [0, 1, 0]]
    assert hypervolume(points, [2, 2, 2]) == pytest.approx(4 + 4 - 2)


def test_bad_values_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="finite"):
        nondominated_sort([[1.0, float("nan")]])
    with pytest.raises(ValueError, match="constraint rows"):
        pareto_front([[1, 1], [2, 2]], [[0.0]])
