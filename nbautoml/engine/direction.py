"""Which value is better: the one place that knows what ``mode="min"`` and ``mode="max"`` mean.

Everything that compares objective values (the study's best trial, the leaderboard, the panel, the training
loop's best epoch, the ensemble choice) asks here, so "better" cannot mean two things. Samplers and schedulers
always minimise: :func:`loss` is the value they are given. A value that is None or not finite (NaN, ±inf) is
never best and ranks after every finite one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["MAX_WORDS", "MODES", "best", "better", "check_mode", "default_mode", "loss", "rank_key", "ranked",
           "sign"]

T = TypeVar("T")

MODES = ("min", "max")
MAX_WORDS = ("acc", "auc", "r2", "f1")
"""A metric whose name contains one of these (any letter case) is maximised by default; others minimised."""


def default_mode(metric: str) -> str:
    """``"max"`` for names containing acc, auc, r2 or f1 (``val_acc``, ``F1``, ``roc_AUC``), else ``"min"``."""
    lowered = metric.lower()
    return "max" if any(word in lowered for word in MAX_WORDS) else "min"


def check_mode(mode: Any) -> str:
    """``mode`` itself when it is "min" or "max"; a ValueError naming it otherwise."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return str(mode)


def sign(mode: str) -> float:
    """-1.0 for "max", 1.0 for "min": ``sign(mode) * value`` is smaller when better."""
    return -1.0 if check_mode(mode) == "max" else 1.0


def loss(value: float, mode: str) -> float:
    """The value to minimise (what samplers and schedulers are given)."""
    return sign(mode) * value


def rank_key(value: float | None, mode: str) -> float:
    """A sort key, best first; None and non-finite values last (``inf``)."""
    if value is None or not math.isfinite(value):
        return math.inf
    return loss(value, mode)


def better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than``: anything beats None (nothing yet), a number beats NaN (a diverged first
    epoch), NaN beats no number."""
    if than is None:
        return True
    if math.isnan(value):
        return False
    if math.isnan(than):
        return True
    return loss(value, mode) < loss(than, mode)


def best(values: Iterable[float | None], mode: str) -> float | None:
    """The best finite value, None when there is none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if check_mode(mode) == "max" else min(finite)


def ranked(items: Iterable[T], mode: str, value: Callable[[T], float | None]) -> list[T]:
    """The items whose ``value`` is finite, best first; ties keep the given order (stable sort)."""
    scored = [(rank_key(value(item), mode), item) for item in items]
    return [item for key, item in sorted((s for s in scored if s[0] != math.inf), key=lambda s: s[0])]
