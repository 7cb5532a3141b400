"""The trial bookkeeping a Study keeps: its trials, their records, and what the runners call back.

Split from :mod:`nbautoml.engine.study` to keep each file readable: :class:`TrialBook` holds the parts that
turn events of a trial's life (started, reported, finished, re-run, seen from another writer) into journal
records and in-memory state; :class:`~nbautoml.engine.study.Study` adds opening, the space, and running.
Runners and front ends use only the public names; the underscored methods are the runners' contract.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbautoml.engine.samplers.base import Sampler
from nbautoml.engine.schedulers import Scheduler
from nbautoml.engine.storage.base import Storage
from nbautoml.engine.storage.records import Replayed, make_record, replay, rerun_candidates
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.engine.values import Outcome
from nbautoml.events import EventBus, TrialReported
from nbautoml.space import Space

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrialBook", "owner"]

_PROCESS_TOKEN = uuid.uuid4().hex[:12]


def owner() -> dict[str, Any]:
    """Who runs trials in this process (journaled with each trial; dead owners' trials get INTERRUPTED)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": _PROCESS_TOKEN}


class TrialBook:
    """Trials, their records and the TrialHost side of a study (see the module docstring)."""

    name: str
    metric: str
    mode: str
    events: EventBus
    storage: Storage
    scheduler: Scheduler | None
    keep_checkpoints: int | None
    _lock: threading.RLock
    _stop: threading.Event
    _log: Replayed
    _trials: dict[int, Trial]
    _sampler: Sampler | None

    @property
    def space(self) -> Space | None:
        return self._log.space

    @property
    def space_version(self) -> int:
        return max(0, len(self._log.spaces) - 1)

    @property
    def checkpoint_root(self) -> Path:
        return self.storage.checkpoint_root(self.name)

    def _adopt(self, trial: Trial) -> None:
        trial.study_name, trial.metric, trial.mode, trial.host = self.name, self.metric, self.mode, self
        root = self.checkpoint_root / f"trial-{trial.number}"
        trial.checkpoint_dir = root

    def _interrupt_dead_owners(self) -> None:
        for number, owner in list(self._log.owners.items()):
            trial = self._trials.get(number)
            if trial is None or trial.state is not TrialState.RUNNING:
                continue
            if owner.get("token") == _PROCESS_TOKEN or self.storage.owner_alive(owner):
                continue
            step = trial.last_step
            reason = f"its process died (pid {owner.get('pid')} on {owner.get('host')})"
            reason += f" after step {step}" if step is not None else " before its first report"
            self._record_finish(trial, Outcome(TrialState.INTERRUPTED, reason=reason))

    def _feed_scheduler(self) -> None:
        if self.scheduler is None:
            return
        sign = self._sign
        for trial in sorted(self._trials.values(), key=lambda t: t.number):
            if trial.state is TrialState.INTERRUPTED:
                continue
            for report in trial.reports:
                if self.metric in report.metrics and (trial.resumed_from is None or report.step >= trial.resume_step):
                    self.scheduler.on_report(trial.number, report.step, sign * report.metrics[self.metric])

    def history_in_space(self, space: Space | None = None) -> list[Trial]:
        """Finished trials whose params lie inside ``space`` (the current one): what the sampler learns from."""
        space = space if space is not None else self.space
        if space is None:
            return []
        return [t for t in self.trials if t.state.finished and space.project(t.params) is not None]

    @property
    def _sign(self) -> float:
        return -1.0 if self.mode == "max" else 1.0

    def _loss(self, trial: Trial) -> float | None:
        """What the sampler minimises for a finished trial (None for failed: see each sampler's policy)."""
        if trial.state is TrialState.FAILED or trial.value is None or not math.isfinite(trial.value):
            return None
        return self._sign * trial.value

    @property
    def trials(self) -> list[Trial]:
        with self._lock:
            return [self._trials[n] for n in sorted(self._trials)]

    @property
    def n_finished(self) -> int:
        with self._lock:
            return sum(1 for t in self._trials.values() if t.state.finished)

    @property
    def best_trial(self) -> Trial | None:
        complete = [t for t in self.trials if t.state is TrialState.COMPLETE and t.value is not None]
        if not complete:
            return None
        return min(complete, key=lambda t: self._sign * float(t.value))  # type: ignore[arg-type]

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return best.value if best is not None else None

    @property
    def best_params(self) -> dict[str, Any] | None:
        best = self.best_trial
        return dict(best.params) if best is not None else None

    def trials_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for trial in self.trials:
            row: dict[str, Any] = {
                "number": trial.number,
                "state": trial.state.value,
                "value": trial.value,
                "reason": trial.reason,
                "duration": trial.duration,
                "steps": len(trial.reports),
                "resumed_from": trial.resumed_from,
                "space_version": trial.space_version,
            }
            row.update({f"params_{k}": v for k, v in trial.params.items()})
            row.update({f"metrics_{k}": v for k, v in trial.metrics.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None:
        self.storage.append(make_record("report", number=trial.number, step=step, metrics=metrics))
        if self._stop.is_set():
            trial.stop_seen = True  # "becomes INTERRUPTED at its next report" (DESIGN.md Stopping)
        if self.scheduler is not None and self.metric in metrics and not trial.pruned:
            with self._lock:
                prune = self.scheduler.on_report(trial.number, step, self._sign * metrics[self.metric])
            if prune:
                trial.pruned = True
        self.events.emit(TrialReported(self.name, number=trial.number, step=step, metrics=dict(metrics)))

    def stop_requested(self, trial: Trial) -> bool:
        return self._stop.is_set()

    def _new_trial(self, params: Mapping[str, Any], rerun_of: Trial | None = None) -> Trial:
        resume_step = 0
        if rerun_of is not None:
            old_dir = rerun_of.checkpoint_dir
            has_checkpoint = old_dir is not None and old_dir.is_dir() and any(old_dir.iterdir())
            if has_checkpoint and rerun_of.last_step is not None:
                resume_step = rerun_of.last_step + 1

        def make(number: int) -> dict[str, Any]:
            return make_record(
                "trial", number=number, params=dict(params), space_version=self.space_version,
                resumed_from=rerun_of.number if rerun_of is not None else None,
                resume_step=resume_step, owner=owner(),
            )

        with self._lock:
            record = self.storage.append_trial(make)
            replay([record], into=self._log)
            trial = self._trials[record["number"]]
            self._adopt(trial)
        assert trial.checkpoint_dir is not None
        if rerun_of is not None and rerun_of.checkpoint_dir is not None and rerun_of.checkpoint_dir.is_dir():
            trial.checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(trial.checkpoint_dir, ignore_errors=True)
            os.replace(rerun_of.checkpoint_dir, trial.checkpoint_dir)
            if self.scheduler is not None:
                self.scheduler.forget(rerun_of.number)
        trial.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        trial.started_at = time.time()
        return trial

    def _record_finish(self, trial: Trial, outcome: Outcome) -> None:
        with self._lock:
            self.storage.append(
                make_record(
                    "finish", number=trial.number, state=outcome.state.value, value=outcome.value,
                    reason=outcome.reason, metrics=outcome.metrics,
                )
            )
            trial.state, trial.value, trial.reason = outcome.state, outcome.value, outcome.reason
            trial.metrics = dict(outcome.metrics)
            trial.traceback = outcome.traceback
            trial.finished_at = time.time()
            self._log.owners.pop(trial.number, None)

    def _tell(self, trial: Trial) -> None:
        """Tell the sampler a finished trial (a sampler rebuilt later reads it from the history instead)."""
        with self._lock:
            sampler, space = self._sampler, self.space
            if sampler is None or space is None or not trial.state.finished:
                return
            params = space.project(trial.params)
            if params is None:
                return
            loss = self._loss(trial)
        sampler.tell(params, loss)

    def _sync(self) -> None:
        """Take in what other writers (another kernel, another process) appended to the same journal."""
        new = self.storage.read_new()
        if not new:
            return
        with self._lock:
            known = set(self._trials)
            done_before = {n for n, t in self._trials.items() if t.state.finished}
            versions = len(self._log.spaces)
            replay(new, into=self._log)
            for number in set(self._trials) - known:
                self._adopt(self._trials[number])
            if len(self._log.spaces) != versions:
                self._sampler = None
            fresh = [t for n, t in self._trials.items() if t.state.finished and n not in done_before]
        for trial in fresh:
            self._tell(trial)

    def _reruns(self) -> list[Trial]:
        with self._lock:
            space = self.space
            return [t for t in rerun_candidates(self._trials) if space is None or space.project(t.params) is not None]

    def _prune_checkpoints(self) -> None:
        """Keep the checkpoints of the top ``keep_checkpoints`` trials and of INTERRUPTED ones (for resume)."""
        if self.keep_checkpoints is None:
            return
        ranked = sorted(
            (t for t in self.trials if t.state is TrialState.COMPLETE and t.value is not None),
            key=lambda t: self._sign * float(t.value),  # type: ignore[arg-type]
        )
        keep = {t.number for t in ranked[: self.keep_checkpoints]}
        for trial in self.trials:
            if trial.state.finished and trial.number not in keep and trial.checkpoint_dir is not None:
                shutil.rmtree(trial.checkpoint_dir, ignore_errors=True)
