"""The contract every registered scheduler keeps, run over the registry (one registered later is covered).

Its JSON state names it and rebuilds an equal scheduler; decisions depend only on the reports seen (the same
reports, the same answers); a diverged report (NaN, ±inf) is pruned; ``forget`` makes a trial new again; a
journaled study reopens with the same scheduler.
"""

from __future__ import annotations

import json
import math

import pytest

from nbautoml import Int, Space, Study
from nbautoml.engine.registry import make_scheduler, register_scheduler, scheduler_names
from nbautoml.engine.schedulers import Scheduler

# five trials over six steps, the later ones worse: enough for every rule to prune something
CURVES = {n: [1.0 / (step + 1) + 0.3 * n for step in range(6)] for n in range(5)}


def feed(scheduler: Scheduler, numbers: list[int]) -> list[tuple[int, int, bool]]:
    """Report the curves step by step (trials interleaved, as in a parallel run); the decisions in order."""
    decisions = []
    for step in range(6):
        for number in numbers:
            decisions.append((number, step, scheduler.on_report(number, step, CURVES[number][step])))
    return decisions


def names() -> list[str]:
    return list(scheduler_names())


@pytest.mark.parametrize("name", names())
def test_json_state_names_it_and_rebuilds_an_equal_scheduler(name):
    scheduler = make_scheduler(name)
    assert isinstance(scheduler, Scheduler)
    state = scheduler.to_json()
    assert state["name"] == name and json.loads(json.dumps(state)) == state
    again = make_scheduler(state)
    assert again is not None and again.to_json() == state
    assert feed(again, list(CURVES)) == feed(make_scheduler(state), list(CURVES))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", names())
def test_the_same_reports_give_the_same_decisions_and_something_is_pruned(name):
    first, second = feed(make_scheduler(name), list(CURVES)), feed(make_scheduler(name), list(CURVES))  # type: ignore[arg-type]
    assert first == second
    assert any(pruned for _, _, pruned in first)
    assert not any(pruned for number, _, pruned in first if number == 0)  # the best trial is never pruned


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_diverged_report_is_pruned(name, value):
    scheduler = make_scheduler(name)
    assert scheduler is not None and scheduler.on_report(7, 0, value) is True


@pytest.mark.parametrize("name", names())
def test_forget_makes_a_trial_new_again(name):
    remembered = make_scheduler(name)
    fresh = make_scheduler(name)
    assert remembered is not None and fresh is not None
    feed(remembered, [0, 1, 2, 3, 4])
    remembered.forget(4)
    feed(fresh, [0, 1, 2, 3])
    again = [remembered.on_report(4, step, CURVES[4][step]) for step in range(6)]
    assert again == [fresh.on_report(4, step, CURVES[4][step]) for step in range(6)]


@pytest.mark.parametrize("name", names())
def test_a_journaled_study_reopens_with_its_scheduler(name, tmp_path):
    journal = tmp_path / "study.jsonl"
    space = Space(x=Int(0, 9))
    study = Study("contract", space, metric="loss", sampler="random", scheduler=name, storage=journal, seed=0)

    def objective(trial):  # type: ignore[no-untyped-def]
        for step in range(4):
            trial.report(step, loss=float(trial.params["x"]) + 1.0 / (step + 1))
            if trial.should_stop():
                break
        return None

    study.optimize(objective, trials=4, show=False)
    reopened = Study("contract", storage=journal)
    assert reopened.scheduler is not None and reopened.scheduler.to_json() == study.scheduler.to_json()  # type: ignore[union-attr]
    reopened.optimize(objective, trials=6, show=False)
    assert reopened.n_finished == 6


def test_none_is_no_scheduler_and_cannot_be_registered():
    assert make_scheduler(None) is None and make_scheduler("none") is None and make_scheduler({"name": "none"}) is None
    with pytest.raises(ValueError, match="'none' means no scheduler"):
        register_scheduler("none", lambda: None)  # type: ignore[arg-type,return-value]


def test_an_instance_that_names_no_registered_scheduler_is_refused():
    class Mine:
        def on_report(self, number: int, step: int, value: float) -> bool:
            return False

        def forget(self, number: int) -> None: ...

        def to_json(self) -> dict[str, object]:
            return {"name": "mine"}

    with pytest.raises(ValueError, match="register_scheduler"):
        Study("refused", Space(x=Int(0, 3)), scheduler=Mine(), storage=":memory:")
