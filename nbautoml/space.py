"""Search-space dimensions (Real, Int, Choice) and the Space that names them.

Dimensions check their arguments lazily: ``Space(lr=Real(1, 0))`` raises a :class:`SpaceError` that names
``lr``, which an eager ``Real(1, 0)`` could not (it does not know its name yet). A dimension used on its own
(``sample``) validates itself first, so nothing invalid is ever sampled.

Values are normalised on the way in: an ``Int`` gives Python ints, a ``Real`` floats, a ``Choice`` the option
itself. Spaces round-trip through JSON (the journal stores them) and compare with :meth:`Space.diff`, which is
how an edited search space becomes a new space version.

Conditional parameters: any dimension may take ``when={"family": "cnn1d"}`` (or a list of values,
``when={"family": ["cnn1d", "gru"]}``; several keys must all hold). It is *active* only when every named parent
is active and has one of those values; params hold the active dimensions only. An absent inactive parameter is
not missing: :meth:`Space.contains` accepts it, :meth:`Space.sample` never draws it, and a value given for it
is dropped by :meth:`Space.project` (it had no effect). A parent must come before its children and be a Choice
or an Int, so that "has one of those values" is an exact test.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Choice", "Dimension", "Int", "Real", "Space", "SpaceDiff", "SpaceError"]


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


def _canonical(value: object) -> str:
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
            key = _canonical(value)
        except (TypeError, ValueError):
            return False
        return any(_canonical(option) == key for option in self.options)

    def normalise(self, value: Any) -> Any:
        try:
            key = _canonical(value)
        except (TypeError, ValueError):
            key = None
        for option in self.options:
            if key is not None and _canonical(option) == key:
                return option
        raise SpaceError(f"{value!r} is not one of {self.options!r}")

    def index(self, value: Any) -> int:
        key = _canonical(value)
        return next(i for i, option in enumerate(self.options) if _canonical(option) == key)

    def sample(self, rng: np.random.Generator) -> Any:
        self.validate(repr(self))
        return self.options[int(rng.integers(len(self.options)))]

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "options": list(self.options), **self._when_json()}

    def __repr__(self) -> str:
        return f"Choice({self.options!r}{self._when_repr()})"


@dataclass(frozen=True)
class SpaceDiff:
    """What changed between two spaces: dimension names added, removed, and changed (old → new JSON)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {name: {"old": old, "new": new} for name, (old, new) in self.changed.items()},
        }

    def __str__(self) -> str:
        if self.empty:
            return "no change"
        parts = [f"+{name}" for name in self.added] + [f"-{name}" for name in self.removed]
        parts += [f"~{name}" for name in self.changed]
        return ", ".join(parts)


class Space(Mapping[str, Dimension]):
    """An ordered set of named dimensions: ``Space(lr=Real(1e-4, 1e-1, log=True), layers=Int(1, 4))``."""

    def __init__(self, dims: Mapping[str, Dimension] | None = None, /, **named: Dimension) -> None:
        merged: dict[str, Dimension] = dict(dims or {})
        for name, dim in named.items():
            if name in merged:
                raise SpaceError(f"parameter {name!r} is given twice")
            merged[name] = dim
        for name, dim in merged.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise SpaceError(f"parameter name {name!r} must be an identifier")
            if not isinstance(dim, Dimension):
                raise SpaceError(
                    f"parameter {name!r}: expected Real, Int or Choice, got {type(dim).__name__} {dim!r}"
                )
            dim.validate(name)
        self._dims = merged
        self._check_conditions()

    def _check_conditions(self) -> None:
        seen: list[str] = []
        for name, dim in self._dims.items():
            for parent, values in (dim.when or {}).items():
                if parent not in self._dims:
                    raise SpaceError(f"parameter {name!r}: when= names {parent!r}, which is not in the space")
                if parent not in seen:
                    raise SpaceError(f"parameter {name!r}: its parent {parent!r} must come before it")
                parent_dim = self._dims[parent]
                if not isinstance(parent_dim, (Choice, Int)):
                    raise SpaceError(f"parameter {name!r}: parent {parent!r} must be a Choice or an Int")
                outside = [value for value in values if not parent_dim.contains(value)]
                if outside:
                    raise SpaceError(f"parameter {name!r}: when={parent!r} value {outside[0]!r} is outside "
                                     f"{parent_dim!r}")
            seen.append(name)

    @property
    def conditional(self) -> bool:
        """True when some dimension has a ``when=`` condition."""
        return any(dim.when for dim in self._dims.values())

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether ``name`` applies given ``params`` (its parents present, active and holding one of its values)."""
        when = self._dims[name].when
        if not when:
            return True
        for parent, values in when.items():
            if parent not in params or not self.is_active(parent, params):
                return False
            if not any(_canonical(params[parent]) == _canonical(value) for value in values):
                return False
        return True

    def active_names(self, params: Mapping[str, Any]) -> list[str]:
        """The dimensions that apply under ``params``' choices, in space order."""
        return [name for name in self._dims if self.is_active(name, params)]

    def _restrict(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with the inactive (ineffective) entries dropped, checked dimension by dimension in order."""
        out: dict[str, Any] = {}
        for name in self._dims:
            if name in params and self.is_active(name, out):
                out[name] = params[name]
        return out

    def __getitem__(self, name: str) -> Dimension:
        return self._dims[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dims)

    def __len__(self) -> int:
        return len(self._dims)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={dim!r}" for name, dim in self._dims.items())
        return f"Space({inner})"

    @property
    def names(self) -> list[str]:
        return list(self._dims)

    def contains(self, params: Mapping[str, Any]) -> bool:
        """True when ``params`` has exactly the active names (all of them, if none is conditional), each inside."""
        if not set(params) <= set(self._dims):
            return False
        if not all(self._dims[name].contains(value) for name, value in params.items()):
            return False
        return set(params) == set(self.active_names(params))

    def project(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """``params`` restricted to this space when every dimension's value is present and inside, else None.

        Extra keys (a dimension since removed) are dropped: the history of a removed dimension is still
        informative about the ones that remain. A missing key (a dimension since added) makes it None.
        Inactive dimensions are neither needed nor kept.
        """
        out: dict[str, Any] = {}
        for name, dim in self._dims.items():
            if not self.is_active(name, out):
                continue
            if name not in params or not dim.contains(params[name]):
                return None
            out[name] = dim.normalise(params[name])
        return out

    def normalise(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Canonical values for a full set of params; SpaceError naming the first bad one."""
        active = self.active_names(params)
        missing = [name for name in active if name not in params]
        extra = [name for name in params if name not in active]
        if missing or extra:
            inactive = [name for name in extra if name in self._dims]
            unknown = [name for name in extra if name not in self._dims]
            raise SpaceError(f"params do not match the space: missing {missing}, unknown {unknown}"
                             + (f", inactive under these choices {inactive}" if inactive else ""))
        out: dict[str, Any] = {}
        for name in active:
            dim = self._dims[name]
            try:
                out[name] = dim.normalise(params[name])
            except SpaceError as error:
                raise SpaceError(f"parameter {name!r}: {error}") from None
        return out

    def sample(self, rng: np.random.Generator | int | None = None, n: int = 1) -> list[dict[str, Any]]:
        """``n`` random points; a conditional dimension is drawn only when it is active under earlier draws."""
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        points = []
        for _ in range(n):
            point: dict[str, Any] = {}
            for name, dim in self._dims.items():
                if self.is_active(name, point):
                    point[name] = dim.sample(generator)
            points.append(point)
        return points

    def diff(self, other: Space) -> SpaceDiff:
        """How ``other`` differs from this space (added / removed / changed dimensions)."""
        added = tuple(name for name in other if name not in self._dims)
        removed = tuple(name for name in self._dims if name not in other)
        changed = {
            name: (self._dims[name].to_json(), other[name].to_json())
            for name in self._dims
            if name in other and self._dims[name] != other[name]
        }
        return SpaceDiff(added, removed, changed)

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {name: dim.to_json() for name, dim in self._dims.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, Any]]) -> Space:
        return cls({name: Dimension.from_json(spec) for name, spec in data.items()})

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:12]
