"""Params <-> the rows the Bayesian sampler's models see: one column per dimension (see bayes.py's docstring).

Split from :mod:`.bayes` (which fits models and asks): Real and Int scaled to [0, 1] (log-scaled when ``log``),
a Choice as its option index, and in a conditional space every inactive cell set to one constant, so that a
value which had no effect never informs the model. Candidates are drawn, perturbed and snapped here too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbautoml.engine.samplers._acquisition import MAX_GRID, Lattice
from nbautoml.engine.samplers.base import Params
from nbautoml.space import Choice, Int, Real, Space

__all__ = ["Axis", "Encoder"]


@dataclass(frozen=True)
class Axis:
    """One dimension as the encoder sees it: kind, bounds (log-transformed when ``log``) and its columns."""

    kind: str  # "real" | "int" | "choice"
    low: float
    high: float
    log: bool
    options: tuple[Any, ...]
    cols: slice

    @property
    def offset(self) -> float:
        return math.log(self.low) if self.log else self.low

    @property
    def span(self) -> float:
        return (math.log(self.high) if self.log else self.high) - self.offset


class Encoder:
    """Params ↔ rows, one column per dimension, vectorised (see the module docstring)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.conditional = space.conditional
        self.names = list(space)
        self.axes: list[Axis] = []
        for col, dim in enumerate(space.values()):
            if isinstance(dim, Choice):
                axis = Axis("choice", 0.0, 0.0, False, tuple(dim.options), slice(col, col + 1))
            else:
                assert isinstance(dim, (Real, Int))
                kind = "real" if isinstance(dim, Real) else "int"
                axis = Axis(kind, float(dim.low), float(dim.high), bool(dim.log), (), slice(col, col + 1))
            self.axes.append(axis)
        self.width = len(self.axes)
        self.choice = np.array([a.kind == "choice" for a in self.axes], bool)

    def values(self, X: np.ndarray) -> list[np.ndarray]:
        """Per dimension: floats (Real), ints (Int) or option indices (Choice) for each row of ``X``."""
        out: list[np.ndarray] = []
        for col, a in enumerate(self.axes):
            if a.kind == "choice":
                out.append(np.clip(np.round(X[:, col]), 0, len(a.options) - 1).astype(int))
                continue
            raw = a.offset + np.clip(X[:, col], 0.0, 1.0) * a.span
            raw = np.exp(raw) if a.log else raw
            out.append(np.clip(np.round(raw) if a.kind == "int" else raw, a.low, a.high))
        return out

    def encode_values(self, values: Sequence[np.ndarray]) -> np.ndarray:
        n = len(values[0]) if values else 0
        X = np.zeros((n, self.width))
        for col, (a, vals) in enumerate(zip(self.axes, values, strict=True)):
            if a.kind == "choice":
                X[:, col] = vals
            else:
                raw = np.log(np.asarray(vals, float)) if a.log else np.asarray(vals, float)
                X[:, col] = np.clip((raw - a.offset) / a.span, 0.0, 1.0) if a.span > 0 else 0.0
        if self.conditional and n:
            X[self.inactive(values)] = 0.0
        return X

    def inactive(self, values: Sequence[np.ndarray]) -> np.ndarray:
        """Per row and column: the dimension has no effect under the row's choices (a conditional space).

        Inactive cells hold one constant (0.0, the low end), as SMAC imputes them: every row where a dimension
        did nothing looks the same to the model, so it never learns from a value that had no effect, and the
        parent's column alone tells those rows apart.
        """
        rows = len(values[0]) if values else 0
        mask = np.zeros((rows, self.width), bool)
        converted = [[a.options[int(v)] for v in vals] if a.kind == "choice" else list(vals)
                     for a, vals in zip(self.axes, values, strict=True)]
        for i in range(rows):
            params = {name: converted[j][i] for j, name in enumerate(self.names)}
            active = set(self.space.active_names(params))
            for j, name in enumerate(self.names):
                mask[i, j] = name not in active
        return mask

    def snap(self, X: np.ndarray) -> np.ndarray:
        """Rows moved onto the lattice the objective sees (Int rounded, Choice an index): the model sees it too."""
        return self.encode_values(self.values(X))

    def lattice(self) -> Lattice:
        """Choices, and Ints of at most MAX_GRID values, searched value by value; the rest as numbers."""
        numeric, grids = [], []
        for col, a in enumerate(self.axes):
            if a.kind == "choice":
                if len(a.options) > 1:
                    grids.append((col, np.arange(len(a.options), dtype=float)))
            elif a.kind == "int" and a.high - a.low + 1 <= MAX_GRID:
                ints = np.arange(int(a.low), int(a.high) + 1, dtype=float)
                raw = np.log(ints) if a.log else ints
                grids.append((col, (raw - a.offset) / a.span if a.span > 0 else np.zeros(1)))
            else:
                numeric.append(col)
        return Lattice(np.array(numeric, int), tuple(grids))

    def encode(self, params: Sequence[Params]) -> np.ndarray:
        keys = [[json.dumps(o, sort_keys=True) for o in a.options] for a in self.axes]
        def cell(p: Params, j: int, name: str, a: Axis) -> Any:
            if name not in p:  # inactive in a conditional space: a placeholder that encode_values masks
                return 0 if a.kind == "choice" else a.low
            return keys[j].index(json.dumps(p[name], sort_keys=True)) if a.kind == "choice" else p[name]

        return self.encode_values([
            np.array([cell(p, j, name, a) for p in params], float)
            for j, (name, a) in enumerate(zip(self.names, self.axes, strict=True))
        ])

    def decode(self, X: np.ndarray) -> list[Params]:
        columns = self.values(X)
        convert = [(lambda v, a=a: a.options[int(v)]) if a.kind == "choice" else int if a.kind == "int" else float
                   for a in self.axes]
        points = [{name: conv(col[i]) for name, conv, col in zip(self.names, convert, columns, strict=True)}
                  for i in range(len(X))]
        if self.conditional:  # a trial's params hold only what applies under its choices
            points = [{name: p[name] for name in self.space.active_names(p)} for p in points]
        return points

    def random(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """``m`` rows drawn like ``Space.sample``: uniform, or log-uniform for log dimensions."""
        values: list[np.ndarray] = []
        for a in self.axes:
            if a.kind == "choice":
                values.append(rng.integers(len(a.options), size=m))
            elif a.kind == "real":
                raw = a.offset + rng.random(m) * a.span
                values.append(np.exp(raw) if a.log else raw)
            elif a.log:  # Int.sample's law: floor of a log-uniform draw on [low, high + 1)
                draw = np.floor(np.exp(rng.uniform(math.log(a.low), math.log(a.high + 1), size=m)))
                values.append(np.clip(draw, a.low, a.high))
            else:
                values.append(rng.integers(int(a.low), int(a.high) + 1, size=m))
        return self.encode_values(values)

    def perturb(self, rng: np.random.Generator, centres: np.ndarray, m_each: int, sigma: float) -> np.ndarray:
        """Gaussian steps of ``sigma`` around each centre; each Choice re-drawn with probability 1/#dims."""
        X = np.repeat(centres, m_each, axis=0)
        fresh = self.random(rng, len(X))
        for col, a in enumerate(self.axes):
            if a.kind == "choice":
                take = rng.random(len(X)) < max(1.0 / len(self.axes), 0.2)
                X[take, col] = fresh[take, col]
            else:
                step = sigma if a.kind == "real" else max(sigma, 0.6 / max(a.high - a.low, 1.0))
                X[:, col] += rng.normal(0.0, step, len(X))
        return self.snap(X)
