"""Runners execute a study's trials: ``"thread"`` (in this process, the default), ``"dask"`` (scale-out), or
an :class:`~nbautoml.engine.runners.base.Executor` of your own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from nbautoml.engine.runners.base import BatchObjective, Executor, GroupExecutor, Objective
from nbautoml.engine.trial import Trial
from nbautoml.engine.trialbook import TrialBook

__all__ = ["Executor", "GroupExecutor", "start"]


def _is_dask(runner: Any) -> bool:
    """"dask", a scheduler address, or a ``distributed.Client`` (told apart from an Executor by its module)."""
    if isinstance(runner, str):
        return runner == "dask" or "://" in runner
    return type(runner).__module__.split(".")[0] == "distributed"


def start(
    study: TrialBook,
    objective: Callable[[Trial], Any] | Callable[[list[Trial]], Sequence[Any]],
    *,
    trials: int | None,
    timeout: float | None,
    parallel: int,
    runner: Any = "thread",
    batch: int | None = None,
    group_by: Sequence[str] | None = None,
) -> threading.Thread:
    """Start the study's loop on its worker thread and return the thread."""
    from nbautoml.engine.runners.thread import ThreadRunner, TrialExecutor

    loop: ThreadRunner
    if batch is not None:  # a batch objective: groups of trials per task (runners/batch.py)
        if runner not in ("thread", None):
            raise ValueError("batch= runs on the thread runner; use runner='thread'")
        from nbautoml.engine.runners.batch import BatchExecutor, BatchRunner

        loop = BatchRunner(study, cast(BatchObjective, objective), BatchExecutor(parallel, study.name),
                           trials=trials, timeout=timeout, parallel=parallel, batch=batch, group_by=group_by)
    else:
        executor: Executor
        if runner in ("thread", None):
            executor = TrialExecutor(parallel, study.name)
        elif _is_dask(runner):
            from nbautoml.engine.runners.dask import DaskExecutor

            executor = DaskExecutor(runner, parallel, study)
        elif isinstance(runner, Executor):
            executor = runner
        else:
            raise ValueError(f"unknown runner {runner!r}; use 'thread', 'dask', a distributed.Client, an address or "
                             f"an Executor (submit(book, objective, trial) -> Future, shutdown())")
        loop = ThreadRunner(study, cast(Objective, objective), executor, trials=trials, timeout=timeout,
                            parallel=parallel)
    thread = threading.Thread(target=loop.run, name=f"nbautoml-{study.name}", daemon=True)
    thread.start()
    return thread
