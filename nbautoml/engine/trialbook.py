"""The study's bookkeeping, and the public contract every runner uses.

A :class:`TrialBook` holds what a study knows about its trials (replayed from the storage's records) and turns
the events of a trial's life into journal records, sampler and scheduler calls and events. A runner (the thread
runner, the batch runner, the Dask executor, or a new one) gets a TrialBook and calls only these methods:

- :meth:`TrialBook.sync`: take in what other writers appended (another kernel, another process);
- :meth:`TrialBook.reruns`: INTERRUPTED trials to run again before new points;
- :meth:`TrialBook.ask`: new points from the sampler (told what is pending);
- :meth:`TrialBook.start_trial`: a new RUNNING trial, journaled and announced;
- :meth:`TrialBook.on_report` (the trial does it itself in-process), :meth:`TrialBook.stopping`;
- :meth:`TrialBook.finish_trial`: record the outcome, tell the sampler, announce it;
- :meth:`TrialBook.stop_trials`: the runner's own stop (too many failures, a loop error);
- :meth:`TrialBook.end_run`: the loop is over (state, message, the final event, waiters released).

:class:`~nbautoml.engine.study.Study` is a TrialBook plus opening, the space and ``optimize``; it lives in
another module so that runners import this one, never the study (no import cycle).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbautoml.engine import direction
from nbautoml.engine.objectives import Objectives
from nbautoml.engine.registry import make_sampler, sampler_names
from nbautoml.engine.samplers.base import Sampler
from nbautoml.engine.schedulers import Scheduler
from nbautoml.engine.schedulers.base import explain, set_max_steps
from nbautoml.engine.schedulers.feedback import PrunedValues
from nbautoml.engine.seeding import trial_seed
from nbautoml.engine.storage.base import PROCESS_TOKEN, Storage, Tail, owner
from nbautoml.engine.storage.records import Replayed, make_record, replay, rerun_candidates
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.engine.trialviews import TrialViews
from nbautoml.engine.values import Outcome
from nbautoml.events import EventBus, StudyFinished, StudyStateChanged, TrialFinished, TrialReported, TrialStarted
from nbautoml.space import Space, SpaceError

if TYPE_CHECKING:
    pass

__all__ = ["StudyState", "TrialBook"]

log = logging.getLogger(__name__)


class StudyState(str, enum.Enum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FINISHED = "FINISHED"

    def __str__(self) -> str:
        return self.value


class TrialBook(TrialViews):
    """Trials, their records, and the runner contract of a study (see the module docstring)."""

    def __init__(self, name: str, storage: Storage, replayed: Replayed, *, max_failures: int,
                 keep_checkpoints: int | None, sampler_options: Mapping[str, Any] | None) -> None:
        self.name = name
        self.storage = storage
        self.events = EventBus()
        self.max_failures = max_failures
        self.keep_checkpoints = keep_checkpoints
        self.message = ""
        self.objectives = Objectives.resolve(None, None)  # the study sets its own when it opens
        self.metric = "value"  # the first (usually the only) objective's metric and mode
        self.mode = "min"
        self.seed: int | None = None
        self.sampler_name = "bayes"
        self.scheduler: Scheduler | None = None
        self.budget: int | None = None  # the run's trials=N, claimed under the storage's lock (start_trial)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._done = threading.Event()  # set when a run ends (Thread.join interrupted by ^C can corrupt is_alive)
        self._done.set()
        self._state = StudyState.IDLE
        self._error: BaseException | None = None
        self._ended_at: float | None = None
        self._replayed = replayed  # the state the records describe; the trials below are its own
        self._trials: dict[int, Trial] = replayed.trials
        self._sampler: Sampler | None = None  # for the current space; rebuilt (None) when the space changes
        self._sampler_instance: Sampler | None = None  # a user's instance, used while its space is current
        self._sampler_options = dict(sampler_options or {})

    # ---- run state (the read-only views are in trialviews.py) -------------------------------------
    @property
    def state(self) -> StudyState:
        return self._state

    @property
    def stopping(self) -> bool:
        """A stop was asked (user, interrupt, or the runner's own): no new trials; running ones should stop."""
        return self._stop.is_set()

    # ---- the sampler -----------------------------------------------------------------------------------
    def sampler(self) -> Sampler:
        """The sampler for the current space, told every finished trial that lies inside it (once).

        A user's sampler instance serves while the space it was made for is current; after a space edit the
        study builds its registered sampler (:attr:`sampler_name`) for the new space, so the instance is never
        told the history a second time nor asked for points of a space it does not know.
        """
        with self._lock:
            if self._sampler is None:
                space = self.space
                if space is None:
                    raise SpaceError(f"study {self.name!r} has no search space yet: pass space=...")
                instance, self._sampler_instance = self._sampler_instance, None
                own_space = getattr(instance, "space", space)
                if instance is not None and isinstance(own_space, Space) and own_space.diff(space).empty:
                    sampler = instance
                elif self.sampler_name not in sampler_names():
                    raise ValueError(
                        f"study {self.name!r} was journaled with sampler {self.sampler_name!r}, which is not "
                        f"registered in this process: call nbautoml.register_sampler({self.sampler_name!r}, "
                        f"factory) before running it (registered: {', '.join(sampler_names())})"
                    )
                else:
                    sampler = make_sampler(self.sampler_name, space, seed=self.seed, **self._sampler_options)
                if self.objectives.multi and not getattr(sampler, "multi_objective", False):
                    raise ValueError(
                        f"sampler {self.sampler_name!r} optimises one objective; study {self.name!r} has "
                        f"{len(self.objectives.metrics)} ({', '.join(self.objectives.metrics)}): use "
                        f"sampler='evolution' (NSGA-II), 'parego' (Bayesian) or 'random'"
                    )
                pruned = self._pruned_values()
                observations = [self._observation(sampler, space.project(t.params) or {}, t, pruned)
                                for t in self.history_in_space()]
                if observations:
                    sampler.tell_many(observations)
                self._sampler = sampler
            return self._sampler

    def _loss(self, trial: Trial, pruned: PrunedValues | None = None) -> float | tuple[float, ...] | None:
        """What the sampler minimises for a finished trial (None for failed: see each sampler's policy); a
        pruned trial's is an estimate of its final value (:mod:`nbautoml.engine.schedulers.feedback`); several
        objectives give a tuple (objectives.py)."""
        if self.objectives.multi:
            return self.objectives.loss(trial)
        if trial.state is TrialState.FAILED or trial.value is None or not math.isfinite(trial.value):
            return None
        if trial.state is TrialState.PRUNED:
            return (pruned or self._pruned_values()).loss(trial)
        return direction.loss(trial.value, self.mode)

    def _observation(self, sampler: Sampler, params: dict[str, Any], trial: Trial,
                     pruned: PrunedValues | None = None) -> tuple[Any, ...]:
        """What ``tell`` gets: constraint values go only to samplers that take several objectives / constraints,
        and only when there are some (so a one-objective sampler of one's own keeps its two-argument ``tell``)."""
        if getattr(sampler, "multi_objective", False) and (self.objectives.multi or trial.constraints is not None):
            return (params, self._loss(trial, pruned), trial.constraints)
        return (params, self._loss(trial, pruned))

    def _pruned_values(self) -> PrunedValues:
        return PrunedValues(self.trials, self.metric, direction.sign(self.mode))

    def _tell(self, trial: Trial) -> None:
        """Tell the sampler a finished trial (a sampler rebuilt later reads it from the history instead)."""
        with self._lock:
            sampler, space = self._sampler, self.space
            if sampler is None or space is None or not trial.state.finished:
                return
            params = space.project(trial.params)
            if params is None:
                return
            observation = self._observation(sampler, params, trial)
        sampler.tell(*observation)

    # ---- the runner contract ---------------------------------------------------------------------------
    def sync(self) -> None:
        """Take in what other writers (another kernel, another process) appended to the same journal."""
        self.take_in(self.storage.read_new())

    def take_in(self, new: Sequence[dict[str, Any]]) -> None:
        """Apply records other writers appended (from :meth:`sync` or ahead of one of our own appends)."""
        if not new:
            return
        with self._lock:
            known = set(self._trials)
            done_before = {n for n, t in self._trials.items() if t.state.finished}
            versions = len(self._replayed.spaces)
            replay(list(new), into=self._replayed)
            for number in set(self._trials) - known:
                self._adopt(self._trials[number])
            if len(self._replayed.spaces) != versions:
                self._sampler = None
            fresh = [t for n, t in self._trials.items() if t.state.finished and n not in done_before]
        for trial in fresh:
            self._tell(trial)

    def reruns(self) -> list[Trial]:
        """INTERRUPTED trials (inside the current space) whose re-run has not started yet."""
        with self._lock:
            space = self.space
            return [t for t in rerun_candidates(self._trials) if space is None or space.project(t.params) is not None]

    def ask(self, n: int, pending: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
        """Up to ``n`` new points from the sampler, none of them ``pending``; fewer (or none): exhausted."""
        return self.sampler().ask(n, pending=[dict(p) for p in pending])

    def start_trial(self, params: Mapping[str, Any], rerun_of: Trial | None = None) -> Trial | None:
        """A new RUNNING trial, journaled, and announced before it runs (so TrialStarted precedes its reports).

        A re-run takes over its predecessor's checkpoint folder and resumes after its last reported step.
        None when the journal, read under its lock, says no: :attr:`budget` is taken by the trials finished and
        running in every writer, or another writer already re-runs ``rerun_of``.
        """
        resume_step = 0
        if rerun_of is not None:
            old_dir = rerun_of.checkpoint_dir
            has_checkpoint = old_dir is not None and old_dir.is_dir() and any(old_dir.iterdir())
            if has_checkpoint and rerun_of.last_step is not None:
                resume_step = rerun_of.last_step + 1

        budget = self.budget

        def make(tail: Tail) -> dict[str, Any] | None:
            left = tail.budget_left(budget)
            if (left is not None and left <= 0) or (rerun_of is not None and rerun_of.number in tail.resumed):
                return None
            return make_record(
                "trial", number=tail.next_trial, params=dict(params), space_version=self.space_version,
                resumed_from=rerun_of.number if rerun_of is not None else None,
                resume_step=resume_step, owner=owner(),
            )

        with self._lock:
            record, before = self.storage.append_next(make)
            self.take_in(before)
            if record is None:
                return None
            replay([record], into=self._replayed)
            trial = self._trials[record["number"]]
            self._adopt(trial)
        if rerun_of is not None:
            self._inherit_checkpoint(trial, rerun_of)
        assert trial.checkpoint_dir is not None
        trial.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        trial.started_at = time.time()
        trial.state = TrialState.RUNNING
        self.events.emit(TrialStarted(self.name, number=trial.number, params=dict(trial.params),
                                      resumed_from=trial.resumed_from, resume_step=trial.resume_step))
        return trial

    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None:
        """One step's metrics of a running trial: journaled, shown to the scheduler (which may prune it)."""
        self.storage.append(make_record("report", number=trial.number, step=step, metrics=metrics))
        if self._stop.is_set():
            trial.stop_seen = True  # it becomes INTERRUPTED: the Stopping contract in docs/ARCHITECTURE.md
        if self.scheduler is not None and self.metric in metrics and not trial.pruned:
            with self._lock:
                prune = self.scheduler.on_report(trial.number, step, direction.loss(metrics[self.metric], self.mode))
                decision = explain(self.scheduler, trial.number) if prune else None
            if prune:
                sign = direction.sign(self.mode)
                trial.prune_reason = decision.text(sign, self.metric) if decision is not None else None
                trial.pruned = True
        self.events.emit(TrialReported(self.name, number=trial.number, step=step, metrics=dict(metrics)))

    def on_max_steps(self, trial: Trial, max_steps: int) -> None:
        """The objective said how long its trials run: the scheduler places its rungs from it."""
        if self.scheduler is not None:
            with self._lock:
                set_max_steps(self.scheduler, max_steps)

    def stop_requested(self, trial: Trial) -> bool:
        return self._stop.is_set()

    def finish_trial(self, trial: Trial, outcome: Outcome) -> None:
        """Record how a trial ended, tell the sampler, announce it."""
        self._record_finish(trial, outcome)
        self._tell(trial)
        self.events.emit(
            TrialFinished(
                self.name, number=trial.number, state=trial.state.value, value=trial.value,
                reason=trial.reason, params=dict(trial.params), duration=trial.duration or 0.0,
            )
        )

    def stop_trials(self) -> None:
        """The runner's own stop (``max_failures``, a loop error): running trials see ``should_stop()``.

        Not journaled as a stop (the user did not ask); the run ends STOPPED through :meth:`end_run`.
        """
        self._stop.set()

    def end_run(self, state: StudyState, message: str, *, reason: str | None = None,
                error: BaseException | None = None) -> None:
        """The runner's last act: old checkpoints pruned, the state set, ``StudyFinished(reason)`` emitted (when
        a reason is given: the loop ran), then waiters released (``optimize`` raises ``error`` if any)."""
        with self._lock:
            self._ended_at = time.time()
            self.message = message
            self._error = error
        try:
            self._prune_checkpoints()
        except OSError:
            log.exception("study %r: removing old checkpoints failed", self.name)
        self._set_state(state)
        if reason is not None:
            self.events.emit(StudyFinished(self.name, reason=reason, finished=self.n_finished))
        self._done.set()

    # ---- inside the book -------------------------------------------------------------------------------
    def _set_state(self, state: StudyState) -> None:
        if state is not self._state:
            self._state = state
            self.events.emit(StudyStateChanged(self.name, state=state.value))

    def _adopt(self, trial: Trial) -> None:
        trial.study_name, trial.metric, trial.mode, trial.host = self.name, self.metric, self.mode, self
        trial.checkpoint_dir = self.checkpoint_root / f"trial-{trial.number}"
        continued = self._trials.get(trial.resumed_from) if trial.resumed_from is not None else None
        trial.seed = continued.seed if continued is not None else trial_seed(self.seed, trial.number)

    def _inherit_checkpoint(self, trial: Trial, rerun_of: Trial) -> None:
        """Move the predecessor's checkpoint folder to the re-run's (idempotent: a kill between the re-run's
        record and this move is finished when the study is next opened, see :meth:`_interrupt_dead_owners`)."""
        old, new = rerun_of.checkpoint_dir, trial.checkpoint_dir
        assert old is not None and new is not None
        if old.is_dir():
            new.parent.mkdir(parents=True, exist_ok=True)
            if not (new.is_dir() and any(new.iterdir())):
                shutil.rmtree(new, ignore_errors=True)
                os.replace(old, new)
            else:
                shutil.rmtree(old, ignore_errors=True)
        if self.scheduler is not None:
            self.scheduler.forget(rerun_of.number)

    def _interrupt_dead_owners(self) -> None:
        for number, who in list(self._replayed.owners.items()):
            trial = self._trials.get(number)
            if trial is None or trial.state is not TrialState.RUNNING:
                continue
            if who.get("token") == PROCESS_TOKEN or self.storage.owner_alive(who):
                continue
            if trial.resumed_from is not None and trial.resumed_from in self._trials:  # died before its move?
                self._inherit_checkpoint(trial, self._trials[trial.resumed_from])
            step = trial.last_step
            reason = f"its process died (pid {who.get('pid')} on {who.get('host')})"
            reason += f" after step {step}" if step is not None else " before its first report"
            self._record_finish(trial, Outcome(TrialState.INTERRUPTED, reason=reason))

    def _feed_scheduler(self) -> None:
        if self.scheduler is None:
            return
        for trial in sorted(self._trials.values(), key=lambda t: t.number):
            if trial.state is TrialState.INTERRUPTED:
                continue
            for report in trial.reports:
                if self.metric in report.metrics and (trial.resumed_from is None or report.step >= trial.resume_step):
                    self.scheduler.on_report(trial.number, report.step,
                                             direction.loss(report.metrics[self.metric], self.mode))

    def _record_finish(self, trial: Trial, outcome: Outcome) -> None:
        outcome = self.objectives.complete(outcome, trial)
        extra = {key: value for key, value in (("values", outcome.values), ("constraints", outcome.constraints))
                 if value is not None}
        reason = outcome.reason
        if outcome.state is TrialState.PRUNED and trial.prune_reason:
            reason = f"pruned: {trial.prune_reason}"
        with self._lock:
            self.storage.append(
                make_record(
                    "finish", number=trial.number, state=outcome.state.value, value=outcome.value,
                    reason=reason, metrics=outcome.metrics, **extra,
                )
            )
            trial.values, trial.constraints = outcome.values, outcome.constraints
            trial.state, trial.value, trial.reason = outcome.state, outcome.value, reason
            trial.metrics = dict(outcome.metrics)
            trial.traceback = outcome.traceback
            trial.finished_at = time.time()
            self._replayed.owners.pop(trial.number, None)

    def _prune_checkpoints(self) -> None:
        """Keep the checkpoints of the top ``keep_checkpoints`` trials and of INTERRUPTED ones (for resume)."""
        if self.keep_checkpoints is None:
            return
        keep = {t.number for t in self.ranked_trials()[: self.keep_checkpoints]}
        for trial in self.trials:
            if trial.state.finished and trial.number not in keep and trial.checkpoint_dir is not None:
                shutil.rmtree(trial.checkpoint_dir, ignore_errors=True)
