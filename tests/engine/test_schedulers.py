from __future__ import annotations

import math

import pytest

from nbautoml.engine.registry import make_scheduler
from nbautoml.engine.schedulers import ASHA, MedianStopping


def run_curves(scheduler, curves: dict[int, list[float]]) -> dict[int, int | None]:
    """Feed curves round-robin (asynchronous interleaving); returns the step each trial was pruned at."""
    pruned: dict[int, int | None] = {n: None for n in curves}
    longest = max(len(c) for c in curves.values())
    for step in range(longest):
        for number, curve in curves.items():
            if pruned[number] is None and step < len(curve) and scheduler.on_report(number, step, curve[step]):
                pruned[number] = step
    return pruned


def test_asha_rungs():
    assert ASHA(min_steps=1, reduction_factor=3, max_steps=30).rung_resources() == [1, 3, 9, 27]
    assert ASHA(min_steps=2, reduction_factor=2, max_steps=16).rung_resources() == [2, 4, 8]


def test_asha_keeps_the_best_third_and_prunes_the_rest():
    # 9 trials whose loss is ranked by their number at every step: 0 best, 8 worst.
    curves = {n: [1.0 + n - 0.01 * s for s in range(9)] for n in range(9)}
    pruned = run_curves(ASHA(min_steps=1, reduction_factor=3, max_steps=9), curves)
    assert pruned[0] is None  # the best is never pruned
    survivors_rung1 = [n for n, p in pruned.items() if p is None or p > 0]
    assert set(survivors_rung1) <= {0, 1, 2, 3}
    assert sum(p is not None for p in pruned.values()) >= 6


def test_asha_is_asynchronous_first_trial_runs_through():
    asha = ASHA(min_steps=1, reduction_factor=3)
    assert not any(asha.on_report(0, s, 1.0) for s in range(20))


def test_asha_prunes_diverged_trials_and_forgets():
    asha = ASHA()
    assert asha.on_report(0, 0, math.nan)
    asha.on_report(1, 0, 0.5)
    asha.forget(1)
    assert not asha.on_report(2, 0, 0.9)  # alone at the rung again


def test_median_rule():
    rule = MedianStopping(warmup_steps=1, min_trials=2)
    good = {n: [1.0 / (s + 1) for s in range(5)] for n in range(3)}
    run_curves(rule, good)
    assert not rule.on_report(10, 0, 5.0)  # warm-up step
    assert rule.on_report(10, 1, 5.0)  # worse than the median of the others at step 1
    assert not rule.on_report(11, 1, 0.1)


def test_median_needs_enough_trials():
    rule = MedianStopping(warmup_steps=0, min_trials=3)
    rule.on_report(0, 0, 0.1)
    assert not rule.on_report(1, 0, 9.0)


def test_make_scheduler():
    assert make_scheduler(None) is None and make_scheduler("none") is None
    assert isinstance(make_scheduler("asha"), ASHA)
    assert isinstance(make_scheduler("MEDIAN"), MedianStopping)
    again = make_scheduler(ASHA(min_steps=2, reduction_factor=4).to_json())
    assert isinstance(again, ASHA) and again.min_steps == 2 and again.reduction_factor == 4
    with pytest.raises(ValueError, match="unknown scheduler 'bohb'"):
        make_scheduler("bohb")
    with pytest.raises(ValueError, match="reduction_factor"):
        ASHA(reduction_factor=1)


def test_asha_rungs_are_fractions_of_the_trials_length():
    assert ASHA(max_steps=10).rung_resources() == [3]
    assert ASHA(max_steps=30).rung_resources() == [10]
    assert ASHA(max_steps=30, min_fraction=1 / 9).rung_resources() == [3, 10]
    assert ASHA(max_steps=100, min_fraction=0.01).rung_resources() == [1, 4, 11, 33]
    assert ASHA(max_steps=2).rung_resources() == []  # too short to judge anything before the end


def test_asha_learns_max_steps_when_the_objective_says_it():
    asha = ASHA()
    assert asha.max_steps is None and asha.rung_resources() == []
    asha.set_max_steps(30)
    assert asha.max_steps == 30 and asha.rung_resources() == [10]
    assert asha.to_json()["max_steps"] is None  # learned, not a setting: a reopened study learns it again


def test_asha_without_max_steps_uses_the_longest_other_curve():
    asha = ASHA(grace=0)
    for step in range(9):  # trial 0 alone: its own growing curve places no rung
        assert not asha.on_report(0, step, 1.0)
    assert asha.rung_resources(asha._max_for(1)) == [3]
    assert not asha.on_report(1, 2, 0.5)  # rung 3 epochs, best so far
    assert asha.on_report(2, 2, 2.0)


def test_asha_grace_protects_the_first_trials_at_each_rung():
    asha = ASHA(max_steps=9, grace=3)
    worse = [asha.on_report(n, 2, 10.0 - n) for n in range(3)]  # each worse than none before... still kept
    assert worse == [False, False, False]
    assert asha.on_report(3, 2, 100.0)  # the fourth is judged: rank 4 of 4, keep ceil(4/3) = 2


def test_asha_explains_the_rung_rank_and_bar_in_the_users_units():
    asha = ASHA(max_steps=9, grace=3)
    for number, acc in enumerate([0.951, 0.97, 0.93, 0.96, 0.94, 0.95]):
        asha.on_report(number, 2, -acc)  # a maximised metric arrives negated
    assert asha.on_report(6, 2, -0.912)
    decision = asha.explain(6)
    assert decision is not None
    assert decision.text(-1.0, "val_acc") == "rung 3 epochs: val_acc 0.912, rank 7 of 7, kept top 3 >= 0.951"
    assert decision.text(1.0, "loss").endswith("kept top 3 <= -0.951")


def test_median_rule_warms_up_for_a_fraction_of_the_trial():
    rule = MedianStopping(warmup_steps=0, min_trials=1, warmup_fraction=0.5, max_steps=10)
    run_curves(rule, {0: [0.1] * 10})
    assert not rule.on_report(1, 4, 5.0)  # epoch 5 of 10: still warming up
    assert rule.on_report(1, 5, 5.0)
    text = rule.explain(1).text(1.0, "loss")
    assert text == "epoch 6: best loss so far 5 is worse than the median 0.1 of 1 other trials at that epoch"


def test_hyperband_brackets_hedge_over_the_first_rung():
    from nbautoml.engine.schedulers import Hyperband

    band = Hyperband(brackets=3, reduction_factor=3, max_steps=27, grace=0)
    assert [band.rung_resources(b) for b in range(3)] == [[3, 9], [9], []]
    assert [band.bracket_of(n) for n in range(6)] == [0, 1, 2, 0, 1, 2]
    curves = {n: [float(n)] * 27 for n in range(9)}  # higher number = worse at every step
    pruned = run_curves(band, curves)
    assert pruned[2] is None and pruned[5] is None and pruned[8] is None  # the last bracket never prunes
    assert pruned[3] == 2 and pruned[6] == 2  # bracket 0 judges at epoch 3, against its own trials only
    assert pruned[4] == 8 and pruned[7] == 8  # bracket 1 at epoch 9
    assert band.explain(3).text(1.0, "loss").startswith("bracket 0, rung 3 epochs: loss 3, rank 2 of 2")
    assert make_scheduler(band.to_json()).to_json() == band.to_json()


def test_diverged_trials_are_explained():
    asha = ASHA(max_steps=9)
    assert asha.on_report(0, 4, math.inf)
    assert asha.explain(0).text(1.0, "loss") == "diverged at epoch 5: loss inf"
