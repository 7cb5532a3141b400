"""What a study shows of its trials: the read-only views a front end, ``fit`` and the user read.

Split from :mod:`nbautoml.engine.trialbook` (which records a trial's life) because these only read: the trials,
the best ones (one objective or the Pareto front, by :mod:`nbautoml.engine.objectives`), the history the sampler
learns from, the dataframe. An absent (inactive) parameter stays absent here and is NaN in the dataframe.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbautoml.engine.objectives import Objectives
from nbautoml.engine.storage.base import Storage
from nbautoml.engine.storage.records import Replayed
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.space import Space

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrialViews"]


class TrialViews:
    """The read side of :class:`~nbautoml.engine.trialbook.TrialBook` (it sets these attributes)."""

    name: str
    metric: str
    storage: Storage
    objectives: Objectives
    _lock: threading.RLock
    _replayed: Replayed
    _trials: dict[int, Trial]

    # ---- views -----------------------------------------------------------------------------------------
    @property
    def space(self) -> Space | None:
        return self._replayed.space

    @property
    def space_version(self) -> int:
        return max(0, len(self._replayed.spaces) - 1)

    @property
    def checkpoint_root(self) -> Path:
        return self.storage.checkpoint_root(self.name)

    @property
    def trials(self) -> list[Trial]:
        with self._lock:
            return [self._trials[n] for n in sorted(self._trials)]

    @property
    def n_finished(self) -> int:
        with self._lock:
            return sum(1 for t in self._trials.values() if t.state.finished)

    def ranked_trials(self) -> list[Trial]:
        """COMPLETE trials with values, best first: feasible ones first; several objectives by non-domination
        rank (the Pareto front first); ties: the lower number."""
        return self.objectives.ranked(self.trials)

    @property
    def best_trial(self) -> Trial | None:
        """The best feasible COMPLETE trial; a study of several objectives has ``best_trials`` instead."""
        if self.objectives.multi:
            raise ValueError(
                f"study {self.name!r} has several objectives {list(self.objectives.metrics)}: there is no single "
                f"best trial; use study.best_trials (the Pareto front)"
            )
        ranked = self.ranked_trials()
        return ranked[0] if ranked and ranked[0].feasible else None

    @property
    def best_trials(self) -> list[Trial]:
        """The Pareto front of the feasible COMPLETE trials, by number (``[best_trial]`` for one objective)."""
        if not self.objectives.multi:
            best = self.best_trial
            return [best] if best is not None else []
        return self.objectives.front(self.trials)

    def best_summary(self, with_params: bool = False) -> str | None:
        """One line on the best so far, for the console, the CLI and the magic: the best trial of one
        objective, the Pareto front of several (where ``best_trial`` raises); None while nothing is complete."""
        if self.objectives.multi:
            front = self.best_trials
            if not front:
                return None
            numbers = ", ".join(str(t.number) for t in front[:8]) + (", ..." if len(front) > 8 else "")
            return f"Pareto front of {'/'.join(self.objectives.metrics)}: {len(front)} trials ({numbers})"
        best = self.best_trial
        if best is None:
            return None
        params = f": {best.params}" if with_params else ""
        return f"best {self.metric}={best.value:.6g} (trial {best.number}){params}"

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return best.value if best is not None else None

    @property
    def best_params(self) -> dict[str, Any] | None:
        best = self.best_trial
        return dict(best.params) if best is not None else None

    def history_in_space(self, space: Space | None = None) -> list[Trial]:
        """Finished trials whose params lie inside ``space`` (the current one): what the sampler learns from."""
        space = space if space is not None else self.space
        if space is None:
            return []
        return [t for t in self.trials if t.state.finished and space.project(t.params) is not None]

    def trials_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for trial in self.trials:
            row: dict[str, Any] = {
                "number": trial.number,
                "state": trial.state.value,
                "value": trial.value,
                "reason": trial.reason,
                "duration": trial.duration,
                "steps": len(trial.reports),
                "resumed_from": trial.resumed_from,
                "space_version": trial.space_version,
            }
            if self.objectives.multi:
                row.update({f"values_{k}": (trial.values or {}).get(k) for k in self.objectives.metrics})
            if self.objectives.constraints or trial.constraints:
                row["feasible"] = trial.feasible if trial.state is TrialState.COMPLETE else None
            row.update({f"params_{k}": v for k, v in trial.params.items()})
            row.update({f"metrics_{k}": v for k, v in trial.metrics.items()})
            rows.append(row)
        return pd.DataFrame(rows)
