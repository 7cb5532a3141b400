"""BayesSampler: determinism, the space's bounds and types, failed values, pending points, batches, refits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from nbautoml.engine.registry import make_sampler
from nbautoml.engine.samplers import bayes
from nbautoml.engine.samplers._encoding import Encoder
from nbautoml.engine.samplers.base import Sampler, point_key
from nbautoml.engine.samplers.bayes import BayesSampler, to_skopt_dimensions
from nbautoml.engine.samplers.random import RandomSampler
from nbautoml.space import Choice, Int, Real, Space

LETTERS = {"a": 0.6, "b": 0.0, "c": 1.0}
SPACE = Space(x=Real(0.0, 1.0), lr=Real(1e-5, 1e-1, log=True), k=Int(1, 12), c=Choice(list(LETTERS)))
ODD = [None, True, False, 0, [1, 2], {"deep": [None]}]


def bowl(p: dict[str, Any]) -> float:
    """Minimum 0 at x=0.3, lr=1e-3, k=7, c="b"."""
    return (p["x"] - 0.3) ** 2 + ((math.log10(p["lr"]) + 3) / 4) ** 2 + ((p["k"] - 7) / 11) ** 2 + LETTERS[p["c"]]


def run(sampler: Sampler, objective: Any = bowl, budget: int = 20) -> list[tuple[dict[str, Any], float]]:
    out = []
    for _ in range(budget):
        params = sampler.ask(1)[0]
        value = objective(params)
        sampler.tell(params, value)
        out.append((params, value))
    return out


@pytest.mark.parametrize("name, estimator", [("bayes", "gp"), ("gp", "gp"), ("rf", "rf"), ("et", "et")])
def test_made_by_name(name, estimator):
    sampler = make_sampler(name, SPACE, seed=0)
    assert isinstance(sampler, BayesSampler) and isinstance(sampler, Sampler) and sampler.estimator == estimator
    with pytest.raises(ValueError, match="estimator"):
        BayesSampler(SPACE, estimator="gbrt")


@pytest.mark.parametrize("estimator", ["gp", "et"])
def test_same_seed_and_tells_give_the_same_asks(estimator):
    first = run(BayesSampler(SPACE, estimator, seed=5, n_initial_points=4), budget=12)
    again = run(BayesSampler(SPACE, estimator, seed=5, n_initial_points=4), budget=12)
    other = run(BayesSampler(SPACE, estimator, seed=6, n_initial_points=4), budget=12)
    assert first == again and first != other


def test_default_refit_is_synchronous_with_a_seed_and_background_without():
    assert BayesSampler(SPACE, seed=1).background is False
    assert BayesSampler(SPACE).background is True


@pytest.mark.parametrize("estimator", ["gp", "rf", "et"])
def test_model_points_are_plain_values_inside_the_space(estimator):
    space = Space(lr=Real(1e-4, 1.0, log=True), units=Int(2, 9, log=True), n=Int(0, 3), odd=Choice(ODD))
    sampler = BayesSampler(space, estimator, seed=0, n_initial_points=5)
    told = run(sampler, lambda p: math.log10(p["lr"]) ** 2 + p["n"] + ODD.index(p["odd"]), budget=12)
    points = [p for p, _ in told] + sampler.ask(6)
    for p in points:
        assert space.contains(p)
        assert type(p["lr"]) is float and type(p["units"]) is int and type(p["n"]) is int
        assert any(p["odd"] is option for option in ODD)  # the option object itself, not a copy
    assert {p["n"] for p in points} >= {0, 3} or len({p["n"] for p in points}) >= 3


def test_odd_choice_options_round_trip_through_the_encoding():
    space = Space(odd=Choice(ODD), flag=Choice([True, False]), only=Choice(["x"]))
    encoder = Encoder(space)
    points = [{"odd": o, "flag": f, "only": "x"} for o in ODD for f in (True, False)]
    assert encoder.decode(encoder.encode(points)) == points
    assert encoder.width == 3 and list(encoder.choice) == [True] * 3  # one column per dimension: the index
    assert list(encoder.encode(points[:2])[:, 0]) == [0.0, 0.0] and encoder.encode(points[2:3])[0, 0] == 1.0


def test_numeric_encoding_matches_skopts_transforms():
    from skopt.space import Space as SkSpace
    from skopt.utils import normalize_dimensions

    d, e = Choice(["p", "q", "r"]), Choice([None, [1]])
    space = Space(a=Real(1e-4, 1.0, log=True), b=Int(1, 64, log=True), c=Int(0, 10), d=d, e=e)
    points = RandomSampler(space, seed=0).ask(20)
    ours = Encoder(space).encode(points)
    sk_space = SkSpace(normalize_dimensions(to_skopt_dimensions(space)))
    rows = [[p["a"], p["b"], p["c"], d.index(p["d"]), e.index(p["e"])] for p in points]
    assert np.allclose(ours[:, :3], sk_space.transform(rows)[:, :3])  # skopt one-hot encodes the Choices
    assert np.array_equal(ours[:, 3:], np.array(rows, float)[:, 3:])  # ours: the option index (Hamming kernel)


def test_the_lattice_searches_choices_and_small_ints_by_value():
    space = Space(a=Real(0.0, 1.0), b=Int(0, 3), c=Int(0, 1000), d=Choice(["p", "q", "r"]), e=Choice(["x"]))
    lattice = Encoder(space).lattice()
    assert list(lattice.numeric) == [0, 2]  # a Real, and an Int too wide to search value by value
    grids = dict(lattice.grids)
    assert sorted(grids) == [1, 3] and np.allclose(grids[1], [0, 1 / 3, 2 / 3, 1]) and list(grids[3]) == [0, 1, 2]


def test_log_dimension_is_explored_log_uniformly_at_first():
    space = Space(lr=Real(1e-6, 1.0, log=True))
    sampler = BayesSampler(space, seed=0, n_initial_points=400)
    median = float(np.median([p["lr"] for p in sampler.ask(400)]))
    assert 1e-4 < median < 1e-2  # geometric mean 1e-3; a uniform draw's median would be 0.5


def test_failed_values_are_the_worst_finite_value_and_never_reach_the_model():
    sampler = BayesSampler(SPACE, seed=0, n_initial_points=4)
    for params, value in zip(RandomSampler(SPACE, seed=1).ask(3), (None, math.nan, math.inf), strict=True):
        sampler.tell(params, value)  # all failed: still random, nothing to model yet
    assert len(sampler.ask(2)) == 2
    told = run(sampler, budget=6)
    sampler.tell(RandomSampler(SPACE, seed=2).ask(1)[0], -math.inf)
    _, y = sampler._training()
    assert np.isfinite(y).all() and len(y) == 10
    worst = max(v for _, v in told)
    raw = np.array(sampler._values)
    filled = np.where(np.isnan(raw), np.nanmax(raw), raw)
    assert np.nanmax(raw) == worst and np.isclose((filled - filled.mean()) / filled.std(), y).all()
    assert len(run(sampler, budget=3)) == 3  # the model fits and asks with failures in the history


def test_a_failing_model_falls_back_to_random_points(monkeypatch):
    sampler = BayesSampler(SPACE, seed=0, n_initial_points=3)
    run(sampler, budget=4)

    def broken(*args: Any) -> None:
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(bayes, "Posterior", broken)
    points = sampler.ask(2)
    assert len(points) == 2 and all(SPACE.contains(p) for p in points)


def test_points_outside_the_space_are_skipped():
    sampler = BayesSampler(SPACE, seed=0)
    sampler.tell({"x": 5.0, "lr": 1e-3, "k": 1, "c": "a"}, 1.0)
    sampler.tell({"x": 0.5}, 1.0)
    assert sampler._rows == []


@pytest.mark.parametrize("estimator", ["gp", "et"])
def test_pending_points_are_not_proposed_again(estimator):
    def primed() -> BayesSampler:
        sampler = BayesSampler(SPACE, estimator, seed=3, n_initial_points=5)
        run(sampler, budget=10)
        return sampler

    chosen = primed().ask(1)[0]
    instead = primed().ask(1, pending=[chosen])[0]
    assert point_key(instead) != point_key(chosen)


@pytest.mark.parametrize("estimator", ["gp", "rf"])
def test_a_batch_is_distinct_and_avoids_told_points(estimator):
    sampler = BayesSampler(SPACE, estimator, seed=0, n_initial_points=5)
    told = run(sampler, budget=8)
    batch = sampler.ask(6)
    keys = {point_key(p) for p in batch}
    assert len(batch) == 6 and len(keys) == 6 and not keys & {point_key(p) for p, _ in told}


def test_a_small_discrete_space_is_covered_then_exhausted():
    space = Space(k=Int(0, 2), c=Choice(["a", "b"]))
    sampler = BayesSampler(space, seed=0, n_initial_points=2)
    seen = []
    while batch := sampler.ask(2):
        seen += batch
        sampler.tell_many([(p, float(p["k"])) for p in batch])
    assert len(seen) == 6 and len({point_key(p) for p in seen}) == 6


def test_tells_do_not_fit_and_hyperparameters_are_refitted_as_the_history_grows(monkeypatch):
    fits: list[int] = []
    real = bayes.fit_theta

    def counting(X: np.ndarray, *rest: Any) -> np.ndarray:
        fits.append(len(X))
        return real(X, *rest)

    monkeypatch.setattr(bayes, "fit_theta", counting)
    sampler = BayesSampler(SPACE, seed=0, max_fit_points=60, refit_every=20)
    sampler.tell_many([(p, bowl(p)) for p in RandomSampler(SPACE, seed=0).ask(12)])
    assert fits == []
    run(sampler, budget=3)
    sampler.ask(1)
    sampler.ask(1)
    assert fits == [12, 13, 14, 15]  # up to refit_every points: a fit at every ask after a tell, none without one
    sampler.tell_many([(p, bowl(p)) for p in RandomSampler(SPACE, seed=2).ask(35)])
    fits.clear()
    run(sampler, budget=6)  # asks at 50..55 points: a fit at 50, the next when the history grew by 10 %
    assert fits == [50, 55]
    sampler.tell_many([(p, bowl(p)) for p in RandomSampler(SPACE, seed=1).ask(50)])
    sampler.ask(1)
    assert fits == [50, 55, 60]  # 106 points, a random subset of 60 for the hyperparameters


def test_background_refit_is_used_by_a_later_ask():
    sampler = BayesSampler(SPACE, seed=0, background=True, refit_every=0)
    sampler.tell_many([(p, bowl(p)) for p in RandomSampler(SPACE, seed=0).ask(30)])
    sampler.ask(1)  # the first fit is synchronous
    first = sampler._theta
    run(sampler, budget=4)  # the ask at 33 points finds a refit due and starts it in a thread
    sampler.wait()
    assert sampler._ready is not None and sampler._ready[1] == 33
    sampler.ask(1)
    assert sampler._theta_n == 33 and sampler._theta is not first


def test_bayes_beats_random_search():
    def best(sampler: Sampler) -> float:
        return min(v for _, v in run(sampler, budget=25))

    seeds = range(3)
    bo = [best(BayesSampler(SPACE, seed=s, n_initial_points=8)) for s in seeds]
    rnd = [best(RandomSampler(SPACE, seed=s)) for s in seeds]
    assert np.mean(bo) < 0.5 * np.mean(rnd), (bo, rnd)


@pytest.mark.parametrize("estimator", ["rf", "et"])
def test_forests_improve_on_their_random_start(estimator):
    told = run(BayesSampler(SPACE, estimator, seed=0, n_initial_points=8), budget=18)
    assert min(v for _, v in told[8:]) < min(v for _, v in told[:8])


def test_inactive_params_are_one_constant_to_the_model():
    """A value that had no effect (inactive under the row's choices) never reaches the model as information."""
    space = Space(family=Choice(["a", "b"]), x=Real(0.0, 1.0, when={"family": "a"}), z=Real(1.0, 2.0))
    enc = Encoder(space)
    rows = enc.encode([{"family": "b", "z": 1.5}, {"family": "a", "x": 0.7, "z": 1.5}])
    assert rows[0, 1] == 0.0 and rows[1, 1] == pytest.approx(0.7)
    moved = rows.copy()
    moved[0, 1] = 0.9  # a candidate moved along an inactive axis is snapped back onto the constant
    assert enc.snap(moved)[0, 1] == 0.0
    assert enc.decode(rows) == [{"family": "b", "z": 1.5}, {"family": "a", "x": pytest.approx(0.7), "z": 1.5}]
