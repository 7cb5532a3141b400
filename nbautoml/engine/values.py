"""From what an objective returned (or raised) to a trial's final state, value and reason.

The "Trial value" and "Stopping" contracts (docs/ARCHITECTURE.md) live here, in one place the thread runner,
the Dask runner and the notebook magic share:

- a number → the value; a dict → its ``metric`` entry (its other numbers become the trial's metrics; a list of
  numbers under ``"constraints"`` becomes the trial's own constraint values, see objectives.py);
  None → the best (by ``mode``) value of ``metric`` among the trial's reports; none of these → FAILED "no value".
- NaN, ±inf, strings, tensors of more than one element → FAILED "invalid value: ...".
- an exception → FAILED "exception: <type>: <message>"; CUDA out-of-memory (recognised by the class name
  ``OutOfMemoryError`` so the engine never imports torch) → FAILED "oom".
- a trial that saw the user's stop → INTERRUPTED (re-run on resume); one that saw the scheduler's prune →
  PRUNED (never re-run). A trial that never looked (no ``should_stop()`` or report after the signal) ran to its
  end, so its result stands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbautoml.engine.coerce import to_number
from nbautoml.engine.trial import Trial, TrialState

__all__ = ["Outcome", "exception_outcome", "result_outcome", "settle"]


@dataclass
class Outcome:
    state: TrialState
    value: float | None = None
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    traceback: str | None = None
    values: dict[str, float] | None = None  # every objective's value (filled by Objectives.complete)
    constraints: list[float] | None = None  # constraint values, feasible when all <= 0


def _constraint_values(raw: Any) -> tuple[list[float] | None, str | None]:
    """The objective's own ``"constraints"`` entry: a list of finite numbers (or one number)."""
    items = [raw] if not isinstance(raw, (list, tuple)) else list(raw)
    out: list[float] = []
    for item in items:
        number, why = _scalar(item)
        if number is None:
            return None, f"{why} (in 'constraints')"
        out.append(number)
    return out, None


def _scalar(value: Any) -> tuple[float | None, str | None]:
    """(float, None) for a usable number (finite), (None, why) otherwise."""
    number, why = to_number(value)
    if number is None:
        return None, f"invalid value: {why}"
    if not math.isfinite(number):
        return None, f"invalid value: {number}"
    return number, None


def result_outcome(result: Any, trial: Trial, metric: str, mode: str) -> Outcome:
    """The outcome of an objective that returned ``result`` (before stop / prune are considered)."""
    metrics: dict[str, float] = {}
    if isinstance(result, Mapping):
        constraints = None
        if "constraints" in result:
            constraints, why = _constraint_values(result["constraints"])
            if why is not None:
                return Outcome(TrialState.FAILED, reason=why)
        for key, raw in result.items():
            number, _ = _scalar(raw) if key != "constraints" else (None, None)
            if number is not None:
                metrics[str(key)] = number
        if metric in result:
            number, why = _scalar(result[metric])
            if number is None:
                return Outcome(TrialState.FAILED, reason=f"{why} (the {metric!r} entry)", metrics=metrics)
            return Outcome(TrialState.COMPLETE, number, metrics=metrics, constraints=constraints)
        best = trial.best_reported(metric, mode)
        if best is not None:
            return Outcome(TrialState.COMPLETE, best, metrics=metrics, constraints=constraints)
        keys = ", ".join(map(str, result)) or "none"
        why = f"no value: the result has no {metric!r} (keys: {keys})"
        return Outcome(TrialState.FAILED, reason=why, metrics=metrics)
    if result is None:
        best = trial.best_reported(metric, mode)
        if best is not None:
            return Outcome(TrialState.COMPLETE, best)
        return Outcome(TrialState.FAILED, reason=f"no value: returned None and reported no finite {metric!r}")
    number, why = _scalar(result)
    if number is None:
        return Outcome(TrialState.FAILED, reason=why)
    return Outcome(TrialState.COMPLETE, number)


def is_oom(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    return "OutOfMemoryError" in names or "CUDA out of memory" in str(error)


def exception_outcome(error: BaseException) -> Outcome:
    if is_oom(error):
        return Outcome(TrialState.FAILED, reason="oom")
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(message) > 300:
        message = message[:297] + "..."
    return Outcome(TrialState.FAILED, reason=f"exception: {type(error).__name__}: {message}".rstrip(": "))


def settle(outcome: Outcome, trial: Trial, metric: str, mode: str, user_stopped: bool) -> Outcome:
    """Apply the Stopping contract: a trial that saw a stop or a prune ends INTERRUPTED or PRUNED."""
    if not trial.stop_seen:
        return outcome
    if trial.pruned:
        value = outcome.value if outcome.value is not None else trial.best_reported(metric, mode)
        step = trial.last_step
        where = f" at step {step}" if step is not None else ""
        return Outcome(TrialState.PRUNED, value, f"pruned{where}", outcome.metrics,
                       constraints=outcome.constraints)
    if user_stopped:
        step = trial.last_step
        where = f" after step {step}" if step is not None else ""
        return Outcome(TrialState.INTERRUPTED, outcome.value, f"stopped{where}", outcome.metrics,
                       constraints=outcome.constraints)
    return outcome
