"""Replay a scheduler on a study's recorded learning curves: which trials it would have pruned, and the epochs
it would have saved, so settings can be picked from one's own data instead of guessed.

Trials are fed in the order they started, each curve report by report: for a study run one trial at a time
this is exactly the sequence a live scheduler saw, so the replay of the scheduler the study ran with gives its
live decisions back (tests/engine/test_schedulers_replay.py checks it). With ``parallel > 1`` the live
interleaving differs and the replay is the one-at-a-time answer. A trial pruned in the recorded run has no
curve past its prune; if the replayed scheduler would have let it go further, it is listed in ``ran_past``:
the replay cannot say what it would then have done.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from nbautoml.engine import direction
from nbautoml.engine.schedulers.base import Scheduler, explain, set_max_steps
from nbautoml.engine.trial import Trial, TrialState

__all__ = ["Replay", "replay_curves", "replay_trials"]


@dataclass
class Replay:
    """The outcome of :func:`replay_curves`. Steps are 0-based; "epochs" are steps run (``step + 1``)."""

    pruned: dict[int, int] = field(default_factory=dict)  # trial -> the step it would have been pruned at
    reasons: dict[int, str] = field(default_factory=dict)  # trial -> the scheduler's explanation
    epochs_recorded: int = 0  # epochs the recorded trials ran
    epochs_replayed: int = 0  # epochs they would have run under the replayed scheduler
    ran_past: list[int] = field(default_factory=list)  # recorded curves that end before this scheduler would stop

    @property
    def epochs_saved(self) -> int:
        return self.epochs_recorded - self.epochs_replayed

    def __str__(self) -> str:
        share = self.epochs_saved / self.epochs_recorded if self.epochs_recorded else 0.0
        past = f"; {len(self.ran_past)} recorded prunes it would have let run on" if self.ran_past else ""
        return (f"would prune {len(self.pruned)} trials, saving {self.epochs_saved} of {self.epochs_recorded} "
                f"epochs ({share:.0%}){past}")


Curve = Sequence[tuple[int, float]]


def replay_curves(scheduler: Scheduler, curves: Sequence[tuple[int, Curve]], *, sign: float = 1.0,
                  metric: str = "value", max_steps: int | None = None,
                  cut_short: Sequence[int] = ()) -> Replay:
    """Feed ``(number, [(step, value), ...])`` curves (user units; ``sign`` -1 for a maximised metric) in order.

    ``max_steps`` is said to the scheduler first (a live ``nbautoml.torch.train`` says its epochs);
    ``cut_short`` names curves that a recorded prune ended (for ``ran_past``).
    """
    if max_steps is not None:
        set_max_steps(scheduler, max_steps)
    out = Replay()
    short = set(cut_short)
    for number, curve in curves:
        out.epochs_recorded += len(curve)
        for step, value in curve:
            out.epochs_replayed += 1
            if scheduler.on_report(number, step, sign * value):
                out.pruned[number] = step
                decision = explain(scheduler, number)
                out.reasons[number] = decision.text(sign, metric) if decision is not None else f"step {step}"
                break
        else:
            if number in short:
                out.ran_past.append(number)
    return out


def replay_trials(scheduler: Scheduler, trials: Sequence[Trial], metric: str, mode: str,
                  max_steps: int | None = None) -> Replay:
    """Replay on a study's finished trials, in start order (INTERRUPTED ones are left out: their re-runs hold
    the whole curve). ``max_steps`` default: the longest recorded curve."""
    sign = direction.sign(mode)
    chosen = sorted((t for t in trials if t.state.finished),
                    key=lambda t: (t.started_at if t.started_at is not None else math.inf, t.number))
    curves = [(t.number, [(s, v) for s, v in t.history(metric)]) for t in chosen]
    if max_steps is None:
        max_steps = max((s + 1 for _, curve in curves for s, _ in curve), default=None)
    cut = [t.number for t in chosen if t.state is TrialState.PRUNED]
    return replay_curves(scheduler, curves, sign=sign, metric=metric, max_steps=max_steps, cut_short=cut)

