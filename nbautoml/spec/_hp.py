"""``hp``: what cell code calls. In a trial it returns the trial's value; outside one, a default (with a
warning) or the values fixed by ``hp.using``."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from nbautoml.engine.trial import current_trial
from nbautoml.space import Choice, Dimension, Int, Real
from nbautoml.spec._errors import HPOutsideTrialWarning, UndeclaredParameter

# ---- hp: what cell code calls ---------------------------------------------------------------------------
_fixed: ContextVar[Mapping[str, Any] | None] = ContextVar("nbautoml_hp_fixed", default=None)


def _default(dim: Dimension) -> Any:
    if isinstance(dim, Choice):
        return dim.options[0]
    assert isinstance(dim, (Real, Int))
    low, high = float(dim.low), float(dim.high)
    middle = math.sqrt(low * high) if dim.log else (low + high) / 2
    return round(middle) if isinstance(dim, Int) else middle


class HP:
    """Declares a hyperparameter where it is used; returns the running trial's value for it."""

    def float(self, name: str, low: float, high: float, log: bool = False) -> float:
        """A float in [low, high]; ``log=True`` searches it on a log scale (learning rates, weight decay)."""
        return float(self._value(name, Real(low, high, log=log)))

    def int(self, name: str, low: int, high: int, log: bool = False) -> int:
        """An integer in [low, high], both inclusive."""
        return int(self._value(name, Int(low, high, log=log)))

    def choice(self, name: str, options: list[Any] | tuple[Any, ...]) -> Any:
        """One of ``options`` (JSON-serialisable: str, number, bool, None)."""
        return self._value(name, Choice(options))

    @contextlib.contextmanager
    def using(self, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Outside a trial, make ``hp.*`` return these values (e.g. ``study.best_params``)."""
        token = _fixed.set(dict(params))
        try:
            yield params
        finally:
            _fixed.reset(token)

    def _value(self, name: str, dim: Dimension) -> Any:
        dim.validate(name)
        trial = current_trial()
        if trial is not None:
            if name in trial.params:
                return trial.params[name]
            known = ", ".join(sorted(trial.params)) or "none"
            kind = "float" if dim.kind == "real" else dim.kind
            raise UndeclaredParameter(
                f"hp.{kind}({name!r}) is not in trial {trial.number}'s search space (its params: {known}). "
                f"hp.* calls must be written literally in the %%automl cell or spec file itself (not in a "
                f"function defined elsewhere) so the space is known before the first trial"
            )
        fixed = _fixed.get()
        if fixed is not None and name in fixed:
            return dim.normalise(fixed[name])
        value = _default(dim)
        warnings.warn(
            f"hp {name!r} called outside a trial: using the default {value!r} (run the cell under %%automl "
            f"to search it, or fix values with `with hp.using({{...}}):`)",
            HPOutsideTrialWarning,
            stacklevel=3,
        )
        return value

    def __repr__(self) -> str:
        return "nbautoml.hp (hp.float, hp.int, hp.choice)"


hp = HP()
