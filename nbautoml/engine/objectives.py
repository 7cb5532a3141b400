"""What a study optimises: one or several metrics with their directions, and the constraints a trial must meet.

``Study(metric=["val_acc", "latency_ms"], mode=["max", "min"], constraints=["params <= 1e6"])``: the metrics are
read from what the objective returned (a dict) or, failing that, from the trial's last report of each; a
constraint is ``"<metric> <= <number>"``, ``"<metric> >= <number>"`` or a bare metric name (meaning
``<= 0``). An objective may also return its own constraint values under ``"constraints"`` (a list of numbers,
feasible when each is <= 0). A trial is feasible when every constraint value is <= 0; an infeasible trial is
COMPLETE (its values stand and the sampler learns from them) but is never best and never on the Pareto front.

One objective is the special case of one metric; the study keeps ``metric`` / ``mode`` as the first metric's so
that everything written for one objective keeps working.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nbautoml.engine import direction
from nbautoml.engine.pareto import nondominated_sort, pareto_front
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.engine.values import Outcome

__all__ = ["Constraint", "Objectives", "parse_constraint"]

_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?:(<=|>=)\s*([-+0-9.eE_inf]+))?\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``; its value is how far the trial is on the wrong side (<= 0: satisfied)."""

    metric: str
    op: str = "<="
    bound: float = 0.0

    @property
    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def value(self, metrics: Mapping[str, float]) -> float | None:
        if self.metric not in metrics:
            return None
        number = float(metrics[self.metric])
        return number - self.bound if self.op == "<=" else self.bound - number


def parse_constraint(text: str) -> Constraint:
    """``"params <= 1e6"`` -> Constraint("params", "<=", 1e6); a bare name means ``<= 0``. ValueError if unreadable."""
    if not isinstance(text, str):
        raise ValueError(f"a constraint is a string like 'params <= 1e6', got {text!r}")
    match = _CONSTRAINT.match(text)
    if match is None:
        raise ValueError(f"constraint {text!r}: write '<metric> <= <number>', '<metric> >= <number>' or a metric name")
    metric, op, bound = match.groups()
    if op is None:
        return Constraint(metric)
    try:
        number = float(bound)
    except ValueError:
        raise ValueError(f"constraint {text!r}: {bound!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"constraint {text!r}: the bound must be finite")
    return Constraint(metric, op, number)


def _listed(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")] if "," in value else [value]
    return [str(part) for part in value]


@dataclass(frozen=True)
class Objectives:
    """The metrics (in order), their modes and the study's constraints."""

    metrics: tuple[str, ...]
    modes: tuple[str, ...]
    constraints: tuple[Constraint, ...] = field(default=())

    @classmethod
    def resolve(cls, metric: str | Sequence[str] | None, mode: str | Sequence[str] | None,
                constraints: Sequence[str] | None = None, *, default_metric: str = "value") -> Objectives:
        """Validated objectives from what the user wrote ("a,b" strings and lists alike); clear errors."""
        metrics = _listed(metric) or [default_metric]
        if any(not name for name in metrics) or len(set(metrics)) != len(metrics):
            raise ValueError(f"metric must name distinct, non-empty metrics, got {metric!r}")
        modes = _listed(mode)
        if modes is None:
            modes = [direction.default_mode(name) for name in metrics]
        if len(modes) != len(metrics):
            raise ValueError(f"{len(metrics)} metrics {metrics} but {len(modes)} modes {modes}: give one mode each")
        for value in modes:
            direction.check_mode(value)
        if isinstance(constraints, str):
            constraints = [constraints]
        parsed = tuple(parse_constraint(text) for text in (constraints or ()))
        return cls(tuple(metrics), tuple(modes), parsed)

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    @property
    def signs(self) -> tuple[float, ...]:
        """+1 for "min", -1 for "max": what turns each metric into a loss."""
        return tuple(direction.sign(mode) for mode in self.modes)

    def to_json(self) -> dict[str, Any]:
        """The study record's fields: one objective keeps the old string form, so old readers still match."""
        out: dict[str, Any] = (
            {"metric": list(self.metrics), "mode": list(self.modes)} if self.multi
            else {"metric": self.metrics[0], "mode": self.modes[0]}
        )
        if self.constraints:
            out["constraints"] = [c.text for c in self.constraints]
        return out

    def loss(self, trial: Trial) -> float | tuple[float, ...] | None:
        """What a sampler minimises for a finished trial: a float, a tuple for several metrics, None for none."""
        if trial.state is TrialState.FAILED:
            return None
        if not self.multi:
            if trial.value is None or not math.isfinite(trial.value):
                return None
            return self.signs[0] * trial.value
        if trial.values is None:
            return None
        return tuple(sign * trial.values[name] for sign, name in zip(self.signs, self.metrics, strict=True))

    def ranked(self, trials: list[Trial]) -> list[Trial]:
        """COMPLETE trials with values, best first: feasible before infeasible (by violation); one objective by
        its direction, several by non-domination rank (the Pareto front first); ties keep trial order."""
        complete = [t for t in trials if t.state is TrialState.COMPLETE and self.loss(t) is not None]
        if not self.multi:
            feasible = direction.ranked([t for t in complete if t.feasible], self.modes[0], lambda t: t.value)
            return feasible + sorted((t for t in complete if not t.feasible), key=_violation)
        if not complete:
            return []
        ranks = nondominated_sort(self._losses(complete), [[_violation(t)] for t in complete]).tolist()
        return [complete[i] for i in sorted(range(len(complete)), key=lambda i: (ranks[i], i))]

    def front(self, trials: list[Trial]) -> list[Trial]:
        """The feasible non-dominated COMPLETE trials, in trial order."""
        complete = [t for t in trials if t.state is TrialState.COMPLETE and self.loss(t) is not None]
        if not complete:
            return []
        return [complete[i] for i in pareto_front(self._losses(complete), [[_violation(t)] for t in complete])]

    def _losses(self, trials: list[Trial]) -> list[tuple[float, ...]]:
        out = []
        for trial in trials:
            loss = self.loss(trial)
            out.append(loss if isinstance(loss, tuple) else (float(loss or 0.0),))
        return out

    def complete(self, outcome: Outcome, trial: Trial) -> Outcome:
        """Fill a finished outcome's values and constraint values (FAILED with the reason when one is missing)."""
        if outcome.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            return outcome
        values: dict[str, float] = {}
        for name in self.metrics:
            number = outcome.metrics.get(name)
            if number is None and name == self.metrics[0]:
                number = outcome.value
            if number is None:
                number = _last_reported(trial, name)
            if number is None:
                if outcome.state is TrialState.PRUNED:
                    return outcome
                keys = ", ".join(outcome.metrics) or "none"
                return replace(outcome, state=TrialState.FAILED, value=None,
                               reason=f"no value: {name!r} was neither returned (keys: {keys}) nor reported")
            values[name] = number
        own = list(outcome.constraints or [])
        measured = {**{k: v for k, v in _last_metrics(trial).items()}, **outcome.metrics}
        for constraint in self.constraints:
            number = constraint.value(measured)
            if number is None:
                return replace(outcome, state=TrialState.FAILED, value=None, values=None,
                               reason=f"no value: constraint {constraint.text!r} needs metric {constraint.metric!r}")
            own.append(number)
        value = None if self.multi else values[self.metrics[0]]
        return replace(outcome, value=value, values=values if self.multi else None, constraints=own or None)


def _violation(trial: Trial) -> float:
    return sum(max(c, 0.0) for c in trial.constraints or [])


def _last_reported(trial: Trial, metric: str) -> float | None:
    for report in reversed(trial.reports):
        number = report.metrics.get(metric)
        if number is not None and math.isfinite(number):
            return float(number)
    return None


def _last_metrics(trial: Trial) -> dict[str, float]:
    out: dict[str, float] = {}
    for report in trial.reports:
        out.update({k: v for k, v in report.metrics.items() if math.isfinite(v)})
    return out
