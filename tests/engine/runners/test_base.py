"""A runner of one's own is one class implementing the Executor protocol, passed as ``runner=``."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from nbautoml import Int, Space, Study
from nbautoml.engine.runners.base import Executor, Objective
from nbautoml.engine.runners.thread import execute_trial
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.engine.trialbook import TrialBook
from nbautoml.engine.values import Outcome


class OneAtATime:
    """Runs each trial on one thread, counting what it was given (a stand-in for a process pool)."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.submitted: list[int] = []
        self.shut = False

    def submit(self, book: TrialBook, objective: Objective, trial: Trial) -> Future[Outcome]:
        self.submitted.append(trial.number)
        return self.pool.submit(execute_trial, objective, trial, book.metric, book.mode, lambda: book.stopping)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
        self.shut = True


def test_an_executor_of_ones_own_runs_the_study():
    executor = OneAtATime()
    assert isinstance(executor, Executor)
    study = Study("own-executor", Space(x=Int(0, 9)), metric="loss", sampler="random", storage=":memory:", seed=0)

    def objective(trial: Trial) -> float:
        for step in range(3):
            trial.report(step, loss=float(trial.params["x"] + step))
        return float(trial.params["x"])

    study.optimize(objective, trials=4, runner=executor, show=False)
    assert executor.shut and executor.submitted == [t.number for t in study.trials]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert all(len(t.reports) == 3 for t in study.trials)
    assert study.best_value == min(t.params["x"] for t in study.trials)


def test_a_runner_that_is_no_executor_is_refused():
    study = Study("no-executor", Space(x=Int(0, 9)), storage=":memory:")
    with pytest.raises(ValueError, match="unknown runner"):
        study.optimize(lambda trial: 1.0, trials=1, runner=object(), show=False)
