"""``fit``'s search space: which families, their params beside preprocessing and training, the warm start.

One family: its params keep their names (``layers``, ``units``...). Several: a ``family`` choice and each
family's own params prefixed with its name (``gru_hidden``), since families share names with different
meanings; :func:`family_of` turns a trial's params back into (family, architecture). The number of epochs is
not searched: it is ASHA's resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nbautoml.engine.samplers.base import point_key
from nbautoml.space import Choice, Real, Space
from nbautoml.torch import models
from nbautoml.torch.families import auto_families, family_names, get_family

__all__ = ["WarmStartSampler", "default_epochs", "default_space", "family_of", "fit_families", "start_points"]

_TRAINING_START: dict[str, Any] = {"scaler": "standard", "select": 1.0, "optimizer": "adam", "lr": 2e-3,
                                   "weight_decay": 1e-5, "batch_size": 64, "schedule": "cosine"}
"""The warm start's preprocessing and training values; each family gives its architecture (``start``)."""


def fit_families(model: str | Sequence[str], layout: str) -> tuple[str, ...]:
    """The families ``fit(model=...)`` searches: ``"auto"`` (by the data's layout), a name, or a list."""
    kinds = auto_families(layout) if model == "auto" else (model,) if isinstance(model, str) else tuple(model)
    for kind in kinds:
        if kind not in family_names():
            raise ValueError(f"unknown model {kind!r}; choose 'auto' or a registered family: {family_names()} "
                             "(nbautoml.torch.register_family adds one)")
        layouts = get_family(kind).layouts
        if layout not in layouts:
            raise ValueError(f"model {kind!r} does not take {layout} data (it takes {list(layouts)})")
    if not kinds:
        raise ValueError(f"no registered family takes {layout} data by default; pass model= one of {family_names()}")
    return tuple(dict.fromkeys(kinds))


def family_of(params: Mapping[str, Any], kinds: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(kind, architecture params) of a trial's params (prefixes stripped when several families)."""
    if len(kinds) == 1:
        return kinds[0], dict(params)
    kind = str(params["family"])
    return kind, {k[len(kind) + 1:]: v for k, v in params.items() if k.startswith(f"{kind}_")}


def default_space(layout: str, kinds: Sequence[str], input_shape: Sequence[int], n_outputs: int,
                  n_train: int) -> Space:
    """Preprocessing + family/architecture + training dimensions for data of this layout and size."""
    dims: dict[str, Any] = {}
    if layout == "tabular":
        dims["scaler"] = Choice(["standard", "robust", "minmax", "quantile"])
        if int(np.prod(input_shape)) >= 8:
            dims["select"] = Choice([1.0, 0.75, 0.5])
    else:
        dims["scaler"] = Choice(["standard", "robust", "minmax"])
    sizes = [b for b in (16, 32, 64, 128, 256, 512) if b <= max(16, n_train // 8)][-4:]
    train_dims = {
        "optimizer": Choice(["adam", "adamw", "nesterov"]),
        "lr": Real(1e-4, 1e-1, log=True),
        "weight_decay": Real(1e-6, 1e-1, log=True),
        "batch_size": Choice(sizes),
        "schedule": Choice(["none", "cosine", "exponential", "plateau"]),
    }
    if len(kinds) > 1:
        dims["family"] = Choice(list(kinds))
    for kind in kinds:
        arch = models.space(kind, input_shape, n_outputs)
        names = arch.names if len(kinds) == 1 else [f"{kind}_{k}" for k in arch.names]
        clash = sorted((set(dims) | set(train_dims)) & set(names))
        if clash:
            raise ValueError(f"family {kind!r}: its params {clash} clash with fit's own; rename them")
        dims.update(zip(names, (arch[k] for k in arch.names), strict=True))
    return Space({**dims, **train_dims})


def default_epochs(n_train: int) -> int:
    """ASHA's maximum resource: more epochs for small data, where an epoch is cheap and few steps."""
    return 40 if n_train <= 3000 else 30 if n_train <= 30000 else 20


def start_points(space: Space, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """One modest, usually good configuration per family, tried first (cheap and safe, like FLAML's start).

    A default outside the space (a smaller batch-size list, say) is replaced by the dimension's nearest
    value, so every start point lies inside the space.
    """
    points = []
    for kind in kinds:
        arch = get_family(kind).start
        wanted = {**_TRAINING_START, "family": kind}
        wanted.update(dict(arch) if len(kinds) == 1 else {f"{kind}_{k}": v for k, v in arch.items()})
        point = {name: _nearest(dim, wanted.get(name)) for name, dim in space.items()}
        points.append(space.normalise(point))
    return points


def _nearest(dim: Any, value: Any) -> Any:
    """``value`` when the dimension holds it, else its nearest option / bound (or the first option)."""
    if dim.contains(value):
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(dim, Choice):
        options = [o for o in dim.options if isinstance(o, (int, float)) and not isinstance(o, bool)]
        return min(options, key=lambda o: abs(float(o) - float(value))) if number and options else dim.options[0]
    return dim.normalise(min(max(value, dim.low), dim.high)) if number else dim.normalise(dim.low)


class WarmStartSampler:
    """Proposes ``starts`` first (those not yet told or pending), then asks the wrapped sampler."""

    def __init__(self, inner: Any, starts: list[dict[str, Any]]) -> None:
        self.inner, self.starts = inner, starts
        self.name = inner.name  # journaled: a reopened study rebuilds the inner sampler by this registered name
        self._seen: set[str] = set()

    def ask(self, n: int = 1, pending: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        busy = self._seen | {point_key(p) for p in pending}
        chosen = [p for p in self.starts if point_key(p) not in busy][:n]
        if len(chosen) < n:
            chosen += self.inner.ask(n - len(chosen), pending=[*pending, *chosen])
        return chosen

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        self._seen.add(point_key(params))
        self.inner.tell(params, value)

    def tell_many(self, observations: Sequence[tuple[dict[str, Any], float | None]]) -> None:
        self._seen.update(point_key(p) for p, _ in observations)
        self.inner.tell_many(observations)
