"""The median stopping rule (Golovin et al. 2017, Google Vizier): prune a trial whose best value so far is worse
than the median of the other trials' best values at the same step.

Nothing is pruned before the warm-up — ``warmup_steps`` steps, or ``warmup_fraction`` of a trial's length when
that is known (given as ``max_steps``, said by the objective through ``trial.set_max_steps``, or the longest
curve so far) — nor before ``min_trials`` other trials reached the step: early epochs and a bar set by one or
two trials say little about where a configuration ends.
"""

from __future__ import annotations

import math
from typing import Any

from nbautoml.engine.schedulers.base import Decision, Steps

__all__ = ["MedianStopping"]


class MedianStopping:
    """See the module docstring."""

    def __init__(self, warmup_steps: int = 1, min_trials: int = 3, warmup_fraction: float = 0.0,
                 max_steps: int | None = None) -> None:
        if warmup_steps < 0 or min_trials < 1:
            raise ValueError("median rule: warmup_steps must be >= 0 and min_trials >= 1")
        if not (isinstance(warmup_fraction, (int, float)) and 0 <= warmup_fraction < 1):
            raise ValueError(f"median rule: warmup_fraction must be in [0, 1), got {warmup_fraction!r}")
        self.warmup_steps = warmup_steps
        self.min_trials = min_trials
        self.warmup_fraction = float(warmup_fraction)
        self.steps = Steps(max_steps)
        self._best_at: dict[int, dict[int, float]] = {}  # trial -> {step: best value up to step}
        self._why: dict[int, Decision] = {}

    def set_max_steps(self, max_steps: int) -> None:
        self.steps.say(max_steps)

    def _warmup(self) -> int:
        length = self.steps.max
        by_fraction = math.ceil(self.warmup_fraction * length) if length and self.warmup_fraction else 0
        return max(self.warmup_steps, by_fraction)

    def on_report(self, number: int, step: int, value: float) -> bool:
        if not math.isfinite(value):
            self._why[number] = Decision("diverged", step, value)
            return True
        curve = self._best_at.setdefault(number, {})
        earlier = [v for s, v in curve.items() if s < step]
        curve[step] = min([value, *earlier])
        warmup = self._warmup()
        self.steps.saw(step)
        if step < warmup:
            return False
        others = [self._best_until(other, step) for other in self._best_at if other != number]
        reached = sorted(v for v in others if v is not None)
        if len(reached) < self.min_trials:
            return False
        middle = len(reached) // 2
        median = reached[middle] if len(reached) % 2 else (reached[middle - 1] + reached[middle]) / 2
        if curve[step] > median:
            self._why[number] = Decision("median", step, curve[step], bar=median, size=len(reached))
            return True
        return False

    def _best_until(self, number: int, step: int) -> float | None:
        curve = self._best_at[number]
        if not any(s >= step for s in curve):
            return None  # that trial never got this far: it says nothing about this step
        values = [v for s, v in curve.items() if s <= step]
        return min(values) if values else None

    def explain(self, number: int) -> Decision | None:
        return self._why.get(number)

    def forget(self, number: int) -> None:
        self._best_at.pop(number, None)
        self._why.pop(number, None)

    def to_json(self) -> dict[str, Any]:
        return {"name": "median", "warmup_steps": self.warmup_steps, "min_trials": self.min_trials,
                "warmup_fraction": self.warmup_fraction, "max_steps": self.steps.given}
