"""Owner files: how another process tells that the process running a trial is still alive.

While this process has trials RUNNING in a journal, ``<journal>.owners/<host>-<pid>-<token>`` exists and is
touched every :data:`HEARTBEAT_SECONDS`. One heartbeat thread per process serves every journal; it ends when no
journal needs it (the last running trial finished) and each owner file is deleted when its last trial ends, and
at a clean interpreter exit. A reader judges an owner by :func:`owner_alive`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import threading
import time
from pathlib import Path

from nbautoml.engine.storage.base import Owner, owner

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "claim", "heartbeat_alive", "owner_alive", "owner_file",
           "release"]

HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0

_lock = threading.Lock()
_claims: dict[Path, int] = {}  # owner file -> trials of this process running in its journal
_wake = threading.Event()
_thread: threading.Thread | None = None


def owner_file(journal: Path, who: Owner) -> Path:
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(who.get("host")))
    return Path(f"{journal}.owners") / f"{host}-{who.get('pid')}-{who.get('token')}"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(journal: Path, who: Owner) -> bool:
    """Same host: its pid exists and its heartbeat (if any) is fresh; another host: a fresh heartbeat."""
    try:
        age: float | None = time.time() - owner_file(journal, who).stat().st_mtime
    except FileNotFoundError:
        age = None
    if who.get("host") == socket.gethostname():
        pid = who.get("pid")
        if not isinstance(pid, int) or not _pid_exists(pid):
            return False
        return age is None or age < STALE_SECONDS
    return age is not None and age < STALE_SECONDS


def claim(journal: Path) -> None:
    """A trial of this process started in ``journal``: its owner file exists and beats until :func:`release`."""
    global _thread
    beat = owner_file(journal, owner())
    with _lock:
        if _claims.get(beat, 0) == 0:
            beat.parent.mkdir(parents=True, exist_ok=True)
            beat.touch()
        _claims[beat] = _claims.get(beat, 0) + 1
        if _thread is None:
            _wake.clear()
            _thread = threading.Thread(target=_beat, name="nbautoml-heartbeat", daemon=True)
            _thread.start()


def release(journal: Path, count: int = 1) -> None:
    """``count`` of this process's trials in ``journal`` ended; the last one deletes the owner file."""
    beat = owner_file(journal, owner())
    with _lock:
        left = _claims.get(beat, 0) - count
        if left > 0:
            _claims[beat] = left
            return
        _claims.pop(beat, None)
        with contextlib.suppress(OSError):
            beat.unlink()
        with contextlib.suppress(OSError):
            beat.parent.rmdir()  # only when empty: other processes' files stay
        if not _claims:
            _wake.set()


def _beat() -> None:
    global _thread
    while True:
        _wake.wait(HEARTBEAT_SECONDS)
        with _lock:
            _wake.clear()
            if not _claims:
                _thread = None
                return
            files = list(_claims)
        for beat in files:
            with contextlib.suppress(OSError):
                beat.touch()


def heartbeat_alive() -> bool:
    """Whether this process's heartbeat thread runs (tests, diagnostics)."""
    with _lock:
        return _thread is not None and _thread.is_alive()


@atexit.register
def _clean_exit() -> None:
    with _lock:
        files = list(_claims)
        _claims.clear()
        _wake.set()
    for beat in files:
        with contextlib.suppress(OSError):
            beat.unlink()


def _after_fork() -> None:  # a forked child runs no heartbeat and owns none of its parent's files
    global _thread, _lock
    _lock = threading.Lock()
    _claims.clear()
    _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
