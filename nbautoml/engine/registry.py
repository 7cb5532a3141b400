"""Samplers and schedulers by name: the built-ins and a user's own, registered the same way.

A study journals its sampler and scheduler by registered name (a scheduler with its options, from
``to_json()``), so reopening it — after a restart, in another process — builds the same algorithm again from
here. The CLI's and the magic's ``--sampler`` / ``--scheduler`` choices are :func:`sampler_names` and
:func:`scheduler_names`, read when the parser is made, so a registered algorithm is a choice there too.

- A sampler factory is called ``factory(space, seed=seed, **options)`` and returns a
  :class:`~nbautoml.engine.samplers.base.Sampler`; the instance's ``name`` should be its registered name
  (a study given an instance journals that name, and refuses an instance whose name is not registered).
- A scheduler factory is called ``factory(**options)``; its ``to_json()`` returns ``{"name": <registered
  name>, **options}``, which :func:`make_scheduler` turns back into an equal scheduler.

Names are lower-case (``"my-tpe"``); ``"none"`` means "no scheduler" and cannot be registered. The built-in
factories import their module only when called, so ``import nbautoml`` does not load scikit-optimize.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from nbautoml.engine.samplers.base import Sampler
from nbautoml.engine.schedulers.asha import ASHA
from nbautoml.engine.schedulers.base import Scheduler
from nbautoml.engine.schedulers.hyperband import Hyperband
from nbautoml.engine.schedulers.median import MedianStopping
from nbautoml.space import Space

__all__ = ["SamplerFactory", "SchedulerFactory", "journal_name", "make_sampler", "make_scheduler",
           "register_sampler", "register_scheduler", "sampler_names", "scheduler_names"]

SamplerFactory = Callable[..., Sampler]
SchedulerFactory = Callable[..., Scheduler]

_NAME = re.compile(r"[a-z][a-z0-9_.+-]*")
_samplers: dict[str, SamplerFactory] = {}
_schedulers: dict[str, SchedulerFactory] = {}


def _register(kind: str, table: dict[str, Any], name: str, factory: Callable[..., Any], replace: bool) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"a {kind} name is lower-case letters, digits and _ . + - (starting with a letter), "
                         f"got {name!r}")
    if kind == "scheduler" and name == "none":
        raise ValueError("'none' means no scheduler; register yours under another name")
    if not callable(factory):
        raise TypeError(f"register_{kind}({name!r}, factory): factory must be callable, got "
                        f"{type(factory).__name__}")
    if name in table and not replace and table[name] is not factory:
        raise ValueError(f"a {kind} named {name!r} is already registered; pass replace=True to replace it")
    table[name] = factory


def register_sampler(name: str, factory: SamplerFactory, *, replace: bool = False) -> None:
    """Make ``name`` a sampler: ``factory(space, seed=seed, **options)`` builds one for a study's space."""
    _register("sampler", _samplers, name, factory, replace)


def register_scheduler(name: str, factory: SchedulerFactory, *, replace: bool = False) -> None:
    """Make ``name`` a scheduler: ``factory(**options)`` builds one (its ``to_json()`` names it ``name``)."""
    _register("scheduler", _schedulers, name, factory, replace)


def sampler_names() -> tuple[str, ...]:
    """The registered sampler names, in registration order (the built-ins first)."""
    return tuple(_samplers)


def scheduler_names() -> tuple[str, ...]:
    """The registered scheduler names, in registration order (``"none"`` is not one: it is no scheduler)."""
    return tuple(_schedulers)


def _unknown(kind: str, name: str, known: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}: registered are {', '.join(known) or 'none'}; a {kind} of your own "
                      f"needs nbautoml.register_{kind}({name!r}, factory) in this process first")


def make_sampler(spec: str | Sampler, space: Space, seed: int | None = None, **options: Any) -> Sampler:
    """A sampler for ``space`` by registered name (any letter case), or an instance as it is."""
    if not isinstance(spec, str):
        return spec
    factory = _samplers.get(spec.lower())
    if factory is None:
        raise _unknown("sampler", spec, sampler_names())
    return factory(space, seed=seed, **options)


def journal_name(sampler: str | Sampler) -> str:
    """The name a study journals for ``sampler``: a registered name, so that the study can be reopened.

    An instance is journaled under its ``name`` attribute, which must be registered.
    """
    if isinstance(sampler, str):
        name = sampler.lower()
        if name not in _samplers:
            raise _unknown("sampler", sampler, sampler_names())
        return name
    own: Any = getattr(sampler, "name", None)
    if not isinstance(own, str) or own.lower() not in _samplers:
        raise ValueError(
            f"a {type(sampler).__name__} instance named {own!r} cannot be journaled: a reopened study rebuilds its "
            f"sampler by registered name. Register it (nbautoml.register_sampler({own or 'name'!r}, factory)) or "
            f"give it the `name` of a registered sampler ({', '.join(sampler_names())})"
        )
    return own.lower()


def make_scheduler(spec: str | Scheduler | Mapping[str, Any] | None) -> Scheduler | None:
    """None / ``"none"``, a registered name, a ``to_json()`` dict (name and options), or an instance as is."""
    if spec is None:
        return None
    if isinstance(spec, (str, Mapping)):
        options = {} if isinstance(spec, str) else dict(spec)
        name = spec if isinstance(spec, str) else str(options.pop("name", ""))
        if name.lower() in ("none", ""):
            return None
        factory = _schedulers.get(name.lower())
        if factory is None:
            raise _unknown("scheduler", name, scheduler_names())
        return factory(**options)
    named = spec.to_json().get("name")
    if not isinstance(named, str) or named not in _schedulers:
        raise ValueError(
            f"a {type(spec).__name__} whose to_json() names {named!r} cannot be journaled: register it with "
            f"nbautoml.register_scheduler(name, factory) and return {{'name': name, **options}} from to_json()"
        )
    return spec


# ---- the built-ins, registered the way a user's own are ---------------------------------------------------
def _bayes(estimator: str) -> SamplerFactory:
    def factory(space: Space, seed: int | None = None, **options: Any) -> Sampler:
        from nbautoml.engine.samplers.bayes import BayesSampler

        return BayesSampler(space, estimator=estimator, seed=seed, **options)

    return factory


def _random(space: Space, seed: int | None = None, **options: Any) -> Sampler:
    from nbautoml.engine.samplers.random import RandomSampler

    return RandomSampler(space, seed=seed, **options)


def _grid(space: Space, seed: int | None = None, **options: Any) -> Sampler:
    from nbautoml.engine.samplers.grid import GridSampler

    return GridSampler(space, seed=seed, **options)


def _evolution(space: Space, seed: int | None = None, **options: Any) -> Sampler:
    from nbautoml.engine.samplers.evolution import EvolutionSampler

    return EvolutionSampler(space, seed=seed, **options)


def _parego(space: Space, seed: int | None = None, **options: Any) -> Sampler:
    from nbautoml.engine.samplers.parego import ParEGOSampler

    return ParEGOSampler(space, seed=seed, **options)


register_sampler("bayes", _bayes("gp"))  # bayes = a Gaussian-process surrogate
for _estimator in ("gp", "rf", "et"):
    register_sampler(_estimator, _bayes(_estimator))
register_sampler("random", _random)
register_sampler("grid", _grid)
register_sampler("evolution", _evolution)
register_sampler("parego", _parego)
register_scheduler("asha", ASHA)
register_scheduler("median", MedianStopping)
register_scheduler("hyperband", Hyperband)
