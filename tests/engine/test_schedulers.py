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
