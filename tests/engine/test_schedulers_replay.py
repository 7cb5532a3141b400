"""Replaying a scheduler on recorded curves gives a live run's decisions; pruned trials' told values."""

from __future__ import annotations

import math

import nbautoml as na
from nbautoml.engine.schedulers import ASHA, MedianStopping
from nbautoml.engine.schedulers.feedback import PrunedValues
from nbautoml.engine.schedulers.replay import replay_curves
from nbautoml.engine.trial import Trial, TrialState

SPACE = na.Space(x=na.Real(0.0, 1.0), y=na.Real(0.0, 1.0))


def curve(trial):
    """Accuracy-like curves that rise to a level set by the params, at a speed set by y."""
    trial.set_max_steps(9)
    top = 0.6 + 0.4 * (1 - abs(trial.params["x"] - 0.3))
    for step in range(9):
        trial.report(step, acc=top * (1 - math.exp(-(step + 1) * (0.2 + trial.params["y"]))))
        if trial.should_stop():
            break


def study_with(scheduler, name):
    study = na.Study(name, SPACE, metric="acc", mode="max", sampler="random", scheduler=scheduler,
                     storage=":memory:", seed=4)
    return study.optimize(curve, trials=16, show=False)


def live(study):
    return {t.number: t.last_step for t in study.trials if t.state is TrialState.PRUNED}


def test_replay_on_unpruned_curves_equals_a_live_run_with_that_scheduler():
    for make in (lambda: ASHA(grace=1), lambda: MedianStopping(min_trials=2, warmup_fraction=0.3)):
        pruned_live = study_with(make(), "live")
        full = study_with(None, "full")
        assert [t.params for t in full.trials] == [t.params for t in pruned_live.trials]
        replay = full.replay_scheduler(make())
        assert replay.pruned == live(pruned_live) and replay.pruned
        reasons = {t.number: t.reason for t in pruned_live.trials if t.state is TrialState.PRUNED}
        assert {n: f"pruned: {why}" for n, why in replay.reasons.items()} == reasons
        assert replay.epochs_recorded == 16 * 9
        assert replay.epochs_saved == sum(8 - step for step in replay.pruned.values())
        assert not replay.ran_past


def test_replay_of_the_studys_own_scheduler_gives_its_decisions_back_and_flags_cut_curves():
    pruned_live = study_with(ASHA(grace=1), "own")
    again = pruned_live.replay_scheduler({"name": "asha", "grace": 1})
    assert again.pruned == live(pruned_live) and again.epochs_saved == 0
    lenient = pruned_live.replay_scheduler(ASHA(grace=100))
    assert lenient.pruned == {} and sorted(lenient.ran_past) == sorted(live(pruned_live))
    assert "would prune 0 trials" in str(lenient)


def test_replay_curves_directly():
    out = replay_curves(ASHA(max_steps=9, grace=1), [(0, [(s, 1.0) for s in range(9)]),
                                                     (1, [(s, 2.0) for s in range(9)])], metric="loss")
    assert out.pruned == {1: 2} and out.reasons[1] == "rung 3 epochs: loss 2, rank 2 of 2, kept top 1 <= 1"
    assert out.epochs_saved == 6


def finished(number, state, values, value=None):
    trial = Trial(number, {"x": 0.0})
    for step, v in enumerate(values):
        trial.report(step, acc=v)
    trial.state, trial.value = state, value if value is not None else max(values)
    return trial


def test_a_pruned_trial_is_told_its_value_plus_what_complete_trials_gained_from_there():
    complete = [finished(0, TrialState.COMPLETE, [0.5, 0.7, 0.8, 0.9]),
                finished(1, TrialState.COMPLETE, [0.6, 0.65, 0.7, 0.8])]
    pruned = finished(2, TrialState.PRUNED, [0.55, 0.6])
    values = PrunedValues([*complete, pruned], "acc", -1.0)
    assert math.isclose(values.loss(pruned), -(0.6 + (0.2 + 0.15) / 2))  # a loss: the accuracy negated
    alone = PrunedValues([pruned], "acc", -1.0)
    assert alone.loss(pruned) == -0.6  # no complete trial reached that step: its best so far


def test_the_study_tells_the_sampler_estimated_finals_for_pruned_trials():
    study = study_with(ASHA(grace=1), "told")
    told = study._pruned_values()
    for trial in study.trials:
        if trial.state is TrialState.PRUNED:
            assert study._loss(trial) == told.loss(trial)
            assert study._loss(trial) < -trial.value  # better than its partial value: curves were still rising
