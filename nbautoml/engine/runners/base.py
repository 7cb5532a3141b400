"""What a runner is made of: an executor that runs trials, behind a protocol, driven by the study loop.

The loop (:class:`~nbautoml.engine.runners.thread.ThreadRunner`) talks to the study only through the public
:class:`~nbautoml.engine.trialbook.TrialBook` contract, and hands each trial to an :class:`Executor`. A new
place to run trials (a process pool, a queue, a cluster) is one module with one class implementing
:class:`Executor`, passed as ``study.optimize(objective, runner=MyExecutor(...))``; the loop's budget, timeout,
stop, re-runs, failures and events come with it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nbautoml.engine.trial import Trial
from nbautoml.engine.values import Outcome

if TYPE_CHECKING:
    from nbautoml.engine.trialbook import TrialBook

__all__ = ["BatchObjective", "Executor", "GroupExecutor", "Objective"]

Objective = Callable[[Trial], Any]
BatchObjective = Callable[[list[Trial]], Sequence[Any]]


@runtime_checkable
class Executor(Protocol):
    """Runs one trial at a time per call; the returned future resolves to the trial's outcome, never raises.

    The trial's reports reach the study through ``trial.report`` (in-process) or by calling
    ``book.on_report`` on the driver (remote executors); ``book.stopping`` and ``trial.pruned`` say when a
    running trial should stop.
    """

    def submit(self, book: TrialBook, objective: Objective, trial: Trial) -> Future[Outcome]: ...

    def shutdown(self) -> None:
        """Wait for what runs and release the executor's resources (the loop calls it once, at the end)."""
        ...


class GroupExecutor(Protocol):
    """Runs a group of trials as one task (a batch objective): one future per trial, in the group's order."""

    def submit_group(
        self, book: TrialBook, objective: BatchObjective, trials: list[Trial]
    ) -> list[Future[Outcome]]: ...

    def shutdown(self) -> None: ...
