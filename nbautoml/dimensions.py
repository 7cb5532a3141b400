"""The three kinds of search-space dimension: Real, Int and Choice (and the SpaceError they raise).

Split from :mod:`nbautoml.space` (which names dimensions into a Space, compares and conditions them): a
dimension knows its own bounds or options, checks its arguments lazily (so the error can name the parameter),
normalises values on the way in and round-trips through JSON. ``from nbautoml.space import Real`` keeps working.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["INT_LIMIT", "Choice", "Dimension", "Int", "Real", "SpaceError", "canonical"]


class SpaceError(ValueError):
    """An invalid search space; the message names the parameter."""


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


INT_LIMIT = 2**53
"""Int bounds lie within ±2**53: every integer there is exactly a float, which the samplers' models and
``numpy``'s generators need (``Int(0, 10**30)`` would fail inside a sampler, far from the line that wrote it)."""


def _finite_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Dimension:
    """Base of the three kinds. Subclasses keep their raw arguments until :meth:`validate`."""

    kind: str = ""
    _unknown: dict[str, object]
    when: dict[str, list[Any]] | None = None

    def _set_when(self, when: Mapping[str, Any] | None) -> None:
        if when is None:
            self.when = None
        elif isinstance(when, Mapping) and when:
            self.when = {
                str(key): list(value) if isinstance(value, (list, tuple)) else [value] for key, value in when.items()
            }
        else:
            self._unknown = {**self._unknown, "when": when}  # reported by problems() with the parameter's name

    def _when_json(self) -> dict[str, Any]:
        return {"when": self.when} if self.when else {}

    def _when_repr(self) -> str:
        return f", when={self.when!r}" if self.when else ""

    def problems(self) -> list[str]:
        """What is wrong with this dimension's arguments (empty when valid)."""
        return [
            f"when= must be a non-empty dict of parent name -> value(s), got {value!r}" if key == "when"
            else f"unknown keyword {key!r} ({type(self).__name__} takes {self._signature()}, when)"
            for key, value in self._unknown.items()
        ]

    def _signature(self) -> str:
        return "low, high, log"

    def validate(self, name: str) -> None:
        found = self.problems()
        if found:
            raise SpaceError(f"parameter {name!r}: {found[0]}")

    def contains(self, value: object) -> bool:
        raise NotImplementedError

    def normalise(self, value: Any) -> Any:
        """The canonical Python value (int / float / the option); raises SpaceError when outside."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Dimension:
        kind = data.get("type")
        when = data.get("when")
        if kind == "real":
            return Real(data["low"], data["high"], log=bool(data.get("log", False)), when=when)
        if kind == "int":
            return Int(data["low"], data["high"], log=bool(data.get("log", False)), when=when)
        if kind == "choice":
            return Choice(list(data["options"]), when=when)
        raise SpaceError(f"unknown dimension type {kind!r} in {dict(data)!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dimension) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))


class _Bounded(Dimension):
    def __init__(
        self, low: Any, high: Any, log: bool = False, *, when: Mapping[str, Any] | None = None, **unknown: object
    ) -> None:
        self.low = low
        self.high = high
        self.log = log
        self._unknown = unknown
        self._set_when(when)

    def problems(self) -> list[str]:
        found = super().problems()
        name = type(self).__name__
        for label, bound in (("low", self.low), ("high", self.high)):
            if not _is_number(bound):
                found.append(f"{name} {label} must be a number, got {bound!r}")
            elif _finite_float(bound) is None:
                found.append(f"{name} {label} must be finite, got {_short(bound)}")
        if found:
            return found
        if float(self.low) >= float(self.high):
            found.append(f"{name} low ({self.low!r}) must be less than high ({self.high!r})")
        elif not math.isfinite(float(self.high) - float(self.low)):
            found.append(f"{name} span high - low overflows a float ({self.low!r} .. {self.high!r}): "
                         f"sampling it would give inf")
        if not isinstance(self.log, bool):
            found.append(f"{name} log must be True or False, got {self.log!r}")
        elif self.log and float(self.low) <= 0:
            found.append(f"{name} with log=True needs low > 0, got low={self.low!r}")
        return found

    def __repr__(self) -> str:
        log = ", log=True" if self.log else ""
        return f"{type(self).__name__}({self.low!r}, {self.high!r}{log}{self._when_repr()})"


class Real(_Bounded):
    """A float in [low, high]; ``log=True`` samples (and models) it on a log scale."""

    kind = "real"

    def contains(self, value: object) -> bool:
        return _is_number(value) and math.isfinite(float(value)) and self.low <= float(value) <= self.high  # type: ignore[arg-type]

    def normalise(self, value: Any) -> float:
        if not self.contains(value):
            raise SpaceError(f"{value!r} is outside {self!r}")
        return float(value)

    def sample(self, rng: np.random.Generator) -> float:
        self.validate(repr(self))
        low, high = float(self.low), float(self.high)
        if self.log:
            value = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            value = float(rng.uniform(low, high))
        return min(max(value, low), high)

    def to_json(self) -> dict[str, Any]:
        return {"type": "real", "low": float(self.low), "high": float(self.high), "log": bool(self.log),
                **self._when_json()}


class Int(_Bounded):
    """An integer in [low, high], both inclusive; ``log=True`` samples it log-uniformly."""

    kind = "int"

    def problems(self) -> list[str]:
        found = super().problems()
        for label, bound in (("low", self.low), ("high", self.high)):
            if _is_number(bound) and not _is_integer(bound):
                found.append(f"Int {label} must be an integer, got {bound!r} (use Real for floats)")
            elif _is_integer(bound) and abs(int(bound)) > INT_LIMIT:
                found.append(f"Int {label} must lie within ±2**53, got {_short(bound)}")
        return found

    def contains(self, value: object) -> bool:
        if _is_integer(value):
            return int(self.low) <= value <= int(self.high)  # type: ignore[operator]
        if _is_number(value) and float(value).is_integer():  # type: ignore[arg-type]
            return int(self.low) <= int(float(value)) <= int(self.high)  # type: ignore[arg-type]
        return False

    def normalise(self, value: Any) -> int:
        if not self.contains(value):
            raise SpaceError(f"{value!r} is outside {self!r}")
        return int(value)

    def sample(self, rng: np.random.Generator) -> int:
        self.validate(repr(self))
        low, high = int(self.low), int(self.high)
        if self.log:
            value = math.floor(math.exp(rng.uniform(math.log(low), math.log(high + 1))))
        else:
            value = int(rng.integers(low, high + 1))
        return min(max(value, low), high)

    def to_json(self) -> dict[str, Any]:
        return {"type": "int", "low": int(self.low), "high": int(self.high), "log": bool(self.log),
                **self._when_json()}


def _short(value: object) -> str:
    """A bound for a message: a huge integer by its size, not its 400 digits."""
    if _is_integer(value) and int(value).bit_length() > 128:  # type: ignore[call-overload]
        return f"an integer of {int(value).bit_length()} bits"  # type: ignore[call-overload]
    return repr(value)


def canonical(value: object) -> str:
    """One text per option value (JSON, keys sorted): how options and `when=` values are compared."""
    return json.dumps(value, sort_keys=True)


class Choice(Dimension):
    """One of a list of JSON-serialisable options (str, number, bool, None, or lists/dicts of them)."""

    kind = "choice"

    def __init__(self, options: Sequence[Any], *, when: Mapping[str, Any] | None = None, **unknown: object) -> None:
        self.options = list(options) if isinstance(options, (list, tuple)) else options
        self._unknown = unknown
        self._set_when(when)

    def _signature(self) -> str:
        return "options"

    def problems(self) -> list[str]:
        found = super().problems()
        if not isinstance(self.options, list):
            return [*found, f"Choice options must be a list or tuple, got {type(self.options).__name__}"]
        if not self.options:
            return [*found, "Choice needs at least one option"]
        seen: set[str] = set()
        for option in self.options:
            try:
                key = json.dumps(option, sort_keys=True, allow_nan=False)
            except (TypeError, ValueError):
                found.append(f"Choice option {option!r} is not JSON-serialisable (use str, number, bool or None)")
                continue
            if key in seen:
                found.append(f"Choice option {option!r} appears twice")
            seen.add(key)
        return found

    def contains(self, value: object) -> bool:
        try:
            key = canonical(value)
        except (TypeError, ValueError):
            return False
        return any(canonical(option) == key for option in self.options)

    def normalise(self, value: Any) -> Any:
        try:
            key = canonical(value)
        except (TypeError, ValueError):
            key = None
        for option in self.options:
            if key is not None and canonical(option) == key:
                return option
        raise SpaceError(f"{value!r} is not one of {self.options!r}")

    def index(self, value: Any) -> int:
        key = canonical(value)
        return next(i for i, option in enumerate(self.options) if canonical(option) == key)

    def sample(self, rng: np.random.Generator) -> Any:
        self.validate(repr(self))
        return self.options[int(rng.integers(len(self.options)))]

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "options": list(self.options), **self._when_json()}

    def __repr__(self) -> str:
        return f"Choice({self.options!r}{self._when_repr()})"
