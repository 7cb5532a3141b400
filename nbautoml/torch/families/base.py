"""The model-family protocol: what ``nbautoml.fit`` and the torch layer ask of a family, and nothing more.

A family turns architecture params into an ``nn.Module`` for one data layout. It contributes its own search
space (``fit`` prefixes the names with the family's name when several families share a study, so each
family's params hold only when ``family`` chose it), validates a point of it, labels it for the leaderboard,
and says whether fused training can stack K of its models (:class:`Fusion`). Register one with
:func:`nbautoml.torch.register_family`; the built-ins (``mlp``, ``cnn1d``, ``cnn2d``, ``gru``) are registered
the same way, so nothing outside their modules names them.

:class:`FamilyBase` gives every member but :meth:`Family.space` and :meth:`Family.build` a default, so a
family of one's own is a subclass with ``layouts``, ``defaults`` and those two methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import nn

from nbautoml.space import Space

__all__ = ["LAYOUTS", "Family", "FamilyBase", "Fusion", "fit_training", "shape_text"]

LAYOUTS: dict[str, tuple[str, ...]] = {"tabular": ("F",), "sequence": ("C", "L"), "image": ("C", "H", "W")}
"""The data layouts ``fit`` tells apart (:func:`nbautoml.torch.data.layout_of`) and the axes of each one's
per-sample ``input_shape`` (the batch dim left out)."""


def shape_text(layout: str) -> str:
    """A layout's per-sample shape as users write it: "(F,)", "(C, L)", "(C, H, W)"."""
    axes = LAYOUTS[layout]
    return f"({', '.join(axes)}{',' if len(axes) == 1 else ''})"


@dataclass(frozen=True)
class Fusion:
    """How fused training (:mod:`nbautoml.torch.fused`) takes a family whose models it can stack.

    ``pays_on``: the devices ("cpu", "cuda") where ``fit(fused="auto")`` fuses it, because a fused group
    trains faster per trial there than one model at a time (measured: bench/fused.py); ``fused=True`` fuses
    a fusable family on any device. ``varying``: architecture params that may differ inside a fused group;
    they must change no tensor shape (a dropout rate: the fused net draws each member's mask at its own
    rate). Every other architecture param is structural: members of a group share it.
    """

    pays_on: tuple[str, ...] = ("cuda",)
    varying: tuple[str, ...] = ("dropout",)


def fit_training(epochs: int) -> dict[str, Any]:
    """The training options ``fit`` gives a trial unless its family says otherwise (fused or not alike)."""
    return {"early_stopping": max(5, epochs // 4), "grad_clip": 5.0}


@runtime_checkable
class Family(Protocol):
    """A model family: its layouts, defaults, search space, builder, leaderboard label and fusion."""

    @property
    def layouts(self) -> tuple[str, ...]:
        """Keys of :data:`LAYOUTS` it takes; ``build`` and ``space`` get an ``input_shape`` of one of them."""
        ...

    @property
    def auto_for(self) -> tuple[str, ...]:
        """Layouts for which ``fit(model="auto")`` picks it (a registered family of one's own: usually none)."""
        ...

    @property
    def defaults(self) -> Mapping[str, Any]:
        """Its architecture params and the value ``build`` uses when a point lacks one (plain JSON values)."""
        ...

    @property
    def start(self) -> Mapping[str, Any]:
        """``fit``'s warm start: one modest, usually good architecture, tried first."""
        ...

    @property
    def fusion(self) -> Fusion | None:
        """How fused training stacks its models, or None when it cannot (it then trains one by one)."""
        ...

    def space(self, input_shape: tuple[int, ...], n_outputs: int) -> Space:
        """Its default architecture search space for data of this per-sample shape."""
        ...

    def arch_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Its architecture params from ``params`` (other keys ignored), defaults filled; a ValueError names
        the first bad one."""
        ...

    def build(self, arch: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        """The network for ``arch`` (what :meth:`arch_params` returned): ``(N, *input_shape)`` in,
        ``(N, n_outputs)`` out (logits, or standardised predictions for regression)."""
        ...

    def describe(self, arch: Mapping[str, Any]) -> str:
        """A short label of ``arch`` for the leaderboard's ``model`` column."""
        ...

    def columns(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Extra leaderboard columns of a trial of this family (e.g. its dropout)."""
        ...

    def training(self, epochs: int) -> dict[str, Any]:
        """The options ``fit`` trains it with (``train``'s and ``train_fused``'s keywords), ``epochs`` being
        ASHA's maximum."""
        ...


class FamilyBase:
    """Defaults for every :class:`Family` member but ``space`` and ``build`` (subclass and set the rest)."""

    name = "family"  # how describe() labels it; set it to the registered name
    layouts: tuple[str, ...] = ("tabular",)
    auto_for: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = {}
    fusion: Fusion | None = None

    @property
    def start(self) -> Mapping[str, Any]:
        return self.defaults

    def space(self, input_shape: tuple[int, ...], n_outputs: int) -> Space:
        raise NotImplementedError(f"{type(self).__name__}.space")

    def build(self, arch: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__}.build")

    def arch_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {name: params.get(name, default) for name, default in self.defaults.items()}

    def describe(self, arch: Mapping[str, Any]) -> str:
        shown = " ".join(f"{k}={v}" for k, v in arch.items() if k != "dropout")
        return f"{self.name} {shown}".strip()

    def columns(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return {"dropout": arch.get("dropout")}

    def training(self, epochs: int) -> dict[str, Any]:
        return fit_training(epochs)
