"""Asynchronous Hyperband (Li et al. 2018): ASHA in several brackets that hedge over the first rung's size.

Bracket ``b`` (0-based, of ``brackets``) is an :class:`~nbautoml.engine.schedulers.asha.ASHA` whose rungs go
down to ``reduction_factor**-(brackets - 1 - b)`` of a trial's length; the last bracket never prunes (plain
full-length trials), the first prunes earliest. Trials are dealt to brackets in turn by their number (Optuna's
HyperbandPruner hashes them; turns keep a small study's brackets even), and each bracket ranks only its own
trials, so an aggressive bracket's bar never stops a trial of a patient one.
"""

from __future__ import annotations

from typing import Any

from nbautoml.engine.schedulers.asha import ASHA
from nbautoml.engine.schedulers.base import Decision

__all__ = ["Hyperband"]


class Hyperband:
    """See the module docstring."""

    def __init__(self, brackets: int = 3, reduction_factor: int = 3, max_steps: int | None = None,
                 grace: int = 1) -> None:
        if isinstance(brackets, bool) or not isinstance(brackets, int) or brackets < 1:
            raise ValueError(f"Hyperband brackets must be a positive integer, got {brackets!r}")
        self.brackets = brackets
        self.reduction_factor = reduction_factor
        self.max_steps = max_steps
        self.grace = grace
        self._asha: list[ASHA | None] = [
            ASHA(reduction_factor=reduction_factor, max_steps=max_steps, grace=grace,
                 min_fraction=reduction_factor ** -(brackets - 1 - b) * (1 - 1e-9))
            for b in range(brackets - 1)
        ]
        self._asha.append(None)  # the last bracket runs every trial to its end

    def bracket_of(self, number: int) -> int:
        return number % self.brackets

    def set_max_steps(self, max_steps: int) -> None:
        for asha in self._asha:
            if asha is not None:
                asha.set_max_steps(max_steps)

    def rung_resources(self, bracket: int, max_steps: int | None = None) -> list[int]:
        asha = self._asha[bracket]
        return [] if asha is None else asha.rung_resources(max_steps)

    def on_report(self, number: int, step: int, value: float) -> bool:
        asha = self._asha[self.bracket_of(number)]
        for other in self._asha:  # every bracket learns trial lengths from all trials
            if other is not None and other is not asha:
                other.saw(number, step)
        return asha.on_report(number, step, value) if asha is not None else False

    def explain(self, number: int) -> Decision | None:
        bracket = self.bracket_of(number)
        asha = self._asha[bracket]
        decision = asha.explain(number) if asha is not None else None
        if decision is None:
            return None
        return Decision(decision.rule, decision.step, decision.value, bar=decision.bar, rank=decision.rank,
                        size=decision.size, keep=decision.keep, bracket=bracket)

    def forget(self, number: int) -> None:
        for asha in self._asha:
            if asha is not None:
                asha.forget(number)

    def to_json(self) -> dict[str, Any]:
        return {"name": "hyperband", "brackets": self.brackets, "reduction_factor": self.reduction_factor,
                "max_steps": self.max_steps, "grace": self.grace}
