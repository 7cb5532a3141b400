"""The Storage protocol: an append-only log of JSON records that a study replays to rebuild itself.

Every change a study makes is one record (see :mod:`nbautoml.engine.storage.records`); the in-memory state is
derived from them, so "resume" is just "replay". Two implementations: :mod:`memory` (``":memory:"``) and
:mod:`journal` (a JSON-lines file, the durable default).

Sequence numbers (trial numbers, space versions) and the trial budget are decided by the storage, not by a
writer's in-memory copy: :meth:`Storage.append_next` hands the writer a :class:`Tail` read under the storage's
lock, after every other writer's records, and appends what the writer makes of it in the same locked step.
Two kernels, a notebook and the CLI, or eight threads creating one study at once therefore never write the
same number twice.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["FINISHED_STATES", "PROCESS_TOKEN", "Owner", "Record", "Storage", "Tail", "owner"]

Record = dict[str, Any]
Owner = dict[str, Any]  # {"host": ..., "pid": ..., "token": ...}: who runs a trial
PROCESS_TOKEN = uuid.uuid4().hex[:12]
"""Tells this process apart from an earlier one that had the same pid (a restarted kernel)."""


def owner() -> Owner:
    """Who runs trials in this process (journaled with each trial; dead owners' trials get INTERRUPTED)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": PROCESS_TOKEN}

FINISHED_STATES = frozenset({"COMPLETE", "PRUNED", "FAILED"})  # what the budget counts (INTERRUPTED does not)


@dataclass
class Tail:
    """What the stored records add up to, as far as numbering and the budget go (kept current under the lock)."""

    study: Record | None = None  # the first "study" record
    spaces: int = 0  # space records so far: the next one's version
    last_space: dict[str, Any] | None = None  # the newest space, as JSON
    next_trial: int = 0  # one past the highest trial number
    finished: set[int] = field(default_factory=set)  # trials that ended COMPLETE / PRUNED / FAILED
    open: set[int] = field(default_factory=set)  # trials started and not yet ended
    resumed: set[int] = field(default_factory=set)  # trials some later trial re-runs

    def update(self, records: Iterable[Record]) -> None:
        for record in records:
            kind = record.get("type")
            if kind == "study" and self.study is None:
                self.study = record
            elif kind == "space":
                self.spaces += 1
                self.last_space = record.get("space")
            elif kind == "trial" and isinstance(record.get("number"), int):
                number = record["number"]
                self.next_trial = max(self.next_trial, number + 1)
                self.open.add(number)
                if isinstance(record.get("resumed_from"), int):
                    self.resumed.add(record["resumed_from"])
            elif kind == "finish" and isinstance(record.get("number"), int):
                self.open.discard(record["number"])
                if record.get("state") in FINISHED_STATES:
                    self.finished.add(record["number"])

    def budget_left(self, budget: int | None) -> int | None:
        """Trials that may still start under ``budget`` (finished and running ones count), None for no budget."""
        return None if budget is None else budget - len(self.finished) - len(self.open)


Make = Callable[[Tail], "Record | None"]


@runtime_checkable
class Storage(Protocol):
    location: str  # ":memory:" or the journal's path

    def read(self) -> list[Record]:
        """Every whole record, in order (replay)."""
        ...

    def append(self, record: Record) -> None:
        """Add one record durably (flushed before returning)."""
        ...

    def append_next(self, make: Make) -> tuple[Record | None, list[Record]]:
        """Under the lock, after every record others appended: append ``make(tail)`` unless it is None.

        Returns (the record appended or None, the other writers' records that precede it, in order: apply them
        first). Those records are not returned again by :meth:`read_new`.
        """
        ...

    def append_trial(self, make: Callable[[int], Record]) -> Record:
        """``append_next`` for a trial that always starts: ``make(next trial number)``; others' records are
        left for :meth:`read_new`."""
        ...

    def read_new(self) -> list[Record]:
        """Records other writers appended since this object last read or wrote."""
        ...

    def archive(self) -> str | None:
        """Move the stored study aside (``fresh=True``) without reading it; where it went, None if nothing."""
        ...

    def checkpoint_root(self, name: str) -> Path:
        """The folder under which trial checkpoints live."""
        ...

    def owner_alive(self, owner: Owner) -> bool:
        """Whether the process that wrote ``owner`` still runs (dead owners' RUNNING trials are INTERRUPTED)."""
        ...

    def close(self) -> None: ...
