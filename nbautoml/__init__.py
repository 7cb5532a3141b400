"""nbautoml: notebook-native automated deep learning.

Public API only. The torch layer (``fit``, ``load_model``, ``nbautoml.torch``) and the notebook front end are
lazy attributes, so ``import nbautoml`` loads neither torch nor IPython, ipywidgets or bokeh: a headless worker
or a non-torch objective never pays for them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbautoml.engine.registry import register_sampler, register_scheduler
from nbautoml.engine.schedulers import ASHA, MedianStopping
from nbautoml.engine.study import Study, StudyState, get_frontend, set_frontend
from nbautoml.engine.trial import Trial, TrialState, current_trial
from nbautoml.events import EventBus
from nbautoml.space import Choice, Int, Real, Space, SpaceError

if TYPE_CHECKING:
    from nbautoml.spec import hp as hp
    from nbautoml.torch.automl import fit as fit
    from nbautoml.torch.export import load_model as load_model

__all__ = [
    "ASHA",
    "Choice",
    "EventBus",
    "Int",
    "MedianStopping",
    "Real",
    "Space",
    "SpaceError",
    "Study",
    "StudyState",
    "Trial",
    "TrialState",
    "current_trial",
    "fit",
    "hp",
    "load_ipython_extension",
    "load_model",
    "load_study",
    "register_sampler",
    "register_scheduler",
    "torch",
    "unload_ipython_extension",
]

__version__ = "0.1.0"

_LAZY = {
    "fit": ("nbautoml.torch.automl", "fit"),
    "load_model": ("nbautoml.torch.export", "load_model"),
    "hp": ("nbautoml.spec", "hp"),
}
_LAZY_MODULES = {"torch": "nbautoml.torch", "notebook": "nbautoml.notebook", "spec": "nbautoml.spec"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(_LAZY_MODULES[name])
    else:
        raise AttributeError(f"module 'nbautoml' has no attribute {name!r}")
    globals()[name] = value
    return value


def load_study(name_or_path: str | os.PathLike[str], **options: Any) -> Study:
    """Open an existing study by name (``.nbautoml/<name>.jsonl`` here) or by its journal's path.

    A ``Path`` (any ``os.PathLike``) or a string ending in ``.jsonl`` is a path; any other string is a name,
    slashes included (``"team/exp1"`` is the study of that name, never a folder).
    """
    from nbautoml.engine.storage import STATE_DIR, default_journal_path, study_name_of
    from nbautoml.engine.storage.journal import JournalStorage

    if isinstance(name_or_path, str) and not name_or_path.endswith(".jsonl"):
        path = default_journal_path(name_or_path)
    else:
        path = Path(os.fspath(name_or_path))
    if not path.exists():
        here = sorted(study_name_of(p) for p in Path(STATE_DIR).glob("*.jsonl"))
        known = ", ".join(here) if here else "none"
        raise FileNotFoundError(f"no study journal at {path} (studies in ./{STATE_DIR}: {known})")
    records = JournalStorage(path).read()
    head = next((r for r in records if r.get("type") == "study"), None)
    if head is None:
        raise ValueError(f"{path} holds no study record: not an nbautoml journal")
    return Study(str(head["name"]), storage=path, **options)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbautoml``: delegates to the notebook front end."""
    from nbautoml.notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbautoml``: delegates to the notebook front end."""
    from nbautoml.notebook.magics import unload_ipython_extension as unload

    unload(ipython)


def _console_frontend(study: Study, background: bool) -> Any:
    from nbautoml.console import ConsoleProgress

    return ConsoleProgress(study)


if get_frontend() is None and not os.environ.get("NBAUTOML_QUIET"):
    set_frontend(_console_frontend)
