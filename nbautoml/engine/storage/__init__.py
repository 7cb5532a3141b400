"""Where a study's records live: ``":memory:"``, the default journal (``"auto"``), or a journal path.

Names and files map one to one. A study's journal is ``.nbautoml/<escaped name>.jsonl``: letters, digits, ``-``
and ``_`` stay, every other character (``/``, ``.``, spaces, ``%``, non-ASCII) becomes ``%XX`` per UTF-8 byte
(:func:`journal_file_name`, reversed by :func:`study_name_of`), so ``a/b``, ``a_b`` and ``a b`` get three files,
``..`` cannot leave the folder, and no name looks like another study's ``.old-*`` archive. The journal also
records the true name (its first record), and opening a journal under another name is refused, so a
case-insensitive file system ("A" and "a") cannot merge two studies either. Journals named by nbautoml before
this scheme (unsafe characters as ``_``) are still found under their old file name when it holds that name.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote

from nbautoml.engine.storage.base import Storage
from nbautoml.engine.storage.memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage", "default_journal_path", "journal_file_name", "open_storage",
           "study_name_of"]

STATE_DIR = ".nbautoml"
_MAX_STEM = 200  # file names stay under the usual 255-byte limit with ".jsonl.corrupt-<stamp>-<pid>" after them


def journal_file_name(name: str) -> str:
    """The file name of study ``name``'s journal (reversible unless very long; see the module docstring)."""
    stem = quote(name, safe="").replace(".", "%2E").replace("~", "%7E")
    if len(stem) > _MAX_STEM:  # the true name is in the journal; the file name only has to be unique
        import hashlib

        stem = f"{stem[:_MAX_STEM - 17]}%{hashlib.sha1(name.encode()).hexdigest()[:16]}"
    return f"{stem}.jsonl"


def study_name_of(path: str | os.PathLike[str]) -> str:
    """The name a journal file's name stands for (the inverse of :func:`journal_file_name`)."""
    return unquote(Path(path).name.removesuffix(".jsonl"))


def _legacy_file_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "study"
    return f"{safe}.jsonl"


def default_journal_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``.nbautoml/<escaped name>.jsonl`` under ``root`` (the current directory by default)."""
    folder = Path(root if root is not None else os.getcwd()) / STATE_DIR
    path = folder / journal_file_name(name)
    legacy = folder / _legacy_file_name(name)
    if not path.exists() and legacy != path and legacy.exists():
        from nbautoml.engine.storage.journal import first_record

        head = first_record(legacy)
        if head is not None and head.get("name") == name:
            return legacy  # written before names were escaped, and it is this study's
    return path


def open_storage(storage: str | os.PathLike[str] | Storage, name: str) -> Storage:
    """The storage for study ``name``; a journal that holds another study is refused (one file, one name)."""
    if isinstance(storage, Storage) and not isinstance(storage, (str, os.PathLike)):
        return storage
    if storage == ":memory:":
        return MemoryStorage()
    from nbautoml.engine.storage.journal import JournalStorage, first_record

    path = default_journal_path(name) if storage == "auto" else Path(os.fspath(storage))
    head = first_record(path)
    if head is not None and head.get("type") == "study" and head.get("name") != name:
        raise ValueError(
            f"{path} holds study {head.get('name')!r}, not {name!r}: open it as load_study({str(path)!r}) or "
            f"give this study another storage"
        )
    return JournalStorage(path)
