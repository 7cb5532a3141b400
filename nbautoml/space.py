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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nbautoml.dimensions import INT_LIMIT, Choice, Dimension, Int, Real, SpaceError, canonical

__all__ = ["INT_LIMIT", "Choice", "Dimension", "Int", "Real", "Space", "SpaceDiff", "SpaceError"]


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
            if not any(canonical(params[parent]) == canonical(value) for value in values):
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
