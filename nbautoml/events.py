"""Frozen event records and a thread-safe EventBus.

Front ends (the notebook panel, the console bar) subscribe to a study's bus; the engine only emits. Events are
emitted on the study's worker thread, so a subscriber must be quick (set a trait, append to a buffer). A
subscriber that raises is logged and skipped: drawing must never break a search.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Event",
    "EventBus",
    "SpaceChanged",
    "StopRequested",
    "StudyFinished",
    "StudyStarted",
    "StudyStateChanged",
    "TrialFinished",
    "TrialQueued",
    "TrialReported",
    "TrialStarted",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    study: str


@dataclass(frozen=True)
class StudyStarted(Event):
    """``optimize`` began: the budget it runs to (None = unlimited) and the trials already finished."""

    budget: int | None = None
    timeout: float | None = None
    finished: int = 0


@dataclass(frozen=True)
class StudyFinished(Event):
    """``optimize`` returned; ``reason`` says why (budget, timeout, stopped, max_failures, error, nothing to do)."""

    reason: str = ""
    finished: int = 0


@dataclass(frozen=True)
class StudyStateChanged(Event):
    state: str = "IDLE"  # IDLE, RUNNING, STOPPING, STOPPED, FINISHED


@dataclass(frozen=True)
class StopRequested(Event):
    source: str = "user"


@dataclass(frozen=True)
class TrialQueued(Event):
    number: int = -1
    params: Mapping[str, Any] = field(default_factory=dict)
    resumed_from: int | None = None


@dataclass(frozen=True)
class TrialStarted(Event):
    number: int = -1
    params: Mapping[str, Any] = field(default_factory=dict)
    resumed_from: int | None = None
    resume_step: int = 0


@dataclass(frozen=True)
class TrialReported(Event):
    number: int = -1
    step: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialFinished(Event):
    number: int = -1
    state: str = "COMPLETE"
    value: float | None = None
    reason: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    duration: float = 0.0


@dataclass(frozen=True)
class SpaceChanged(Event):
    version: int = 0
    diff: Mapping[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]


class EventBus:
    """Subscribe callables (optionally to some event types); ``emit`` calls them in subscription order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[Subscriber, tuple[type[Event], ...] | None]] = []

    def subscribe(self, callback: Subscriber, *types: type[Event]) -> Callable[[], None]:
        """Add ``callback``; returns a function that unsubscribes it."""
        with self._lock:
            self._subscribers.append((callback, types or None))
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers = [(cb, types) for cb, types in self._subscribers if cb is not callback]

    def emit(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback, types in subscribers:
            if types is not None and not isinstance(event, types):
                continue
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop the search
                log.exception("event subscriber %r failed on %s", callback, type(event).__name__)

    def __len__(self) -> int:
        with self._lock:
            return len(self._subscribers)
