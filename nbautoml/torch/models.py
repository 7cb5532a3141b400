"""Models built from architecture params, for any registered family: the neural-architecture part of a space.

``space(kind, input_shape, n_outputs)`` is a family's default search space and ``build(kind, params,
input_shape, n_outputs)`` turns one point of it into an ``nn.Module``. ``build`` takes the trial's whole
params dict (optimizer params such as ``lr`` live in the same dict and are ignored here), fills missing
architecture keys from the family's defaults, and raises a ValueError naming the first bad param, so a broken
point fails loudly instead of training the wrong model. The resolved architecture is kept on the model as
``model.nbautoml_arch`` (plain JSON: kind, params, input_shape, n_outputs) so a saved model can be rebuilt
from its weights without any pickle.

``input_shape`` never includes the batch dim; each family takes some of the layouts
:data:`~nbautoml.torch.families.base.LAYOUTS` names: (F,) tabular, (C, L) sequences, (C, H, W) images. The
families themselves, and the plain builders ``mlp``, ``cnn``, ``gru``, live in :mod:`nbautoml.torch.families`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from nbautoml.space import Space
from nbautoml.torch.families import LAYOUTS, get_family, shape_text
from nbautoml.torch.families._blocks import ACTIVATIONS, check_int
from nbautoml.torch.families.cnn import cnn
from nbautoml.torch.families.gru import RecurrentNet, gru
from nbautoml.torch.families.mlp import mlp

__all__ = ["ACTIVATIONS", "RecurrentNet", "arch_params", "build", "cnn", "gru", "input_shape_of", "mlp", "space"]


def arch_params(kind: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The family's architecture params from ``params`` (other keys ignored), defaults filled, checked."""
    return get_family(kind).arch_params(dict(params or {}))


def input_shape_of(kind: str, input_shape: Sequence[int] | int) -> tuple[int, ...]:
    """``input_shape`` as a tuple, checked against the layouts the family takes."""
    layouts = get_family(kind).layouts
    single = isinstance(input_shape, numbers.Integral)
    dims: tuple[Any, ...] = (input_shape,) if single else tuple(input_shape)  # type: ignore[arg-type]
    if len(dims) not in {len(LAYOUTS[layout]) for layout in layouts}:
        wanted = " or ".join(shape_text(layout) for layout in layouts)
        raise ValueError(f"input_shape {dims!r}: {kind} needs input_shape {wanted} (no batch dim; add a channel "
                         "axis if missing)")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
            raise ValueError(f"input_shape {dims!r}: every size must be a positive integer")
    return tuple(int(d) for d in dims)


def space(kind: str, input_shape: Sequence[int] | int, n_outputs: int) -> Space:
    """The family's default architecture search space, sized for small / medium data."""
    shape = input_shape_of(kind, input_shape)
    return get_family(kind).space(shape, check_int("n_outputs", n_outputs, 1))


def build(kind: str, params: Mapping[str, Any] | None, input_shape: Sequence[int] | int,
          n_outputs: int) -> nn.Module:
    """The family's model for one point of its space; extra keys in ``params`` ignored, missing ones default.

    ``input_shape`` excludes the batch dim; the resolved architecture is stored as ``model.nbautoml_arch``.
    """
    family = get_family(kind)
    shape = input_shape_of(kind, input_shape)
    n_out = check_int("n_outputs", n_outputs, 1)
    p = family.arch_params(dict(params or {}))
    model = family.build(p, shape, n_out)
    arch: dict[str, Any] = {"kind": kind, "params": p, "input_shape": list(shape), "n_outputs": n_out}
    model.nbautoml_arch = arch  # type: ignore[assignment]  # a plain attribute, not a submodule
    return model
