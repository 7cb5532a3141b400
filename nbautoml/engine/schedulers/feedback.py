"""What the sampler is told about a PRUNED trial: an estimate of its final value, never its partial value as is.

A pruned trial stopped early, so its reports are a learning curve cut short. Told as if final (what this
engine did before), a curve cut at epoch 1 reads as a bad configuration wherever the configuration merely
starts slowly, and the surrogate then avoids that region; left out (Optuna's GPSampler: only COMPLETE
trials), the sampler never learns that a region was tried and was weak, and samples it again. Optuna's TPE
ranks pruned trials below every complete one, by the step they reached; BOHB keeps one model per budget and
uses the largest budget with enough points. Here, like a fidelity correction: a pruned trial's value is its
best value up to the step it reached plus the median change that the COMPLETE trials saw from that same step
to their final value. It lands on the final values' scale, and it keeps the scheduler's order at that step
(the trials that went on from there carry the same offset). With no complete trial that reached the step
yet, the best value so far is told (a learning curve usually improves, so that errs on the side of "weak").
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from nbautoml.engine.trial import Trial, TrialState

__all__ = ["PrunedValues"]


class PrunedValues:
    """Final-value estimates for pruned trials, from the curves of the complete ones (losses: lower is better)."""

    def __init__(self, trials: Iterable[Trial], metric: str, sign: float) -> None:
        self.metric, self.sign = metric, sign
        self._complete: list[tuple[float, list[tuple[int, float]]]] = []  # (final loss, best-so-far curve)
        for trial in trials:
            if trial.state is not TrialState.COMPLETE or trial.value is None or not math.isfinite(trial.value):
                continue
            curve = self._best_so_far(trial)
            if curve:
                self._complete.append((sign * trial.value, curve))
        self._gain: dict[int, float | None] = {}

    def _best_so_far(self, trial: Trial) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        best = math.inf
        for step, value in sorted(trial.history(self.metric)):
            if math.isfinite(value):
                best = min(best, self.sign * value)
                out.append((step, best))
        return out

    def gain(self, step: int) -> float | None:
        """The median change from the best-so-far at ``step`` to the final value, over complete trials."""
        if step not in self._gain:
            changes = []
            for final, curve in self._complete:
                upto = [v for s, v in curve if s <= step]
                if upto and curve[-1][0] >= step:
                    changes.append(final - upto[-1])
            self._gain[step] = statistics.median(changes) if changes else None
        return self._gain[step]

    def loss(self, trial: Trial) -> float | None:
        """What to tell the sampler for ``trial`` (pruned): None when it reported no finite value."""
        curve = self._best_so_far(trial)
        if not curve:
            return None
        step, best = curve[-1]
        gain = self.gain(step)
        return best + gain if gain is not None else best
