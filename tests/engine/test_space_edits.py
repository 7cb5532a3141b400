"""Reopening a study with an edited space: a new version, history inside it reused, never an exception."""

from __future__ import annotations

import pytest

import nbautoml as na
from nbautoml.events import SpaceChanged

BASE = na.Space(x=na.Real(0.0, 1.0), n=na.Int(1, 4))


def objective(trial):
    return trial.params["x"] + 0.01 * trial.params.get("n", 1) + 0.001 * trial.params.get("m", 0)


@pytest.fixture
def first_run():
    study = na.Study("edit", BASE, sampler="random", seed=0)
    study.optimize(objective, trials=10, show=False)
    return study


@pytest.mark.parametrize(
    ("edited", "diff_kind", "reused"),
    [
        (na.Space(x=na.Real(0.0, 0.5), n=na.Int(1, 4)), "changed", lambda t: t.params["x"] <= 0.5),
        (na.Space(x=na.Real(0.0, 2.0), n=na.Int(1, 8)), "changed", lambda t: True),
        (na.Space(x=na.Real(0.0, 1.0), n=na.Int(1, 4), m=na.Int(0, 3)), "added", lambda t: False),
        (na.Space(x=na.Real(0.0, 1.0)), "removed", lambda t: True),
        (na.Space(x=na.Real(0.0, 1.0), n=na.Choice([1, 2, 3, 4])), "changed", lambda t: True),
    ],
    ids=["narrowed", "widened", "new-dim", "removed-dim", "changed-kind"],
)
def test_edit_and_resume(first_run, edited, diff_kind, reused):
    events = []
    reopened = na.Study("edit", sampler="random", seed=0)
    reopened.events.subscribe(events.append, SpaceChanged)
    assert reopened.space == BASE and reopened.space_version == 0
    diff = reopened.set_space(edited)
    assert getattr(diff, diff_kind)
    assert reopened.space_version == 1
    assert len(events) == 1 and events[0].version == 1 and events[0].diff == diff.to_json()
    expected = [t.number for t in first_run.trials if reused(t)]
    assert [t.number for t in reopened.history_in_space()] == expected
    assert f"{len(expected)} past trials lie inside" in reopened.message

    reopened.optimize(objective, trials=14, show=False)
    assert reopened.n_finished == 14
    new = [t for t in reopened.trials if t.number >= 10]
    assert all(t.space_version == 1 and edited.contains(edited.project(t.params) or {}) for t in new)
    assert all(t.space_version == 0 for t in reopened.trials[:10])  # old ones stay visible with their version

    again = na.Study("edit")  # a restart: the versions replay from the journal
    assert again.space == edited and again.space_version == 1 and len(again.trials) == 14


def test_edit_through_the_constructor_records_a_version(first_run):
    widened = na.Space(x=na.Real(0.0, 3.0), n=na.Int(1, 4))
    study = na.Study("edit", widened, sampler="random")
    assert study.space_version == 1 and study.space == widened
    same = na.Study("edit", widened, sampler="random")
    assert same.space_version == 1  # the same space again is not a new version


def test_metric_or_mode_change_is_refused(first_run):
    with pytest.raises(ValueError, match=r"optimises metric='value', not 'val_loss'.*fresh=True"):
        na.Study("edit", metric="val_loss")
    with pytest.raises(ValueError, match="mode='min', not 'max'"):
        na.Study("edit", mode="max")
    assert na.Study("edit", metric="value", mode="min").n_finished == 10


def test_other_sampler_or_seed_is_allowed_and_recorded(first_run):
    study = na.Study("edit", sampler="grid", seed=5)
    assert study.sampler_name == "grid" and study.seed == 5
    records = study.storage.read()
    assert [r for r in records if r["type"] == "settings"][-1]["sampler"] == "grid"
    assert na.Study("edit").sampler_name == "grid"


def test_a_sampler_instance_is_not_told_the_history_again_after_a_space_edit():
    from nbautoml.engine.samplers.random import RandomSampler

    class Recording(RandomSampler):
        def __init__(self, space: na.Space) -> None:
            super().__init__(space, seed=0)
            self.told: list[tuple[dict, float | None]] = []

        def tell(self, params: dict, value: float | None) -> None:
            self.told.append((params, value))
            super().tell(params, value)

        def tell_many(self, observations) -> None:  # type: ignore[no-untyped-def]
            self.told += list(observations)
            super().tell_many(observations)

    first = na.Space(x=na.Int(0, 20))
    instance = Recording(first)
    study = na.Study("instance-edit", first, metric="loss", sampler=instance, storage=":memory:")
    study.optimize(lambda trial: float(trial.params["x"]), trials=3, show=False)
    assert len(instance.told) == 3
    study.set_space(na.Space(x=na.Int(0, 10)))
    rebuilt = study.sampler()
    assert rebuilt is not instance and rebuilt.space == na.Space(x=na.Int(0, 10))  # type: ignore[attr-defined]
    assert len(instance.told) == 3  # told each trial once, never the whole history again
    study.optimize(lambda trial: float(trial.params["x"]), trials=5, show=False)
    assert len(instance.told) == 3 and all(t.params["x"] <= 10 for t in study.trials[3:])
