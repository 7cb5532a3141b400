"""Early stopping decided at each report: asynchronous successive halving (ASHA) and the median rule.

A scheduler sees values to MINIMISE (the study negates them for ``mode="max"``) and the resource a trial has
used, ``step + 1`` (steps are 0-based epochs). It answers one question per report: prune this trial now?
Decisions only ever look at values already reported, so they are asynchronous: no trial waits for another.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

__all__ = ["ASHA", "MedianStopping", "Scheduler"]


@runtime_checkable
class Scheduler(Protocol):
    def on_report(self, number: int, step: int, value: float) -> bool:
        """Record ``value`` (to minimise) of trial ``number`` at ``step``; True means prune it now."""
        ...

    def forget(self, number: int) -> None:
        """Drop a trial's history (an INTERRUPTED trial whose re-run starts again)."""
        ...

    def to_json(self) -> dict[str, Any]: ...


class ASHA:
    """Asynchronous successive halving (Li et al., 2020).

    Rungs sit at resources ``min_steps * reduction_factor**k`` (capped by ``max_steps``). When a trial reaches a
    rung its value is recorded there, and it continues only if it ranks in the top ``1/reduction_factor`` of
    all values recorded at that rung so far. While a rung holds fewer than ``reduction_factor`` values only
    the best one continues — Optuna's rule, since a trial cannot be paused to wait for competitors; the first
    ``grace`` trials to reach a rung are never pruned there, so the first few trials set a fair bar.
    """

    def __init__(
        self, min_steps: int = 1, reduction_factor: int = 3, max_steps: int | None = None, grace: int = 1
    ) -> None:
        if min_steps < 1:
            raise ValueError(f"ASHA min_steps must be >= 1, got {min_steps}")
        if reduction_factor < 2:
            raise ValueError(f"ASHA reduction_factor must be >= 2, got {reduction_factor}")
        if max_steps is not None and max_steps < min_steps:
            raise ValueError(f"ASHA max_steps ({max_steps}) must be >= min_steps ({min_steps})")
        self.min_steps = min_steps
        self.reduction_factor = reduction_factor
        self.max_steps = max_steps
        self.grace = max(0, grace)
        self._rungs: dict[int, dict[int, float]] = {}  # rung resource -> {trial: value at the rung}

    def rung_resources(self) -> list[int]:
        out, resource = [], self.min_steps
        while self.max_steps is None or resource < self.max_steps:
            out.append(resource)
            resource *= self.reduction_factor
            if len(out) > 64:
                break
        return out

    def _rung_for(self, resource: int) -> int | None:
        """The highest rung at or below ``resource`` (None below the first rung)."""
        found = None
        for rung in self.rung_resources():
            if rung > resource:
                break
            found = rung
        return found

    def on_report(self, number: int, step: int, value: float) -> bool:
        if not math.isfinite(value):
            return True  # a diverged trial (NaN / inf loss) is not worth its remaining epochs
        rung = self._rung_for(step + 1)
        if rung is None:
            return False
        recorded = self._rungs.setdefault(rung, {})
        if number in recorded:
            return False  # already judged at this rung; judged again at the next one
        recorded[number] = value
        if len(recorded) <= self.grace:
            return False
        ranked = sorted(recorded.values())
        keep = max(1, len(ranked) // self.reduction_factor)
        return value > ranked[keep - 1]

    def forget(self, number: int) -> None:
        for recorded in self._rungs.values():
            recorded.pop(number, None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": "asha",
            "min_steps": self.min_steps,
            "reduction_factor": self.reduction_factor,
            "max_steps": self.max_steps,
            "grace": self.grace,
        }


class MedianStopping:
    """Prune a trial whose best value so far is worse than the median of other trials' best at the same step.

    Nothing is pruned before ``warmup_steps`` steps or before ``min_trials`` other trials reached the step.
    """

    def __init__(self, warmup_steps: int = 1, min_trials: int = 3) -> None:
        if warmup_steps < 0 or min_trials < 1:
            raise ValueError("median rule: warmup_steps must be >= 0 and min_trials >= 1")
        self.warmup_steps = warmup_steps
        self.min_trials = min_trials
        self._best_at: dict[int, dict[int, float]] = {}  # trial -> {step: best value up to step}

    def on_report(self, number: int, step: int, value: float) -> bool:
        if not math.isfinite(value):
            return True
        curve = self._best_at.setdefault(number, {})
        earlier = [v for s, v in curve.items() if s < step]
        curve[step] = min([value, *earlier])
        if step < self.warmup_steps:
            return False
        others = [self._best_until(other, step) for other in self._best_at if other != number]
        reached = sorted(v for v in others if v is not None)
        if len(reached) < self.min_trials:
            return False
        middle = len(reached) // 2
        median = reached[middle] if len(reached) % 2 else (reached[middle - 1] + reached[middle]) / 2
        return curve[step] > median

    def _best_until(self, number: int, step: int) -> float | None:
        curve = self._best_at[number]
        if not any(s >= step for s in curve):
            return None  # that trial never got this far: it says nothing about this step
        values = [v for s, v in curve.items() if s <= step]
        return min(values) if values else None

    def forget(self, number: int) -> None:
        self._best_at.pop(number, None)

    def to_json(self) -> dict[str, Any]:
        return {"name": "median", "warmup_steps": self.warmup_steps, "min_trials": self.min_trials}
