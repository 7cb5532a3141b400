"""Where a study's records live: ``":memory:"``, the default journal (``"auto"``), or a journal path."""

from __future__ import annotations

import os
from pathlib import Path

from nbautoml.engine.storage.base import Storage
from nbautoml.engine.storage.memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage", "default_journal_path", "open_storage"]

STATE_DIR = ".nbautoml"


def default_journal_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``.nbautoml/<name>.jsonl`` under ``root`` (the current directory by default)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "study"
    return Path(root if root is not None else os.getcwd()) / STATE_DIR / f"{safe}.jsonl"


def open_storage(storage: str | os.PathLike[str] | Storage, name: str) -> Storage:
    if isinstance(storage, Storage) and not isinstance(storage, (str, os.PathLike)):
        return storage
    if storage == ":memory:":
        return MemoryStorage()
    from nbautoml.engine.storage.journal import JournalStorage

    path = default_journal_path(name) if storage == "auto" else Path(os.fspath(storage))
    return JournalStorage(path)
