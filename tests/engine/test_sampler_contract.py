"""The contract every registered sampler keeps, run over the registry (a sampler registered later is covered).

Seeded reproducibility, points inside the space, pending and told points never proposed again, a finite space
covered once and then exhausted, failed trials (told ``None``) taken in stride, and a journaled study that
reopens with its sampler. This module also registers a toy sampler of a user's kind — one class and one call —
which the contract then covers like the built-ins.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import nbautoml
from nbautoml import Choice, Int, Real, Space, Study
from nbautoml.engine.registry import journal_name, make_sampler, sampler_names
from nbautoml.engine.samplers.base import Observation, Params, Sampler, point_key
from nbautoml.engine.samplers.random import RandomSampler


class Cautious:
    """A user's sampler: it wraps the random sampler and keeps what it is told (the point is registering it)."""

    name = "cautious"

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self.space = space
        self.inner = RandomSampler(space, seed=seed)
        self.told: list[Observation] = []

    def ask(self, n: int = 1, pending: Sequence[Params] = ()) -> list[Params]:
        return self.inner.ask(n, pending=pending)

    def tell(self, params: Params, value: float | None) -> None:
        self.told.append((params, value))
        self.inner.tell(params, value)

    def tell_many(self, observations: Sequence[Observation]) -> None:
        self.told += observations
        self.inner.tell_many(observations)


nbautoml.register_sampler("cautious", Cautious)

MIXED = Space(lr=Real(1e-4, 1e-1, log=True), units=Int(8, 64), act=Choice(["relu", "tanh", [1, 2]]))
FINITE = Space(k=Int(0, 2), c=Choice(["a", "b"]))  # six points


def names() -> list[str]:
    return list(sampler_names())


@pytest.mark.parametrize("name", names())
def test_follows_the_protocol_and_proposes_points_of_the_space(name):
    sampler = make_sampler(name, MIXED, seed=0)
    assert isinstance(sampler, Sampler)
    points = sampler.ask(4)
    assert len(points) == 4 and all(MIXED.contains(p) for p in points)
    assert len({point_key(p) for p in points}) == 4


@pytest.mark.parametrize("name", names())
def test_the_same_seed_gives_the_same_points(name):
    def run(seed: int) -> list[Params]:
        sampler = make_sampler(name, MIXED, seed=seed)
        seen = []
        for _ in range(3):
            batch = sampler.ask(2)
            sampler.tell_many([(p, float(p["units"])) for p in batch])
            seen += batch
        return seen

    assert run(3) == run(3)


@pytest.mark.parametrize("name", names())
def test_a_finite_space_is_covered_once_then_exhausted(name):
    sampler = make_sampler(name, FINITE, seed=0)
    seen: list[Params] = []
    for _ in range(20):
        batch = sampler.ask(4)
        if not batch:
            break
        seen += batch
        sampler.tell_many([(p, float(p["k"])) for p in batch])
    assert len(seen) == 6 and len({point_key(p) for p in seen}) == 6
    assert sampler.ask(1) == []


@pytest.mark.parametrize("name", names())
def test_told_and_pending_points_are_not_proposed_again(name):
    sampler = make_sampler(name, FINITE, seed=1)
    first = sampler.ask(4)
    sampler.tell(first[0], 1.0)
    sampler.tell(first[1], None)
    rest = sampler.ask(6, pending=first[2:])
    assert len(rest) == 2
    assert not {point_key(p) for p in rest} & {point_key(p) for p in first}


@pytest.mark.parametrize("name", names())
def test_failed_trials_told_none_are_taken_in_stride(name):
    sampler = make_sampler(name, MIXED, seed=2)
    told = 0
    for _ in range(4):
        batch = sampler.ask(2)
        sampler.tell_many([(p, None) for p in batch])
        told += len(batch)
    sampler.tell(sampler.ask(1)[0], 0.5)
    after = sampler.ask(3)
    assert told == 8 and len(after) == 3 and all(MIXED.contains(p) for p in after)


def _objective(trial: nbautoml.Trial) -> float | None:
    if trial.params["units"] > 60:
        raise ValueError("too wide")  # some trials fail: the reopened sampler is told None for them
    return float(trial.params["units"]) * trial.params["lr"]


@pytest.mark.parametrize("name", names())
def test_a_journaled_study_reopens_with_its_sampler(name, tmp_path):
    journal = tmp_path / "study.jsonl"
    study = Study("contract", MIXED, metric="loss", sampler=name, storage=journal, seed=0)
    study.optimize(_objective, trials=4, show=False)
    reopened = Study("contract", MIXED, storage=journal)
    assert reopened.sampler_name == name and reopened.seed == 0
    reopened.optimize(_objective, trials=6, show=False)
    assert reopened.n_finished == 6 and all(MIXED.contains(t.params) for t in reopened.trials)


@pytest.mark.parametrize("name", names())
def test_a_study_made_with_an_instance_reopens(name, tmp_path):
    journal = tmp_path / "study.jsonl"
    instance = make_sampler(name, MIXED, seed=0)
    study = Study("instance", MIXED, metric="loss", sampler=instance, storage=journal, seed=0)
    assert study.sampler() is instance and study.sampler_name == journal_name(instance)
    study.optimize(_objective, trials=3, show=False)
    reopened = Study("instance", storage=journal)
    assert reopened.sampler_name == journal_name(instance)
    reopened.optimize(_objective, trials=5, show=False)
    assert reopened.n_finished == 5


def test_the_toy_sampler_runs_a_study_and_is_told_the_history_on_reopen(tmp_path):
    journal = tmp_path / "toy.jsonl"
    Study("toy", MIXED, metric="loss", sampler="cautious", storage=journal, seed=0).optimize(
        _objective, trials=5, show=False)
    reopened = Study("toy", storage=journal)
    sampler = reopened.sampler()
    assert isinstance(sampler, Cautious) and reopened.sampler_name == "cautious"
    assert sorted(point_key(p) for p, _ in sampler.told) == sorted(point_key(t.params) for t in reopened.trials)
    failed = [t for t in reopened.trials if t.state.value == "FAILED"]
    assert sum(value is None for _, value in sampler.told) == len(failed)


def test_an_unregistered_instance_is_refused_before_anything_is_written(tmp_path):
    class Nameless(RandomSampler):
        name = "not-registered"

    journal = tmp_path / "nameless.jsonl"
    with pytest.raises(ValueError, match="register_sampler\\('not-registered'"):
        Study("nameless", MIXED, sampler=Nameless(MIXED), storage=journal)
    assert not journal.exists()


def test_reopening_with_an_unregistered_sampler_says_what_to_register(tmp_path, monkeypatch):
    from nbautoml.engine import registry

    journal = tmp_path / "gone.jsonl"
    nbautoml.register_sampler("short-lived", Cautious)
    Study("gone", MIXED, sampler="short-lived", storage=journal).optimize(_objective, trials=1, show=False)
    monkeypatch.delitem(registry._samplers, "short-lived")  # another process, where nobody registered it
    reopened = Study("gone", storage=journal)  # reading it needs no sampler
    assert reopened.n_finished == 1
    with pytest.raises(ValueError, match="register_sampler\\('short-lived', factory\\)"):
        reopened.optimize(_objective, trials=2, show=False)


def test_names_are_checked_and_not_replaced_by_accident():
    with pytest.raises(ValueError, match="lower-case"):
        nbautoml.register_sampler("Mine", Cautious)
    with pytest.raises(ValueError, match="already registered"):
        nbautoml.register_sampler("random", Cautious)
    with pytest.raises(TypeError, match="callable"):
        nbautoml.register_sampler("mine", object())  # type: ignore[arg-type]
    assert "cautious" in sampler_names() and make_sampler("CAUTIOUS", FINITE).name == "cautious"


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(ValueError, match="registered are bayes, gp, rf, et, random, grid"):
        make_sampler("tpe", MIXED)


CONDITIONAL = Space(
    family=Choice(["mlp", "cnn"]),
    units=Int(8, 64, when={"family": "mlp"}),
    kernel=Choice([3, 5], when={"family": "cnn"}),
    lr=Real(1e-4, 1e-1, log=True),
)


@pytest.mark.parametrize("name", names())
def test_a_conditional_space_gets_only_the_active_params(name):
    """Each proposed point holds exactly the parameters active under its own choices, before and after learning."""
    sampler = make_sampler(name, CONDITIONAL, seed=0)
    several = getattr(sampler, "multi_objective", False)
    seen: list[Params] = []
    for _ in range(8):  # past the random start of the model-based samplers
        batch = sampler.ask(2, pending=seen[-1:])
        assert batch and all(CONDITIONAL.contains(p) for p in batch), batch
        for point in batch:
            loss = point["lr"] + (point["units"] / 64 if point["family"] == "mlp" else point["kernel"] / 5)
            sampler.tell(point, (loss, -loss) if several else loss)
        seen += batch
    assert {p["family"] for p in seen} == {"mlp", "cnn"}
