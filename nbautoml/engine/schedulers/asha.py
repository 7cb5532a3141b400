"""Asynchronous successive halving (ASHA, Li et al. 2020) with rungs placed as fractions of a trial's length.

Why fractions: a rung at epoch 1 judges a model by a number that says little about where it ends (a digits MLP
at epoch 1 ranks its configurations by how fast Adam moves, not how good they get), and at 10-50 trials each
rung holds few values, so a third of them is one or two. Rungs here sit at ``max_steps / reduction_factor**k``
(k = 1, 2, ... down to ``min_fraction`` of the trial), so the first judgement comes after a real share of the
training; ``max_steps`` is given, said by the objective (``trial.set_max_steps``; ``nbautoml.torch.train``
says its ``epochs``), or taken from the longest curve of the other trials so far. An absolute ``min_steps``
keeps the classic geometric ladder ``min_steps * reduction_factor**k``.

A trial reaching a rung records its value there and goes on only if it ranks within the best
``ceil(n / reduction_factor)`` of the ``n`` values recorded at that rung so far; the first ``grace`` trials
at a rung are never pruned there, so the bar is set by a few real competitors rather than by the first one.
The defaults (``min_fraction=1/3``, ``reduction_factor=3``, ``grace=3``) were chosen on bench/budget.py
(BENCHMARKS.md, "Search quality at notebook budgets"): on digits (MLP, 2-D CNN; 12-100 trials) they were level
with or ahead of the same search without early stopping in 4 of 5 rows at about 80% of its CPU, where the old
ladder (rungs at epochs 1, 3, 9, grace 1) fell behind; the median rule and Hyperband did not do better.
"""

from __future__ import annotations

import math
from typing import Any

from nbautoml.engine.schedulers.base import Decision, Steps

__all__ = ["ASHA"]


class ASHA:
    """Successive halving decided at each report; see the module docstring for the rungs and the rule."""

    def __init__(self, min_steps: int | None = None, reduction_factor: int = 3, max_steps: int | None = None,
                 grace: int = 3, min_fraction: float = 1 / 3) -> None:
        if min_steps is not None and (isinstance(min_steps, bool) or not isinstance(min_steps, int)
                                      or min_steps < 1):
            raise ValueError(f"ASHA min_steps must be a positive integer or None, got {min_steps!r}")
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int) or reduction_factor < 2:
            raise ValueError(f"ASHA reduction_factor must be an integer >= 2, got {reduction_factor!r}")
        if max_steps is not None and min_steps is not None and max_steps < min_steps:
            raise ValueError(f"ASHA max_steps ({max_steps}) must be >= min_steps ({min_steps})")
        if not (isinstance(min_fraction, (int, float)) and 0 < min_fraction < 1):
            raise ValueError(f"ASHA min_fraction must be between 0 and 1, got {min_fraction!r}")
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
            raise ValueError(f"ASHA grace must be a non-negative integer, got {grace!r}")
        self.min_steps = min_steps
        self.reduction_factor = reduction_factor
        self.min_fraction = float(min_fraction)
        self.grace = grace
        self.steps = Steps(max_steps)
        self._lengths: dict[int, int] = {}  # trial -> steps it has reported so far
        self._rungs: dict[int, dict[int, float]] = {}  # rung resource -> {trial: value at the rung}
        self._judged: dict[int, set[int]] = {}  # trial -> rungs it was judged at
        self._why: dict[int, Decision] = {}

    @property
    def max_steps(self) -> int | None:
        return self.steps.max

    def set_max_steps(self, max_steps: int) -> None:
        self.steps.say(max_steps)

    def _max_for(self, number: int) -> int | None:
        """A full trial's length as seen when judging ``number`` (its own growing curve never sets it)."""
        if self.steps.given is not None or self.steps.said is not None:
            return self.steps.max
        others = [n for t, n in self._lengths.items() if t != number]
        return max(others) if others else None

    def rung_resources(self, max_steps: int | None = None) -> list[int]:
        """The rungs' resources (epochs), ascending, for a trial of ``max_steps`` (default: the known length)."""
        top = max_steps if max_steps is not None else self.max_steps
        eta = self.reduction_factor
        if self.min_steps is not None:
            out: list[int] = []
            resource = self.min_steps
            while (top is None or resource < top) and len(out) < 64:
                out.append(resource)
                resource *= eta
            return out
        if top is None:
            return []
        rungs: set[int] = set()
        k = 1
        while top / eta**k >= top * self.min_fraction - 1e-9 and top / eta**k >= 1:
            rungs.add(max(1, round(top / eta**k)))
            k += 1
        return sorted(r for r in rungs if r < top)

    def saw(self, number: int, step: int) -> None:
        """Trial ``number`` reached ``step`` (how trial lengths are learned when nothing says them)."""
        self._lengths[number] = max(self._lengths.get(number, 0), step + 1)

    def on_report(self, number: int, step: int, value: float) -> bool:
        self.saw(number, step)
        if not math.isfinite(value):
            self._why[number] = Decision("diverged", step, value)
            return True  # a diverged trial (NaN / inf loss) is not worth its remaining epochs
        judged = self._judged.setdefault(number, set())
        due = [r for r in self.rung_resources(self._max_for(number)) if r <= step + 1 and r not in judged]
        if not due:
            return False
        rung = due[-1]  # a trial that skipped reports is judged once, at the highest rung it passed
        judged.update(due)
        recorded = self._rungs.setdefault(rung, {})
        recorded[number] = value
        if len(recorded) <= self.grace:
            return False
        ranked = sorted(recorded.values())
        keep = max(1, math.ceil(len(ranked) / self.reduction_factor))
        rank = 1 + sum(1 for v in ranked if v < value)
        if rank <= keep:
            return False
        self._why[number] = Decision("rung", rung - 1, value, bar=ranked[keep - 1], rank=rank,
                                     size=len(ranked), keep=keep)
        return True

    def explain(self, number: int) -> Decision | None:
        return self._why.get(number)

    def forget(self, number: int) -> None:
        for recorded in self._rungs.values():
            recorded.pop(number, None)
        self._judged.pop(number, None)
        self._lengths.pop(number, None)
        self._why.pop(number, None)

    def to_json(self) -> dict[str, Any]:
        return {"name": "asha", "min_steps": self.min_steps, "reduction_factor": self.reduction_factor,
                "max_steps": self.steps.given, "grace": self.grace, "min_fraction": self.min_fraction}
