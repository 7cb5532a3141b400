"""Trial: one evaluation of the objective, its reports, and the cooperative stop signal.

The objective talks to a Trial only: ``trial.params``, ``trial.report(step, **metrics)``, ``trial.should_stop()``,
``trial.checkpoint_dir`` and ``trial.resume_step``. Whoever runs the trial (the study's thread runner, a Dask
worker) plugs in as its :class:`TrialHost`, which records reports, asks the scheduler, and answers whether the
user stopped. ``report`` never raises, so a broken journal or UI can never kill a training loop.

Steps are 0-based: ``resume_step`` is the next step to run (last reported step + 1), and an early-stopping
scheduler counts ``step + 1`` as the resource a trial has used.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nbautoml.engine import direction
from nbautoml.engine.coerce import to_number

__all__ = ["Report", "Trial", "TrialHost", "TrialState", "current_trial", "using_trial"]

log = logging.getLogger(__name__)


class TrialState(str, enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"

    @property
    def finished(self) -> bool:
        """Counts against the budget (COMPLETE + PRUNED + FAILED: the Budget contract in docs/ARCHITECTURE.md)."""
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Report:
    step: int
    metrics: Mapping[str, float]
    time: float


class TrialHost(Protocol):
    """What runs a trial: receives its reports and tells it when to stop."""

    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None: ...

    def stop_requested(self, trial: Trial) -> bool: ...


class Trial:
    """One set of params under evaluation; created by the study, handed to the objective."""

    def __init__(
        self,
        number: int,
        params: Mapping[str, Any],
        *,
        study_name: str = "",
        state: TrialState = TrialState.QUEUED,
        resumed_from: int | None = None,
        resume_step: int = 0,
        checkpoint_dir: Path | str | None = None,
        space_version: int = 0,
        metric: str = "value",
        mode: str = "min",
        host: TrialHost | None = None,
        seed: int | None = None,
    ) -> None:
        self.number = number
        self.params: dict[str, Any] = dict(params)
        self.study_name = study_name
        self.state = state
        self.resumed_from = resumed_from
        self.resume_step = resume_step
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.space_version = space_version
        self.metric = metric  # the study's objective metric and direction, for training loops that keep
        self.mode = mode  # the best epoch (nbautoml.torch.train)
        self.reports: list[Report] = []
        self.value: float | None = None  # None for a study of several objectives: see ``values``
        self.values: dict[str, float] | None = None  # every objective's value, in the study's metric order
        self.constraints: list[float] | None = None  # constraint values (feasible when all <= 0)
        self.metrics: dict[str, float] = {}
        self.reason: str | None = None
        self.traceback: str | None = None  # a failed trial's traceback (this process only, not journaled)
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.pruned = False
        self.stop_seen = False
        self.host = host
        self.seed = seed  # derived from the study's seed and the trial (nbautoml.engine.seeding); None: unseeded
        self.max_steps: int | None = None  # how many steps the objective runs, when it says (set_max_steps)
        self.prune_reason: str | None = None  # the scheduler's explanation, set when it prunes
        self._warned: set[str] = set()

    # ---- the objective's side -------------------------------------------------------------------------
    def report(self, step: int, **metrics: Any) -> None:
        """Record one step's metrics (an epoch's). Never raises; what is not a number (:mod:`~nbautoml.engine.coerce`:
        bools are not) is dropped with a warning."""
        clean: dict[str, float] = {}
        for name, raw in metrics.items():
            value, why = to_number(raw)
            if value is None:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("trial %d: metric %r is not a number (%s); ignored", self.number, name, why)
                continue
            clean[name] = value
        try:
            step = int(step)
        except (TypeError, ValueError):
            log.warning("trial %d: step %r is not an integer; report ignored", self.number, step)
            return
        self.reports.append(Report(step, clean, time.time()))
        if self.host is not None:
            try:
                self.host.on_report(self, step, clean)
            except Exception:
                log.exception("trial %d: recording report for step %d failed", self.number, step)

    def set_max_steps(self, max_steps: int) -> None:
        """Say how many steps this trial runs (``nbautoml.torch.train`` says its ``epochs``): schedulers whose
        rungs are fractions of a trial's length learn it from here. Never raises."""
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            log.warning("trial %d: max_steps %r is not a positive integer; ignored", self.number, max_steps)
            return
        self.max_steps = max_steps
        learn = getattr(self.host, "on_max_steps", None)
        if callable(learn):
            try:
                learn(self, max_steps)
            except Exception:
                log.exception("trial %d: telling the scheduler max_steps=%d failed", self.number, max_steps)

    def should_stop(self) -> bool:
        """True when the scheduler pruned this trial or the user stopped the study: end the trial soon."""
        stop = self.pruned
        if not stop and self.host is not None:
            try:
                stop = bool(self.host.stop_requested(self))
            except Exception:
                log.exception("trial %d: asking whether to stop failed", self.number)
        if stop:
            self.stop_seen = True
        return stop

    # ---- views -----------------------------------------------------------------------------------------
    @property
    def last_step(self) -> int | None:
        return self.reports[-1].step if self.reports else None

    def history(self, metric: str) -> list[tuple[int, float]]:
        """(step, value) pairs of one metric, in report order."""
        return [(r.step, r.metrics[metric]) for r in self.reports if metric in r.metrics]

    def best_reported(self, metric: str, mode: str) -> float | None:
        """The best finite value of ``metric`` this trial reported (None when none was)."""
        return direction.best((v for _, v in self.history(metric)), mode)

    @property
    def feasible(self) -> bool:
        """True unless a constraint value is above 0 (a trial without constraints is feasible)."""
        return not self.constraints or all(c <= 0.0 for c in self.constraints)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return end - self.started_at

    def __repr__(self) -> str:
        value = "" if self.value is None else f", value={self.value:.6g}"
        if self.value is None and self.values:
            value = ", values={" + ", ".join(f"{k}: {v:.6g}" for k, v in self.values.items()) + "}"
        return f"Trial(number={self.number}, state={self.state.value}{value}, params={self.params})"


_current: ContextVar[Trial | None] = ContextVar("nbautoml_current_trial", default=None)


def current_trial() -> Trial | None:
    """The trial running in this context (thread / task), or None outside a trial."""
    return _current.get()


@contextlib.contextmanager
def using_trial(trial: Trial) -> Iterator[Trial]:
    token = _current.set(trial)
    try:
        yield trial
    finally:
        _current.reset(token)
