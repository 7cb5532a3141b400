"""The durable default: an append-only JSON-lines journal, one record a line, flushed and fsynced.

Writers (threads and processes, several kernels) serialise on a ``filelock`` lock file beside the journal.
On POSIX that is an ``flock``: the kernel drops it when its holder dies, so a lock left by a ``kill -9`` is
taken over at once, while a live, slow holder is waited for.

Torn writes: a last line with no newline or bad JSON (disk full, a kill during a write) is moved to
``<journal>.corrupt-<time>`` and the journal is truncated to its last whole record; a bad line anywhere else is
a :class:`JournalError` naming the line, and the file is left untouched.

Owners: each process that runs trials touches ``<journal>.owners/<host>-<pid>-<token>`` every few seconds. A
RUNNING trial whose owner is gone (same host: the pid no longer exists or its heartbeat went stale; another
host: the heartbeat went stale) is INTERRUPTED when the study is next opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from nbautoml.engine.storage.base import Owner, Record, owner
from nbautoml.engine.storage.records import JournalError

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "JournalStorage"]

HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JournalStorage:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.location = str(self.path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._thread_lock = threading.RLock()
        self._offset = 0  # bytes of the file this object has parsed
        self._unseen: list[Record] = []  # others' records met while appending, for read_new()
        self._max_number = -1
        self._heartbeat: threading.Thread | None = None
        self._closed = threading.Event()
        self._token: str | None = None

    # ---- reading ---------------------------------------------------------------------------------------
    def read(self) -> list[Record]:
        with self._thread_lock, self._locked():
            if not self.path.exists():
                return []
            self._repair_tail()
            data = self.path.read_bytes()
            records = self._parse(data, first_line=1)
            self._offset = len(data)
            self._unseen = []
            return records

    def read_new(self) -> list[Record]:
        with self._thread_lock, self._locked():
            self._catch_up()
            out, self._unseen = self._unseen, []
            return out

    def _catch_up(self) -> None:
        """Parse what others appended since our offset (under the lock) into ``_unseen``."""
        if not self.path.exists():
            return
        size = self.path.stat().st_size
        if size == self._offset:
            return
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        if not data.endswith(b"\n") or not _is_record(data.rstrip(b"\n").rsplit(b"\n", 1)[-1]):
            self._repair_tail()  # a writer died mid-line: quarantine its torn tail first
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        self._unseen.extend(self._parse(data, first_line=None))
        self._offset += len(data)

    def _parse(self, data: bytes, first_line: int | None) -> list[Record]:
        records = []
        for index, line in enumerate(data.splitlines()):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "type" not in record:
                    raise ValueError("not a record object")
            except ValueError as error:
                where = f"line {first_line + index}" if first_line is not None else "a line appended by another writer"
                raise JournalError(
                    f"{self.path}: {where} is not a valid record ({error}); the file was left untouched — "
                    f"fix or remove that line, or open the study with fresh=True"
                ) from None
            if record.get("type") == "trial":
                self._max_number = max(self._max_number, int(record.get("number", -1)))
            records.append(record)
        return records

    def _repair_tail(self) -> None:
        """Quarantine a torn last line (bad JSON) so the journal ends with a whole record.

        A last line that is whole JSON and lacks only its newline is kept: the newline is added.
        """
        data = self.path.read_bytes()
        if not data:
            return
        end = len(data)
        start = data.rfind(b"\n", 0, end - 1 if data.endswith(b"\n") else end) + 1
        if _is_record(data[start:end]):
            if not data.endswith(b"\n"):
                with open(self.path, "ab") as handle:
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            return
        cut = start
        if cut == end:
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        corrupt = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        with open(corrupt, "ab") as handle:
            handle.write(data[cut:])
        with open(self.path, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        self._offset = min(self._offset, cut)

    # ---- writing ---------------------------------------------------------------------------------------
    def _locked(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self._lock

    def _write(self, record: Record) -> None:
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        self._catch_up()
        with open(self.path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._offset += len(line)

    def append(self, record: Record) -> None:
        record = _finite(record)
        with self._thread_lock, self._locked():
            self._write(record)

    def append_trial(self, make: Callable[[int], Record]) -> Record:
        with self._thread_lock, self._locked():
            self._catch_up()
            record = _finite(make(self._max_number + 1))
            self._max_number = int(record["number"])
            self._write(record)
        self._start_heartbeat()
        return record

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
            self._offset, self._unseen, self._max_number = 0, [], -1
            return str(target)

    def checkpoint_root(self, name: str) -> Path:
        return self.path.with_suffix("")

    # ---- owners ----------------------------------------------------------------------------------------
    def _owner_file(self, owner: Owner) -> Path:
        host = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(owner.get("host")))
        return Path(f"{self.path}.owners") / f"{host}-{owner.get('pid')}-{owner.get('token')}"

    def owner_alive(self, owner: Owner) -> bool:
        beat = self._owner_file(owner)
        try:
            age = time.time() - beat.stat().st_mtime
        except FileNotFoundError:
            age = None
        if owner.get("host") == socket.gethostname():
            pid = owner.get("pid")
            if not isinstance(pid, int) or not _pid_exists(pid):
                return False
            return age is None or age < STALE_SECONDS  # pid alive: dead only if its heartbeat went stale
        return age is not None and age < STALE_SECONDS

    def _start_heartbeat(self) -> None:
        if self._heartbeat is not None:
            return
        beat = self._owner_file(owner())
        beat.parent.mkdir(parents=True, exist_ok=True)
        beat.touch()

        def run() -> None:
            while not self._closed.wait(HEARTBEAT_SECONDS):
                with contextlib.suppress(OSError):
                    beat.touch()

        self._heartbeat = threading.Thread(target=run, name="nbautoml-heartbeat", daemon=True)
        self._heartbeat.start()

    def close(self) -> None:
        self._closed.set()


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "type" in record


def _finite(record: Record) -> Record:
    """JSON has no NaN/inf: store them as strings-free nulls so every line stays strict JSON."""
    return {key: _clean(value) for key, value in record.items()}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
