"""Study: a named search — its space, its trials, the ask → run → tell loop, stop and resume.

All state is derived from the storage's records (:mod:`nbautoml.engine.storage.records`): opening a study whose
journal exists replays it, so resuming after a stop, a kernel restart or ``kill -9`` is the same code path as
continuing in the same kernel. The loop runs on one worker thread (:mod:`nbautoml.engine.runners.thread`); the
caller's thread only waits, so the kernel's interrupt can stop a blocking search cleanly.

Reopening with another sampler, seed or scheduler is allowed and recorded; another space becomes a new space
version whose history is reused where it lies inside; another metric or mode is refused.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nbautoml.engine.durations import seconds
from nbautoml.engine.objectives import Objectives
from nbautoml.engine.registry import journal_name, make_scheduler
from nbautoml.engine.runners import start
from nbautoml.engine.samplers.base import Sampler
from nbautoml.engine.schedulers import Scheduler
from nbautoml.engine.schedulers.replay import Replay, replay_trials
from nbautoml.engine.storage import open_storage
from nbautoml.engine.storage.base import Storage
from nbautoml.engine.storage.records import make_record, replay
from nbautoml.engine.trial import Trial
from nbautoml.engine.trialbook import StudyState, TrialBook
from nbautoml.events import SpaceChanged, StopRequested
from nbautoml.space import Space, SpaceDiff, SpaceError

__all__ = ["Study", "StudyState", "set_frontend"]

log = logging.getLogger(__name__)

def _one(items: list[str]) -> str | list[str]:
    """A one-element list as its element (so messages about one objective read as they always did)."""
    return items[0] if len(items) == 1 else items


FrontendFactory = Callable[["Study", bool], Any]
_frontend: FrontendFactory | None = None


def set_frontend(factory: FrontendFactory | None) -> FrontendFactory | None:
    """Register what draws a study when ``optimize(show=True)`` starts; returns the previous one."""
    global _frontend
    previous, _frontend = _frontend, factory
    return previous


def get_frontend() -> FrontendFactory | None:
    return _frontend


class Study(TrialBook):
    """A named, resumable search. See docs/ENGINE_API.md for the whole surface."""

    def __init__(
        self,
        name: str,
        space: Space | None = None,
        *,
        metric: str | Sequence[str] | None = None,
        mode: str | Sequence[str] | None = None,
        constraints: Sequence[str] | None = None,
        sampler: str | Sampler | None = None,
        scheduler: str | Scheduler | Mapping[str, Any] | None = None,
        storage: str | os.PathLike[str] | Storage = "auto",
        seed: int | None = None,
        fresh: bool = False,
        max_failures: int = 10,
        keep_checkpoints: int | None = 5,
        sampler_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("Study(name=...) is required: a non-empty string names the study and its journal")
        if space is not None and not isinstance(space, Space):
            raise TypeError(f"space must be a nbautoml.Space, got {type(space).__name__}")
        given = Objectives.resolve(metric, mode, constraints)  # validated before anything is read or written
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        sampler_name = journal_name(sampler) if sampler is not None else None  # refused before anything is written
        scheduler_obj = make_scheduler(scheduler)
        opened = open_storage(storage, name)
        if fresh:  # moved aside unread: a journal too damaged to read can still be started over
            where = opened.archive()
            if where is not None:
                log.info("study %r: starting fresh; the old one was moved to %s", name, where)
        records = opened.read()
        super().__init__(name, opened, replay(records), max_failures=max_failures,
                         keep_checkpoints=keep_checkpoints, sampler_options=sampler_options)
        self.space_note = ""
        self.frontend: Any = None
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        if sampler is not None and not isinstance(sampler, str):
            self._sampler_instance = sampler
        self._open(space, given, (metric, mode, constraints), sampler_name, scheduler, scheduler_obj, seed)

    # ---- opening / replaying ---------------------------------------------------------------------------
    def _open(
        self,
        space: Space | None,
        given: Objectives,
        asked: tuple[Any, Any, Any],
        sampler_name: str | None,
        scheduler: str | Scheduler | Mapping[str, Any] | None,
        scheduler_obj: Scheduler | None,
        seed: int | None,
    ) -> None:
        meta = self._replayed.meta
        scheduler_json = scheduler_obj.to_json() if scheduler_obj is not None else None
        if meta is None:  # created under the storage's lock, unless another writer just created it
            record, before = self.storage.append_next(lambda tail: None if tail.study is not None else make_record(
                "study", name=self.name, **given.to_json(), sampler=sampler_name or "bayes", seed=seed,
                scheduler=scheduler_json,
            ))
            replay(before, into=self._replayed)
            meta = self._replayed.meta
        if meta is None:
            assert record is not None
            self.objectives = given
            self.metric, self.mode = given.metrics[0], given.modes[0]
            self.sampler_name, self.seed = record["sampler"], seed
            replay([record], into=self._replayed)
        else:
            stored = Objectives.resolve(meta["metric"], meta["mode"], meta.get("constraints"))
            self.objectives = stored
            self.metric, self.mode = stored.metrics[0], stored.modes[0]
            for label, was_given, wanted, had in (
                ("metric", asked[0] is not None, list(given.metrics), list(stored.metrics)),
                ("mode", asked[1] is not None, list(given.modes), list(stored.modes)),
                ("constraints", bool(asked[2]), [c.text for c in given.constraints],
                 [c.text for c in stored.constraints]),
            ):
                if was_given and wanted != had:
                    raise ValueError(
                        f"study {self.name!r} optimises {label}={_one(had)!r}, not {_one(wanted)!r}: its history "
                        f"cannot be compared; use fresh=True (the old journal is kept aside) or another name"
                    )
            settings = self._replayed.settings
            changes: dict[str, Any] = {}
            if sampler_name is not None and sampler_name != settings.get("sampler"):
                changes["sampler"] = sampler_name
            if seed is not None and seed != settings.get("seed"):
                changes["seed"] = seed
            if scheduler is not None and scheduler_json != settings.get("scheduler"):
                changes["scheduler"] = scheduler_json
            if changes:
                self.storage.append(make_record("settings", **changes))
                settings.update(changes)
            self.sampler_name = str(settings.get("sampler") or "bayes")
            self.seed = settings.get("seed")
            scheduler_json = settings.get("scheduler")
            if scheduler is None:
                scheduler_obj = make_scheduler(scheduler_json)
        self.scheduler = scheduler_obj
        for trial in self._trials.values():
            self._adopt(trial)
        self._interrupt_dead_owners()
        if space is not None:
            self.set_space(space)
        self._feed_scheduler()

    # ---- the space -------------------------------------------------------------------------------------
    def set_space(self, space: Space) -> SpaceDiff:
        """Make ``space`` the current one; a different space is recorded as a new version (never an error)."""
        if not isinstance(space, Space):
            raise TypeError(f"space must be a nbautoml.Space, got {type(space).__name__}")
        with self._lock:
            current = self.space
            diff = current.diff(space) if current is not None else SpaceDiff(added=tuple(space.names))
            if current is not None and diff.empty:
                return diff
            version = len(self._replayed.spaces)  # the file decides: another writer's version first, then ours
            record, before = self.storage.append_next(lambda tail: None if tail.spaces != version else make_record(
                "space", version=version, space=space.to_json(), diff=diff.to_json()))
            self.take_in(before)
            if record is None:  # another writer added a version meanwhile: compare with it and try again
                return self.set_space(space)
            replay([record], into=self._replayed)
            self._sampler = None  # rebuilt from the history inside the new space at the next ask
        if current is not None:
            reused = len(self.history_in_space(space))
            self.message = f"space version {version}: {diff}; {reused} past trials lie inside and are reused"
            self.space_note = self.message  # kept until a front end shows it (message moves on with the run)
            log.info("study %r: %s", self.name, self.message)
        self.events.emit(SpaceChanged(self.name, version=version, diff=diff.to_json()))
        return diff

    def replay_scheduler(self, scheduler: str | Scheduler | Mapping[str, Any]) -> Replay:
        """Which trials ``scheduler`` would have pruned on this study's recorded curves, and the epochs saved
        (:mod:`nbautoml.engine.schedulers.replay`; pass a name, a JSON spec or a new instance)."""
        made = make_scheduler(scheduler)
        if made is None:
            raise ValueError("replay_scheduler needs a scheduler: a name, a to_json() dict or a new instance")
        return replay_trials(made, self.trials, self.metric, self.mode)

    # ---- views -----------------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        if self._started_at is None:
            return 0.0
        end = self._ended_at if self._ended_at is not None else time.time()
        return end - self._started_at

    def __repr__(self) -> str:
        if self.objectives.multi:
            best = f", pareto={len(self.best_trials)}"
        else:
            best = "" if self.best_value is None else f", best={self.best_value:.6g}"
        return f"Study(name={self.name!r}, state={self.state.value}, trials={self.n_finished}{best})"

    # ---- running ---------------------------------------------------------------------------------------
    def optimize(
        self,
        objective: Callable[[Trial], Any] | Callable[[list[Trial]], Sequence[Any]],
        trials: int | None = None,
        timeout: float | str | None = None,
        parallel: int = 1,
        background: bool = False,
        runner: Any = "thread",
        show: bool = True,
        batch: int | None = None,
        group_by: Sequence[str] | None = None,
    ) -> Study:
        """Run trials until ``trials`` have finished in total (COMPLETE + PRUNED + FAILED) or ``timeout`` s pass.

        Blocking unless ``background=True``; the kernel's interrupt (KeyboardInterrupt) stops a blocking run:
        the running trials see ``should_stop()`` and end INTERRUPTED, to be re-run on resume.
        ``batch=K``: ``objective`` is a batch objective (``list[Trial] -> list[value]``) given up to K trials
        that agree on the ``group_by`` params; ``parallel`` then counts groups (runners/batch.py).
        """
        if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 0):
            raise ValueError(f"trials must be a non-negative integer, got {trials!r}")
        timeout = None if timeout is None else seconds(timeout, "timeout")
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise ValueError(f"parallel must be a positive integer, got {parallel!r}")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ValueError(f"batch must be a positive integer or None, got {batch!r}")
        if self.space is None:
            raise SpaceError(f"study {self.name!r} has no search space: pass space=... to Study")
        with self._lock:
            if not self._done.is_set():
                raise RuntimeError(f"study {self.name!r} is already running; stop() it or wait() first")
            self._stop.clear()
            self._done.clear()
            self._error = None
            self.budget = trials
            self._started_at, self._ended_at = time.time(), None
            self._set_state(StudyState.RUNNING)
        if show and _frontend is not None:
            try:
                self.frontend = _frontend(self, background)
            except Exception:
                log.exception("study %r: the front end failed to start; the search runs without it", self.name)
        try:
            self._thread = start(self, objective, trials=trials, timeout=timeout, parallel=parallel, runner=runner,
                                 batch=batch, group_by=group_by)
        except BaseException:
            self.end_run(StudyState.STOPPED, "the runner failed to start")
            raise
        if not background:
            self._wait_interruptible()
            if self._error is not None:
                raise self._error
        return self

    def _wait_interruptible(self) -> None:
        try:
            while not self._done.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.stop(source="interrupt")
            try:
                while not self._done.wait(0.1):
                    pass
            except KeyboardInterrupt:
                log.warning(
                    "study %r: second interrupt — no longer waiting; running trials finish in the background",
                    self.name,
                )

    def stop(self, source: str = "user") -> None:
        """Ask the search to stop: no new trials start, running ones see ``should_stop()`` and end INTERRUPTED."""
        with self._lock:
            if self._state is not StudyState.RUNNING:
                return
            self._stop.set()
            self.storage.append(make_record("stop", source=source))
            self._set_state(StudyState.STOPPING)
        self.events.emit(StopRequested(self.name, source=source))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background search; True when it has ended."""
        return self._done.wait(timeout)
