"""The Storage protocol: an append-only log of JSON records that a study replays to rebuild itself.

Every change a study makes is one record (see :mod:`nbautoml.engine.storage.records`); the in-memory state is
derived from them, so "resume" is just "replay". Two implementations: :mod:`memory` (``":memory:"``) and
:mod:`journal` (a JSON-lines file, the durable default).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["PROCESS_TOKEN", "Owner", "Storage", "owner"]

Record = dict[str, Any]
Owner = dict[str, Any]  # {"host": ..., "pid": ..., "token": ...}: who runs a trial

PROCESS_TOKEN = uuid.uuid4().hex[:12]
"""Tells this process apart from an earlier one that had the same pid (a restarted kernel)."""


def owner() -> Owner:
    """Who runs trials in this process (journaled with each trial; dead owners' trials get INTERRUPTED)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": PROCESS_TOKEN}


@runtime_checkable
class Storage(Protocol):
    location: str  # ":memory:" or the journal's path

    def read(self) -> list[Record]:
        """Every whole record, in order (replay)."""
        ...

    def append(self, record: Record) -> None:
        """Add one record durably (flushed before returning)."""
        ...

    def append_trial(self, make: Callable[[int], Record]) -> Record:
        """Atomically pick the next free trial number n, append ``make(n)`` and return it.

        Unique across threads and processes sharing the storage.
        """
        ...

    def read_new(self) -> list[Record]:
        """Records other writers appended since this object last read or wrote."""
        ...

    def archive(self) -> str | None:
        """Move the stored study aside (``fresh=True``); returns where it went, None if nothing was stored."""
        ...

    def checkpoint_root(self, name: str) -> Path:
        """The folder under which trial checkpoints live."""
        ...

    def owner_alive(self, owner: Owner) -> bool:
        """Whether the process that wrote ``owner`` still runs (dead owners' RUNNING trials are INTERRUPTED)."""
        ...

    def close(self) -> None: ...
