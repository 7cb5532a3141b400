"""In-memory storage (``storage=":memory:"``): the same record log as the journal, kept in a list.

Checkpoints go to a temporary folder that is removed when the storage is closed or garbage-collected.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from nbautoml.engine.storage.base import Make, Owner, Record, Tail

__all__ = ["MemoryStorage"]


class MemoryStorage:
    location = ":memory:"

    def __init__(self) -> None:
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._tail = Tail()
        self._tmp: Path | None = None
        self._finalizer: weakref.finalize | None = None

    def read(self) -> list[Record]:
        with self._lock:
            return copy.deepcopy(self._records)

    def append(self, record: Record) -> None:
        with self._lock:
            self._records.append(copy.deepcopy(record))
            self._tail.update([record])

    def append_next(self, make: Make) -> tuple[Record | None, list[Record]]:
        with self._lock:
            record = make(self._tail)
            if record is not None:
                self._records.append(copy.deepcopy(record))
                self._tail.update([record])
            return record, []

    def append_trial(self, make: Callable[[int], Record]) -> Record:
        record, _ = self.append_next(lambda tail: make(tail.next_trial))
        assert record is not None
        return record

    def read_new(self) -> list[Record]:
        return []  # one writer only: this process's study

    def archive(self) -> str | None:
        with self._lock:
            had = bool(self._records)
            self._records.clear()
            self._tail = Tail()
        return "discarded" if had else None

    def checkpoint_root(self, name: str) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"nbautoml-{name}-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        return self._tmp

    def owner_alive(self, owner: Owner) -> bool:
        return True  # nothing outlives this process's memory

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
