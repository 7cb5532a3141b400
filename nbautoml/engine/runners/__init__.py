"""Runners execute a study's trials: ``"thread"`` (in this process, the default) or ``"dask"`` (scale-out)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from nbautoml.engine.study import Study
    from nbautoml.engine.trial import Trial

__all__ = ["start"]


def start(
    study: Study,
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

    executor: Any
    if batch is not None:  # a batch objective: groups of trials per task (runners/batch.py)
        if runner not in ("thread", None):
            raise ValueError("batch= runs on the thread runner; use runner='thread'")
        from nbautoml.engine.runners.batch import BatchExecutor, BatchRunner

        batch_objective: Any = objective  # list[Trial] -> list[value]
        batch_loop = BatchRunner(study, batch_objective, BatchExecutor(parallel, study.name), trials=trials,
                                 timeout=timeout, parallel=parallel, batch=batch, group_by=group_by)
        thread = threading.Thread(target=batch_loop.run, name=f"nbautoml-{study.name}", daemon=True)
        thread.start()
        return thread
    if runner in ("thread", None):
        executor = TrialExecutor(parallel, study.name)
    elif runner == "dask" or hasattr(runner, "submit") or (isinstance(runner, str) and "://" in runner):
        from nbautoml.engine.runners.dask import DaskExecutor

        executor = DaskExecutor(runner, parallel, study)
    else:
        raise ValueError(f"unknown runner {runner!r}; use 'thread', 'dask', a distributed.Client or an address")
    one_trial = cast("Callable[[Trial], Any]", objective)
    loop = ThreadRunner(study, one_trial, executor, trials=trials, timeout=timeout, parallel=parallel)
    thread = threading.Thread(target=loop.run, name=f"nbautoml-{study.name}", daemon=True)
    thread.start()
    return thread
