"""The durable default: an append-only JSON-lines journal, one checksummed record a line, flushed and fsynced.

Writers (threads and processes, several kernels) serialise on a ``filelock`` lock file beside the journal.
On POSIX that is an ``flock``: the kernel drops it when its holder dies, so a lock left by a ``kill -9`` is
taken over at once, while a live, slow holder is waited for. Every append first reads what other writers
appended since this object last looked (under the lock), so sequence numbers come from the file, never from a
writer's stale memory (:meth:`JournalStorage.append_next`).

Damage: each line carries a CRC32 of its JSON (:mod:`nbautoml.engine.storage.lines`). A last line with no
newline, bad JSON or a wrong checksum (disk full, a kill during a write) is moved to
``<journal>.corrupt-<time>-<pid>`` and the journal is truncated to its last whole record; a bad line anywhere
else is a :class:`JournalError` naming the line and why, and the file is left untouched (``fresh=True`` moves
it aside without reading it).

Owners: see :mod:`nbautoml.engine.storage.owners` (a heartbeat file per process while it runs trials here).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from nbautoml.engine.storage import owners
from nbautoml.engine.storage.base import Make, Owner, Record, Tail
from nbautoml.engine.storage.lines import decode_line, encode_line
from nbautoml.engine.storage.records import JournalError

__all__ = ["JournalStorage", "first_record"]

log = logging.getLogger(__name__)


class JournalStorage:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.location = str(self.path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._thread_lock = threading.RLock()
        self._offset = 0  # bytes of the file this object has parsed
        self._lines = 0  # lines of the file this object has parsed
        self._tail = Tail()
        self._unseen: list[Record] = []  # others' records met while appending, for read_new()
        self._mine: set[int] = set()  # trials this object started that have not ended (they hold the heartbeat)

    # ---- reading ---------------------------------------------------------------------------------------
    def read(self) -> list[Record]:
        with self._thread_lock, self._locked():
            self._offset, self._lines, self._tail, self._unseen = 0, 0, Tail(), []
            if not self.path.exists():
                return []
            self._repair_tail()
            return self._parse_new()

    def read_new(self) -> list[Record]:
        with self._thread_lock, self._locked():
            self._catch_up()
            out, self._unseen = self._unseen, []
            return out

    def _catch_up(self) -> None:
        """Parse what others appended since our offset (under the lock) into ``_unseen``."""
        if self.path.exists() and self.path.stat().st_size != self._offset:
            self._repair_tail()  # a writer died mid-line: quarantine its torn tail first
            self._unseen.extend(self._parse_new())

    def _parse_new(self) -> list[Record]:
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        records = []
        for line in data.splitlines():
            self._lines += 1
            if not line.strip():
                continue
            try:
                records.append(decode_line(line))
            except ValueError as error:
                raise JournalError(
                    f"{self.path}: line {self._lines} is not a valid record ({error}); the file was left "
                    f"untouched — fix or remove that line, or open the study with fresh=True (which moves the "
                    f"journal aside without reading it)"
                ) from None
        self._offset += len(data)
        self._tail.update(records)
        return records

    def _repair_tail(self) -> None:
        """Quarantine a torn or damaged last line so the journal ends with a whole record.

        A last line that is a whole record and lacks only its newline is kept: the newline is added.
        """
        data = self.path.read_bytes()
        if not data:
            return
        end = len(data)
        start = data.rfind(b"\n", 0, end - 1 if data.endswith(b"\n") else end) + 1
        if start < self._offset:
            return  # the last line is one this object already parsed
        if _is_record(data[start:end]):
            if not data.endswith(b"\n"):
                with open(self.path, "ab") as handle:
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            return
        if start == end:
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        corrupt = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        with open(corrupt, "ab") as handle:
            handle.write(data[start:])
        with open(self.path, "r+b") as handle:
            handle.truncate(start)
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("%s: its last line (%d bytes) was torn or damaged; moved to %s", self.path, end - start, corrupt)

    # ---- writing ---------------------------------------------------------------------------------------
    def _locked(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self._lock

    def _write(self, record: Record) -> None:
        """Append one line (the caller holds both locks and has caught up)."""
        line = encode_line(record)
        with open(self.path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._offset += len(line)
        self._lines += 1
        self._tail.update([record])

    def append(self, record: Record) -> None:
        with self._thread_lock, self._locked():
            self._catch_up()
            self._write(record)
        self._ended(record)

    def append_next(self, make: Make) -> tuple[Record | None, list[Record]]:
        with self._thread_lock, self._locked():
            self._catch_up()
            before, self._unseen = self._unseen, []
            record = make(self._tail)
            if record is not None:
                self._write(record)
                if record.get("type") == "trial":
                    self._mine.add(int(record["number"]))
                    owners.claim(self.path)
        return record, before

    def append_trial(self, make: Callable[[int], Record]) -> Record:
        with self._thread_lock:
            record, before = self.append_next(lambda tail: make(tail.next_trial))
            self._unseen[:0] = before
        assert record is not None
        return record

    def _ended(self, record: Record) -> None:
        """A finish record of one of our trials releases its hold on the heartbeat."""
        if record.get("type") == "finish" and record.get("number") in self._mine:
            self._mine.discard(record["number"])
            owners.release(self.path)

    def archive(self) -> str | None:
        with self._thread_lock, self._locked():
            if not self.path.exists():
                return None
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = self.path.with_name(f"{self.path.stem}.old-{stamp}{self.path.suffix}")
            os.replace(self.path, target)
            checkpoints = self.path.with_suffix("")
            if checkpoints.is_dir():
                os.replace(checkpoints, checkpoints.with_name(f"{checkpoints.name}.old-{stamp}"))
            self._offset, self._lines, self._tail, self._unseen = 0, 0, Tail(), []
            return str(target)

    def checkpoint_root(self, name: str) -> Path:
        return self.path.with_suffix("")

    def owner_alive(self, owner: Owner) -> bool:
        return owners.owner_alive(self.path, owner)

    def close(self) -> None:
        """Let go of the heartbeat for trials this object started and never finished (the study is done)."""
        with self._thread_lock:
            if self._mine:
                owners.release(self.path, len(self._mine))
                self._mine.clear()


def first_record(path: Path) -> Record | None:
    """The journal's first record, read without the lock (None when the file is empty, missing or damaged)."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline()
        return decode_line(line) if line.endswith(b"\n") else None
    except (OSError, ValueError):
        return None


def _is_record(line: bytes) -> bool:
    try:
        decode_line(line)
    except ValueError:
        return False
    return True


