"""Early stopping decided at each report, one algorithm per module behind the protocol in :mod:`.base`:
:mod:`.asha` (the default), :mod:`.median`, :mod:`.hyperband`; :mod:`.feedback` says what a pruned trial tells
the sampler, :mod:`.replay` replays a scheduler on recorded learning curves. Each is registered by name in
:mod:`nbautoml.engine.registry` (``make_scheduler`` lives there and is re-exported here)."""

from __future__ import annotations

from typing import Any

from nbautoml.engine.schedulers.asha import ASHA
from nbautoml.engine.schedulers.base import Decision, Scheduler
from nbautoml.engine.schedulers.hyperband import Hyperband
from nbautoml.engine.schedulers.median import MedianStopping
from nbautoml.engine.schedulers.replay import Replay

__all__ = ["ASHA", "Decision", "Hyperband", "MedianStopping", "Replay", "Scheduler", "make_scheduler"]


def __getattr__(name: str) -> Any:
    if name == "make_scheduler":  # the registry imports this package: resolved late, without a cycle
        from nbautoml.engine.registry import make_scheduler

        return make_scheduler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
