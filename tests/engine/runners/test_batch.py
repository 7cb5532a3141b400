"""Batch objectives through the study loop: grouping, budget, per-trial outcomes, OOM halving (no torch here)."""

from __future__ import annotations

import threading

import pytest

import nbautoml as na
from nbautoml.engine.runners.batch import group_trials, halving
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.events import TrialReported

SPACE = na.Space(x=na.Real(-2.0, 2.0), units=na.Choice([16, 32]), lr=na.Real(1e-3, 1e-1, log=True))


class OutOfMemoryError(RuntimeError):
    """Recognised by name, as torch.cuda.OutOfMemoryError is (the engine never imports torch)."""


def make(name: str = "b", **options: object) -> na.Study:
    options.setdefault("sampler", "random")
    options.setdefault("storage", ":memory:")
    options.setdefault("seed", 0)
    return na.Study(name, SPACE, **options)  # type: ignore[arg-type]


def test_group_trials_by_params_in_first_seen_order():
    trials = [Trial(i, {"units": u, "x": float(i)}) for i, u in enumerate([16, 32, 16, 32, 16])]
    groups = group_trials(trials, ["units"])
    assert [[t.number for t in g] for g in groups] == [[0, 2, 4], [1, 3]]
    assert group_trials(trials, None) == [trials] and group_trials([], ["units"]) == []


def test_halving_retries_oom_on_halves_and_keeps_order():
    sizes: list[int] = []

    def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(items) > 2:
            raise OutOfMemoryError("CUDA out of memory (test)")
        return [i * 10 for i in items]

    assert halving(run, list(range(5))) == [0, 10, 20, 30, 40]
    assert sizes == [5, 2, 3, 1, 2]


def test_halving_gives_errors_per_item_and_a_lone_oom_fails():
    def run(items: list[int]) -> list[int]:
        raise OutOfMemoryError("CUDA out of memory (test)")

    out = halving(run, [1, 2])
    assert all(isinstance(e, OutOfMemoryError) for e in out) and out[0].__traceback__ is None
    assert "OutOfMemoryError" in out[0].nbautoml_traceback
    bad = halving(lambda items: [1], [1, 2])  # wrong length: an error for every item
    assert all(isinstance(e, ValueError) for e in bad)


def test_batch_study_groups_asks_and_reports_per_trial():
    batches: list[list[int]] = []
    lock = threading.Lock()

    def objective(trials: list[Trial]) -> list[object]:
        with lock:
            batches.append([t.params["units"] for t in trials])
        for trial in trials:
            for step in range(3):
                trial.report(step, value=trial.params["x"] ** 2 + step)
        return [None if t.number % 2 else {"value": t.params["x"] ** 2} for t in trials]

    study = make()
    reports: list[int] = []
    study.events.subscribe(lambda e: reports.append(e.number), TrialReported)
    study.optimize(objective, trials=10, batch=4, group_by=["units"], show=False)
    assert study.n_finished == 10 and all(t.state is TrialState.COMPLETE for t in study.trials)
    assert all(len(set(b)) == 1 and len(b) <= 4 for b in batches)  # homogeneous groups of at most K
    assert sum(len(b) for b in batches) == 10
    assert sorted(set(reports)) == list(range(10)) and len(reports) == 30
    for trial in study.trials:  # a dict gives its entry; None the best report (min over steps: step 0)
        assert trial.value == pytest.approx(trial.params["x"] ** 2)


def test_group_size_asks_compatible_blocks():
    sizes: list[int] = []

    def objective(trials: list[Trial]) -> list[float]:
        sizes.append(len(trials))
        return [t.params["x"] for t in trials]

    objective.group_size = 3  # type: ignore[attr-defined]
    study = make("g")
    study.optimize(objective, trials=12, batch=6, group_by=["units", "lr"], show=False)
    assert sizes == [3, 3, 3, 3] and study.n_finished == 12
    xs = {t.params["x"] for t in study.trials}
    assert len(xs) == 12  # the free params still differ; only group_by values are shared within a block


def test_an_error_fails_only_its_group_and_oom_groups_are_split():
    calls: list[int] = []

    def objective(trials: list[Trial]) -> list[object]:
        calls.append(len(trials))
        if trials[0].params["units"] == 16:
            raise ValueError("no small models today")
        if len(trials) > 1:
            raise OutOfMemoryError("CUDA out of memory (test)")
        return [1.0]

    study = make()
    study.optimize(objective, trials=12, batch=6, group_by=["units"], show=False)
    by_units = {u: {t.state for t in study.trials if t.params["units"] == u} for u in (16, 32)}
    assert by_units[16] == {TrialState.FAILED} and by_units[32] == {TrialState.COMPLETE}
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert all("ValueError" in (t.reason or "") for t in failed)
    assert study.n_finished == 12 and 1 in calls and max(calls) <= 6


def test_exception_entries_fail_single_trials_and_stop_interrupts():
    def objective(trials: list[Trial]) -> list[object]:
        return [ValueError("bad point") if t.params["x"] < 0 else t.params["x"] for t in trials]

    study = make()
    study.optimize(objective, trials=8, batch=8, show=False)
    for trial in study.trials:
        assert trial.state is (TrialState.FAILED if trial.params["x"] < 0 else TrialState.COMPLETE)

    def stopping(trials: list[Trial]) -> list[object]:
        study2.stop()
        for trial in trials:
            trial.report(0, value=1.0)
            assert trial.should_stop()
        return [1.0 for _ in trials]

    study2 = make("b2")
    study2.optimize(stopping, trials=8, batch=3, show=False)
    assert {t.state for t in study2.trials} == {TrialState.INTERRUPTED} and len(study2.trials) == 3


def test_batch_is_validated_and_not_for_dask():
    study = make()
    with pytest.raises(ValueError, match="batch"):
        study.optimize(lambda ts: [1.0] * len(ts), trials=2, batch=0, show=False)
    with pytest.raises(ValueError, match="thread runner"):
        study.optimize(lambda ts: [1.0] * len(ts), trials=2, batch=2, runner="dask", show=False)
