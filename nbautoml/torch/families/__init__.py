"""The model-family registry: ``register_family(name, family)``, ``family_names()``, ``get_family(name)``.

Everything that varies by family (``fit``'s space and warm start, building a model, the leaderboard's
label and columns, whether fused training stacks it, loading a saved model) asks the registry, so a family
is one module plus one call (the protocol: :mod:`nbautoml.torch.families.base`). The built-ins register below
the same way; names are lower-case; registration order is the order ``fit(model="auto")`` lists them in.

A saved model or a study names its family: a process that loads one must have registered that family first
(the error says so).
"""

from __future__ import annotations

from nbautoml.torch.families.base import LAYOUTS, Family, FamilyBase, Fusion, shape_text
from nbautoml.torch.families.cnn import CNN
from nbautoml.torch.families.gru import GRU
from nbautoml.torch.families.mlp import MLP

__all__ = ["LAYOUTS", "Family", "FamilyBase", "Fusion", "auto_families", "family_names", "get_family",
           "register_family", "shape_text"]

_FAMILIES: dict[str, Family] = {}
_MEMBERS = ("layouts", "auto_for", "defaults", "start", "fusion", "space", "arch_params", "build", "describe",
            "columns", "training")


def register_family(name: str, family: Family, *, replace: bool = False) -> None:
    """Make ``family`` available as ``model=name`` to ``fit``, to ``models.build`` and to ``load_model``.

    ``name``: lower-case letters, digits and ``_`` (it prefixes the family's params in a multi-family
    space). Registering a taken name raises unless ``replace=True``.
    """
    if not isinstance(name, str) or not name or name != name.lower() or not name.replace("_", "a").isalnum() \
            or not name[0].isalpha():
        raise ValueError(f"a family name is lower-case letters, digits and '_' starting with a letter, got {name!r}")
    missing = [m for m in _MEMBERS if not hasattr(family, m)]
    if missing:
        raise TypeError(f"family {name!r} lacks {missing} (see nbautoml.torch.families.base.Family; "
                        "subclass FamilyBase for defaults)")
    unknown = [layout for layout in family.layouts if layout not in LAYOUTS]
    if not family.layouts or unknown:
        raise ValueError(f"family {name!r}: layouts must be some of {list(LAYOUTS)}, got {family.layouts!r}")
    if name in _FAMILIES and not replace:
        raise ValueError(f"family {name!r} is already registered; pass replace=True to replace it")
    _FAMILIES[name] = family


def family_names() -> list[str]:
    """The registered families, in registration order."""
    return list(_FAMILIES)


def get_family(name: str) -> Family:
    """The family registered as ``name``; a ValueError names the registered ones otherwise."""
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model family {name!r}; registered: {family_names()} "
                         "(nbautoml.torch.register_family adds one)") from None


def auto_families(layout: str) -> tuple[str, ...]:
    """The families ``fit(model="auto")`` searches for data of ``layout``."""
    return tuple(name for name, family in _FAMILIES.items() if layout in family.auto_for)


register_family("mlp", MLP())
register_family("cnn1d", CNN(dims=1))
register_family("cnn2d", CNN(dims=2))
register_family("gru", GRU())
