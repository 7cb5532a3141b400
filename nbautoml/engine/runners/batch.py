"""Batch objectives: the loop asks K points, groups them by structural params, runs each group as one task.

``study.optimize(objective_batch, batch=K, group_by=[...])`` routes here (docs/ARCHITECTURE.md "Batch objectives"):
``objective_batch(trials: list[Trial]) -> list[value]`` gets trials that agree on every ``group_by`` param
(the ones that change tensor shapes), trains them together (:mod:`nbautoml.torch.fused`), and each trial
reports for itself. One entry per trial, each read by the same "Trial value" rules as a one-trial objective;
an entry that is an exception fails that trial alone.

Why the loop looks like this:

- :class:`BatchRunner` is :class:`~nbautoml.engine.runners.thread.ThreadRunner` with another ``launch``:
  it asks up to ``batch`` points at a time, and only when fewer than ``parallel`` groups are in flight, so
  the sampler sees whole batches (its ``pending`` holds the running ones). Every trial still gets its own
  future, so ``_finish``, the budget, stop, timeout, max_failures and the events are the thread runner's.
- **Out of memory**: a group that raises CUDA OOM (:func:`~nbautoml.engine.values.is_oom`) is run again split
  in half, recursively (:func:`halving`); only a trial that fails alone fails ("oom"). Between attempts the
  exception and its frames are dropped and the CUDA cache emptied (torch is used only if already imported:
  the engine never imports it). Steps a trial reported in a failed attempt are not reported twice when the
  fused trainer re-runs it (it skips steps ``<= trial.last_step``).
- **Any other exception** fails the group's trials (with the traceback) and nothing else.
- **Compatible points**: K points drawn independently rarely share every structural param, so groups would
  hold one trial each. A batch objective with a ``group_size`` attribute (``batch_objective(...,
  group_size=G)`` sets it) asks for blocks: in each block of G freshly asked points, the later ones take the
  ``group_by`` values of the block's first point (the sampler chose those, and every other value). Fewer
  architectures per batch, K / G of them, in exchange for fused groups of G. Re-runs keep their params.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from nbautoml.engine.runners.base import BatchObjective, GroupExecutor
from nbautoml.engine.runners.thread import ThreadRunner
from nbautoml.engine.samplers.base import point_key
from nbautoml.engine.trial import Trial
from nbautoml.engine.trialbook import TrialBook
from nbautoml.engine.values import Outcome, exception_outcome, is_oom, result_outcome, settle

if TYPE_CHECKING:
    import collections

__all__ = ["BatchExecutor", "BatchRunner", "group_trials", "halving", "release_memory", "run_batch"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def release_memory() -> None:
    """Collect garbage and give cached CUDA blocks back, if torch is loaded and CUDA started (never imports)."""
    gc.collect()
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is not None and cuda.is_available() and cuda.is_initialized():
            cuda.empty_cache()
    except Exception:  # a broken driver must not turn cleanup into a failure
        log.debug("emptying the CUDA cache failed", exc_info=True)


def _detach(error: BaseException) -> BaseException:
    """Keep the traceback as text and drop the frames (they may pin GPU tensors)."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    error.__traceback__ = None
    with contextlib.suppress(AttributeError):
        error.nbautoml_traceback = text  # type: ignore[attr-defined]
    return error


def halving(run: Callable[[list[T]], Sequence[Any]], items: Sequence[T],
            done: Callable[[list[T], list[Any]], None] | None = None) -> list[Any]:
    """``run(items)`` with OOM retried on halves; one result or exception per item, in order.

    ``done(chunk, results)`` is called as each chunk settles, so callers can publish results early.
    """
    results: list[Any] = [None] * len(items)
    pending: list[list[int]] = [list(range(len(items)))]
    while pending:
        chunk = pending.pop(0)
        part = [items[i] for i in chunk]
        split = False
        try:
            out = list(run(part))
            if len(out) != len(part):
                raise ValueError(f"the batch objective returned {len(out)} results for {len(part)} trials")
        except Exception as error:
            if is_oom(error) and len(chunk) > 1:
                split = True
                log.info("out of memory with %d trials together; retrying as %d + %d", len(chunk),
                         len(chunk) // 2, len(chunk) - len(chunk) // 2)
            else:
                out = [_detach(error)] * len(part)
            del error
        if split:
            release_memory()  # after the except block: the frames of the failed attempt are gone
            mid = len(chunk) // 2
            pending[0:0] = [chunk[:mid], chunk[mid:]]
            continue
        for i, value in zip(chunk, out, strict=True):
            results[i] = value
        if done is not None:
            done(part, out)
    return results


def run_batch(objective: BatchObjective, trials: list[Trial], metric: str, mode: str,
              user_stopped: Callable[[], bool], deliver: Callable[[Trial, Outcome], None]) -> None:
    """Run one group (halving on OOM) and hand each trial's outcome to ``deliver``; never raises."""

    def settled(chunk: list[Trial], results: list[Any]) -> None:
        for trial, result in zip(chunk, results, strict=True):
            if isinstance(result, BaseException):
                outcome = exception_outcome(result)
                outcome.traceback = getattr(result, "nbautoml_traceback", None)
            else:
                outcome = result_outcome(result, trial, metric, mode)
            deliver(trial, settle(outcome, trial, metric, mode, user_stopped=user_stopped()))

    try:
        halving(objective, trials, settled)
    finally:
        release_memory()


def group_trials(trials: Sequence[Trial], group_by: Sequence[str] | None) -> list[list[Trial]]:
    """Trials that agree on every ``group_by`` param, in first-seen order (all together when None)."""
    if not group_by:
        return [list(trials)] if trials else []
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(point_key({n: trial.params.get(n) for n in group_by}), []).append(trial)
    return list(groups.values())


class BatchExecutor:
    """Runs up to ``parallel`` groups at once on threads; each trial of a group gets its own future."""

    def __init__(self, parallel: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"nbautoml-{name}-batch")

    def submit_group(self, book: TrialBook, objective: BatchObjective, trials: list[Trial]) -> list[Future[Outcome]]:
        futures: dict[int, Future[Outcome]] = {id(t): Future() for t in trials}

        def deliver(trial: Trial, outcome: Outcome) -> None:
            futures[id(trial)].set_result(outcome)

        def task() -> None:
            try:
                run_batch(objective, trials, book.metric, book.mode, lambda: book.stopping, deliver)
            except BaseException as error:  # run_batch never raises; belt and braces for the waiting loop
                for future in futures.values():
                    if not future.done():
                        future.set_exception(error)

        self._pool.submit(task)
        return [futures[id(t)] for t in trials]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class BatchRunner(ThreadRunner):
    """The study loop for batch objectives (module docstring); ``parallel`` counts groups, not trials."""

    def __init__(self, study: TrialBook, objective: BatchObjective, executor: GroupExecutor, *, trials: int | None,
                 timeout: float | None, parallel: int, batch: int, group_by: Sequence[str] | None) -> None:
        super().__init__(study, objective, executor, trials=trials, timeout=timeout, parallel=parallel)
        self.group_executor = executor
        self.batch = batch
        self.group_by = list(group_by) if group_by else None
        self._group_of: dict[Future[Outcome], int] = {}  # a running trial's group (groups in flight)
        self._groups = 0

    def launch(self, reruns: collections.deque[Trial]) -> str | None:
        in_flight = {self._group_of[f] for f in self.running}
        self._group_of = {f: self._group_of[f] for f in self.running}
        if len(in_flight) >= self.parallel:
            return None
        asked = self.next_points(self.batch, reruns)
        if asked is None:
            return None
        if not asked:
            return "exhausted" if not self.running else None
        size = getattr(self.objective, "group_size", None)
        if self.group_by and isinstance(size, int) and size > 1:
            fresh = [i for i, (_, old) in enumerate(asked) if old is None]
            for n, i in enumerate(fresh):
                anchor = asked[fresh[n - n % size]][0]
                asked[i] = ({**asked[i][0], **{k: anchor[k] for k in self.group_by if k in anchor}}, None)
        started = [self.study.start_trial(params, rerun_of=old) for params, old in asked]
        trials = [trial for trial in started if trial is not None]  # None: the journal's budget is taken
        for group in group_trials(trials, self.group_by):
            self._groups += 1
            futures = self.group_executor.submit_group(self.study, self.objective, group)
            for trial, future in zip(group, futures, strict=True):
                self.running[future] = trial
                self._group_of[future] = self._groups
        return None
