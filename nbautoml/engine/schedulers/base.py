"""What every early-stopping scheduler shares: the protocol, the record of a decision, the resource in use.

A scheduler sees values to MINIMISE (the study negates them for ``mode="max"``) and the resource a trial has
used, ``step + 1`` (steps are 0-based epochs). It answers one question per report: prune this trial now?
Decisions only ever look at values already reported, so they are asynchronous: no trial waits for another.

Two optional parts, found by attribute so a user's scheduler needs neither:

* ``set_max_steps(n)`` — the objective said how many steps a trial runs (``nbautoml.torch.train`` says its
  ``epochs`` through ``trial.set_max_steps``). Schedulers whose rungs are fractions of a trial's length need it;
  without it they use the longest curve seen so far.
* ``explain(number)`` — the :class:`Decision` behind the last prune of a trial, so the trial's reason can name
  the rung, the rank and the bar it missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Decision", "Scheduler", "Steps", "explain", "set_max_steps"]


@runtime_checkable
class Scheduler(Protocol):
    def on_report(self, number: int, step: int, value: float) -> bool:
        """Record ``value`` (to minimise) of trial ``number`` at ``step``; True means prune it now."""
        ...

    def forget(self, number: int) -> None:
        """Drop a trial's history (an INTERRUPTED trial whose re-run starts again)."""
        ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Decision:
    """Why a trial was pruned, in the scheduler's (minimised) units; :meth:`text` says it in the user's.

    ``rule``: "rung" (successive halving: ``rank`` of ``size`` at the rung, the best ``keep`` go on, ``bar`` is
    the worst value kept), "median" (``bar`` is the median of ``size`` other trials at that step) or "diverged".
    """

    rule: str
    step: int
    value: float
    bar: float | None = None
    rank: int | None = None
    size: int | None = None
    keep: int | None = None
    bracket: int | None = None

    def text(self, sign: float = 1.0, metric: str = "value") -> str:
        """e.g. "rung 3 epochs: val_acc 0.912, rank 5 of 7, kept top 2 >= 0.951" (sign -1: a maximised metric)."""
        shown = sign * self.value
        where = f"bracket {self.bracket}, " if self.bracket is not None else ""
        resource = self.step + 1
        if self.rule == "diverged":
            return f"{where}diverged at epoch {resource}: {metric} {shown}"
        bar = sign * self.bar if self.bar is not None else float("nan")
        op = ">=" if sign < 0 else "<="
        if self.rule == "median":
            return (f"{where}epoch {resource}: best {metric} so far {shown:.4g} is worse than the median "
                    f"{bar:.4g} of {self.size} other trials at that epoch")
        return (f"{where}rung {resource} epochs: {metric} {shown:.4g}, rank {self.rank} of {self.size}, "
                f"kept top {self.keep} {op} {bar:.4g}")


class Steps:
    """How long a trial runs: given (``max_steps=``), said by the objective, or the longest curve seen so far."""

    def __init__(self, max_steps: int | None) -> None:
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                      or max_steps < 1):
            raise ValueError(f"max_steps must be a positive integer or None, got {max_steps!r}")
        self.given = max_steps
        self.said: int | None = None
        self.longest = 0

    def saw(self, step: int) -> None:
        self.longest = max(self.longest, step + 1)

    def say(self, max_steps: int) -> None:
        if max_steps >= 1:
            self.said = max(self.said or 0, int(max_steps))

    @property
    def max(self) -> int | None:
        """The resource a full trial uses, or None while nothing says it (no curve finished, nothing said)."""
        if self.given is not None:
            return self.given
        if self.said is not None:
            return self.said
        return self.longest or None


def set_max_steps(scheduler: Any, max_steps: int) -> None:
    """Tell ``scheduler`` a trial's length when it wants to know (the optional ``set_max_steps``)."""
    method = getattr(scheduler, "set_max_steps", None)
    if callable(method):
        method(int(max_steps))


def explain(scheduler: Any, number: int) -> Decision | None:
    """The optional ``explain(number)`` of ``scheduler``: why it pruned trial ``number`` (None: it does not say)."""
    method = getattr(scheduler, "explain", None)
    if not callable(method):
        return None
    decision = method(number)
    return decision if isinstance(decision, Decision) else None
