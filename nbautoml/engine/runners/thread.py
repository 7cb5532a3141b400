"""The study loop (ask → run → tell) and the in-process executor that runs trials on threads.

:class:`ThreadRunner` is the loop; it runs on the study's worker thread and is the only place that asks and
tells the sampler, so samplers need no locking. It calls the study only through the public
:class:`~nbautoml.engine.trialbook.TrialBook` contract and hands each trial to an
:class:`~nbautoml.engine.runners.base.Executor`: :class:`TrialExecutor` runs trials on a thread pool in this
process; the Dask runner implements the same protocol on a cluster. The loop does not care which.

Timeout semantics: at the deadline no new trial starts and the running ones finish normally (Optuna's rule), so
a timeout never wastes work. A stop (user, interrupt, ``max_failures``) asks running trials to stop instead.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from nbautoml.engine.runners.base import Executor, GroupExecutor, Objective
from nbautoml.engine.seeding import seeded
from nbautoml.engine.trial import Trial, TrialState, using_trial
from nbautoml.engine.trialbook import StudyState, TrialBook
from nbautoml.engine.values import Outcome, exception_outcome, result_outcome, settle
from nbautoml.events import StudyStarted, TrialQueued

__all__ = ["ThreadRunner", "TrialExecutor", "execute_trial"]

log = logging.getLogger(__name__)


def execute_trial(
    objective: Objective, trial: Trial, metric: str, mode: str, user_stopped: Callable[[], bool]
) -> Outcome:
    """Run one trial with it as the current trial; never raises (the outcome says what happened)."""
    with using_trial(trial), seeded(trial):
        try:
            result = objective(trial)
        except Exception as error:
            outcome = exception_outcome(error)
            outcome.traceback = traceback.format_exc()
        else:
            outcome = result_outcome(result, trial, metric, mode)
    return settle(outcome, trial, metric, mode, user_stopped=user_stopped())


class TrialExecutor:
    """Runs up to ``parallel`` trials at once on threads of this process."""

    def __init__(self, parallel: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"nbautoml-{name}-trial")

    def submit(self, book: TrialBook, objective: Objective, trial: Trial) -> Future[Outcome]:
        return self._pool.submit(execute_trial, objective, trial, book.metric, book.mode, lambda: book.stopping)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class ThreadRunner:
    """The ask → run → tell loop of one ``optimize`` run (the module docstring says how it ends)."""

    def __init__(
        self,
        study: TrialBook,
        objective: Any,
        executor: Executor | GroupExecutor,
        *,
        trials: int | None,
        timeout: float | None,
        parallel: int,
    ) -> None:
        self.study = study
        self.objective = objective
        self.executor = executor
        self.budget = trials
        self.timeout = timeout
        self.parallel = parallel
        self.running: dict[Future[Outcome], Trial] = {}
        self.reruns: collections.deque[Trial] = collections.deque()
        self.consecutive_failures = 0
        self.last_failure: str | None = None

    def run(self) -> None:
        study = self.study
        study.events.emit(StudyStarted(study.name, budget=self.budget, timeout=self.timeout, finished=study.n_finished))
        error: BaseException | None = None
        try:
            reason = self._loop()
        except BaseException as caught:  # a bug in the loop: report it, never hang the waiting caller
            log.exception("study %r: the search loop failed", study.name)
            reason, error = f"error: {type(caught).__name__}: {caught}", caught
            study.stop_trials()
            self._drain()
        finally:
            try:
                self.executor.shutdown()
            except Exception:
                log.exception("study %r: shutting the executor down failed", study.name)
        message = self._message(reason)
        stopped = reason in ("stopped", "max_failures") or error is not None
        study.end_run(StudyState.STOPPED if stopped else StudyState.FINISHED, message, reason=reason, error=error)

    def _message(self, reason: str) -> str:
        study, done = self.study, self.study.n_finished
        budget = "" if self.budget is None else f" of {self.budget}"
        if reason == "nothing to do":
            return (
                f"nothing to run: {done}{budget} trials already finished; ask for more with trials=N (N > {done})"
            )
        if reason == "max_failures":
            return f"stopped after {study.max_failures} failed trials in a row; last: {self.last_failure}"
        labels = {
            "budget": "budget reached",
            "timeout": "timeout reached",
            "stopped": "stopped",
            "exhausted": "the sampler has no new points (search space exhausted)",
        }
        return f"{labels.get(reason, reason)}: {done}{budget} trials finished"

    def _loop(self) -> str:
        study = self.study
        if self.budget is not None and study.n_finished >= self.budget:
            return "nothing to do"
        deadline = None if self.timeout is None else time.time() + self.timeout
        reruns = self.reruns
        reruns.extend(study.reruns())
        for old in reruns:
            study.events.emit(TrialQueued(study.name, number=-1, params=dict(old.params), resumed_from=old.number))
        reason: str | None = None
        while True:
            study.sync()
            if reason is None:
                if study.stopping:
                    reason = "stopped"
                elif deadline is not None and time.time() >= deadline:
                    reason = "timeout"
                elif self.budget is not None and study.n_finished >= self.budget:
                    reason = "budget"
            if reason is None:
                reason = self.launch(reruns)
            if not self.running:
                return reason or "budget"
            wait_for = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.time()))
            done, _ = wait(list(self.running), timeout=wait_for, return_when=FIRST_COMPLETED)
            for future in done:
                self._finish(future)
            if reason is None and self.consecutive_failures >= study.max_failures:
                reason = "max_failures"
                study.stop_trials()

    def launch(self, reruns: collections.deque[Trial]) -> str | None:
        """Start trials into free slots; a reason to end when nothing more can start."""
        asked = self.next_points(self.parallel - len(self.running), reruns)
        if asked is None:
            return None
        if not asked:
            return "exhausted" if not self.running else None
        assert isinstance(self.executor, Executor)
        for params, old in asked:
            trial = self.study.start_trial(params, rerun_of=old)
            if trial is None:  # the journal says the budget is taken (other writers) or the re-run runs elsewhere
                continue
            self.running[self.executor.submit(self.study, self.objective, trial)] = trial
        return None

    def next_points(
        self, room: int, reruns: collections.deque[Trial]
    ) -> list[tuple[dict[str, Any], Trial | None]] | None:
        """Up to ``room`` points (fewer near the budget): interrupted trials to re-run first, then the sampler's
        (told what is running, so it proposes none of it). None when there is no room; [] when exhausted."""
        if self.budget is not None:
            room = min(room, self.budget - self.study.n_finished - len(self.running))
        if room <= 0:
            return None
        asked: list[tuple[dict[str, Any], Trial | None]] = []
        while reruns and len(asked) < room:
            interrupted = reruns.popleft()
            asked.append((dict(interrupted.params), interrupted))
        if len(asked) < room:
            pending = [t.params for t in self.running.values()] + [p for p, _ in asked]
            asked += [(params, None) for params in self.study.ask(room - len(asked), pending=pending)]
        return asked

    def _finish(self, future: Future[Outcome]) -> None:
        study = self.study
        trial = self.running.pop(future)
        try:
            outcome = future.result()
        except BaseException as error:  # the executor itself failed (a lost Dask worker is handled there)
            outcome = exception_outcome(error)
        study.finish_trial(trial, outcome)
        if outcome.state is TrialState.FAILED:
            self.consecutive_failures += 1
            self.last_failure = f"trial {trial.number}: {outcome.reason}"
            if outcome.traceback:
                log.info("study %r: trial %d failed:\n%s", study.name, trial.number, outcome.traceback)
        elif outcome.state is not TrialState.INTERRUPTED:
            self.consecutive_failures = 0
        if outcome.state is TrialState.INTERRUPTED and not study.stopping:
            # interrupted with no stop asked (a lost Dask worker): re-run it now, as a resume would
            self.reruns.append(trial)
            study.events.emit(TrialQueued(study.name, number=-1, params=dict(trial.params), resumed_from=trial.number))

    def _drain(self) -> None:
        """After a loop error: let running trials see the stop and record how they ended."""
        for future in list(self.running):
            with contextlib.suppress(Exception):
                future.result(timeout=60)
            if future.done():
                try:
                    self._finish(future)
                except Exception:
                    log.exception("study %r: recording a trial after a loop error failed", self.study.name)
