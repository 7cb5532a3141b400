from __future__ import annotations

import _thread
import math
import signal
import threading
import time

import pytest

import nbautoml as na
from nbautoml.engine.direction import default_mode
from nbautoml.engine.study import StudyState
from nbautoml.engine.trial import TrialState
from nbautoml.events import StudyFinished, StudyStarted, StudyStateChanged, TrialFinished, TrialReported, TrialStarted

SPACE = na.Space(x=na.Real(-2.0, 2.0), n=na.Int(1, 4), c=na.Choice(["a", "b"]))


def quadratic(trial):
    return (trial.params["x"] - 0.5) ** 2 + 0.1 * trial.params["n"]


def make(name="s", **options):
    options.setdefault("sampler", "random")
    options.setdefault("storage", ":memory:")
    options.setdefault("seed", 0)
    return na.Study(name, SPACE, **options)


def test_name_is_required():
    with pytest.raises(ValueError, match="name"):
        na.Study("", SPACE)


def test_budget_is_the_total_of_finished_trials():
    study = make()
    study.optimize(quadratic, trials=5)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert study.state is StudyState.FINISHED and study.n_finished == 5
    study.optimize(quadratic, trials=8)
    assert study.n_finished == 8 and [t.number for t in study.trials] == list(range(8))
    study.optimize(quadratic, trials=8)
    assert study.n_finished == 8
    assert study.message.startswith("nothing to run: 8 of 8 trials already finished")


def test_best_trial_and_dataframe():
    study = make()
    study.optimize(quadratic, trials=6)
    best = study.best_trial
    assert best is not None and best.value == min(t.value for t in study.trials)
    assert study.best_params == best.params
    frame = study.trials_dataframe()
    assert list(frame["number"]) == list(range(6))
    assert {"state", "value", "reason", "params_x", "params_n", "params_c"} <= set(frame.columns)


def test_mode_max_and_default_modes():
    assert default_mode("val_acc") == "max" and default_mode("val_r2") == "max" and default_mode("AUC") == "max"
    assert default_mode("val_loss") == "min" and default_mode("value") == "min"
    study = make(metric="val_acc")
    assert study.mode == "max"
    study.optimize(lambda t: {"val_acc": t.params["x"]}, trials=6)
    assert study.best_value == max(t.value for t in study.trials)


def test_timeout_lets_running_trials_finish():
    study = make()

    def slow(trial):
        time.sleep(0.3)
        return 1.0

    start = time.time()
    study.optimize(slow, timeout=0.5)
    assert time.time() - start < 3
    assert study.message.startswith("timeout reached")
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    assert 1 <= study.n_finished <= 3


def test_parallel_runs_trials_at_once():
    study = make()
    lock, active, peak = threading.Lock(), [0], [0]

    def objective(trial):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        return trial.params["x"]

    study.optimize(objective, trials=9, parallel=3)
    assert study.n_finished == 9 and peak[0] == 3
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 9


def test_failures_and_invalid_values_are_recorded_and_the_study_goes_on():
    study = make()
    outcomes = iter([ValueError("bad"), math.nan, math.inf, None, "text", 1.0, 2.0])

    def objective(trial):
        item = next(outcomes)
        if isinstance(item, Exception):
            raise item
        return item

    study.optimize(objective, trials=7)
    reasons = [t.reason for t in study.trials]
    assert reasons[:5] == [
        "exception: ValueError: bad",
        "invalid value: nan",
        "invalid value: inf",
        "no value: returned None and reported no finite 'value'",
        "invalid value: str '0.5'".replace("'0.5'", "'text'"),
    ]
    assert [t.state for t in study.trials][-2:] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.n_finished == 7 and study.best_value == 1.0


def test_max_failures_stops_with_a_clear_message():
    study = make(max_failures=3)

    def broken(trial):
        raise RuntimeError("no GPU here")

    study.optimize(broken, trials=20)
    assert study.n_finished == 3 and study.state is StudyState.STOPPED
    assert "3 failed trials in a row" in study.message and "no GPU here" in study.message
    assert study.trials[0].traceback and "RuntimeError" in study.trials[0].traceback


def cooperative(trial, started=None, steps=50, delay=0.02):
    for step in range(trial.resume_step, steps):
        if started is not None:
            started.set()
        time.sleep(delay)
        trial.report(step, value=1.0 / (step + 1))
        if trial.should_stop():
            return None
    return 1.0 / steps


def test_stop_from_another_thread_then_resume_reruns_the_interrupted_trial():
    study = make()
    started = threading.Event()
    study.optimize(lambda t: cooperative(t, started), trials=3, background=True)
    assert started.wait(120)
    time.sleep(0.1)
    study.stop()
    assert study.state in (StudyState.STOPPING, StudyState.STOPPED)
    assert study.wait(10)
    assert study.state is StudyState.STOPPED
    interrupted = [t for t in study.trials if t.state is TrialState.INTERRUPTED]
    assert len(interrupted) == 1 and interrupted[0].reason.startswith("stopped after step")
    old = interrupted[0]
    study.optimize(lambda t: cooperative(t, delay=0.0), trials=3)
    rerun = [t for t in study.trials if t.resumed_from == old.number]
    assert len(rerun) == 1 and rerun[0].params == old.params and rerun[0].state is TrialState.COMPLETE
    assert study.n_finished == 3


def test_keyboard_interrupt_while_waiting_stops_the_search():
    study = make()
    started = threading.Event()

    def interrupt_soon():
        assert started.wait(120)  # a fresh venv's first imports can take seconds on a loaded machine
        time.sleep(0.1)
        _thread.interrupt_main()

    # Python's own SIGINT handler, as a kernel or an interactive session has it: a process started in the
    # background (`cmd &` in a script) inherits SIGINT ignored, and interrupt_main() then does nothing at all.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_soon, daemon=True).start()
        study.optimize(lambda t: cooperative(t, started), trials=5)  # returns instead of raising
    finally:
        signal.signal(signal.SIGINT, previous)
    assert study.state is StudyState.STOPPED
    assert [t.state for t in study.trials] == [TrialState.INTERRUPTED]


def test_pruned_trials_are_pruned_and_never_rerun():
    study = make(scheduler=na.ASHA(min_steps=1, reduction_factor=3))

    def curve(trial):
        base = abs(trial.params["x"]) + 0.1
        for step in range(9):
            trial.report(step, value=base / (step + 1))
            if trial.should_stop():
                break
        return None

    study.optimize(curve, trials=12)
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert pruned and all(t.reason.startswith("pruned: rung ") for t in pruned)
    assert all(len(t.reports) < 9 for t in pruned)
    study.optimize(curve, trials=14)
    assert not any(t.resumed_from is not None for t in study.trials)


def test_events_arrive_in_order():
    study = make()
    seen = []
    study.events.subscribe(seen.append)

    def objective(trial):
        trial.report(0, value=1.0)
        return 1.0

    study.optimize(objective, trials=2)
    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "StudyStateChanged", "StudyStarted",
        "TrialStarted", "TrialReported", "TrialFinished",
        "TrialStarted", "TrialReported", "TrialFinished",
        "StudyStateChanged", "StudyFinished",
    ]
    assert [e.state for e in seen if isinstance(e, StudyStateChanged)] == ["RUNNING", "FINISHED"]
    assert isinstance(seen[1], StudyStarted) and seen[1].budget == 2
    assert isinstance(seen[-1], StudyFinished) and seen[-1].reason == "budget"
    assert [e.number for e in seen if isinstance(e, (TrialStarted, TrialReported, TrialFinished))] == [0, 0, 0, 1, 1, 1]


def test_current_trial_is_set_inside_the_objective():
    study = make()
    seen = []
    study.optimize(lambda t: seen.append(na.current_trial() is t) or 0.0, trials=2)
    assert seen == [True, True] and na.current_trial() is None


def test_bad_arguments():
    study = make()
    with pytest.raises(ValueError, match="trials"):
        study.optimize(quadratic, trials=-1)
    with pytest.raises(ValueError, match="parallel"):
        study.optimize(quadratic, trials=1, parallel=0)
    with pytest.raises(ValueError, match="mode"):
        na.Study("m", SPACE, mode="up")
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        na.Study("m2", SPACE, sampler="nope", storage=":memory:").optimize(quadratic, trials=1)
