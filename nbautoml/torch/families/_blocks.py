"""What the built-in families share: param checks that name the bad param, activations, norms, residuals.

The checks raise a ValueError naming the param and its allowed values, so a broken point fails loudly
instead of training the wrong model.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from nbautoml.space import Choice

__all__ = ["ACTIVATIONS", "NORMS", "Residual", "activation", "activations", "check_bool", "check_choice",
           "check_float", "check_int", "norm"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
}
NORMS = ("none", "batch", "layer")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ValueError(f"param {name!r} must be an integer, got {value!r}")
    out = int(float(value))
    if out < low or (high is not None and out > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"param {name!r} must be {bound}, got {value!r}")
    return out


def check_float(name: str, value: Any, low: float, high: float, *, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"param {name!r} must be a finite number, got {value!r}")
    out = float(value)
    if out < low or out > high or (high_open and out == high):
        end = ")" if high_open else "]"
        raise ValueError(f"param {name!r} must be in [{low}, {high}{end}, got {value!r}")
    return out


def check_choice(name: str, value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"param {name!r} must be one of {list(options)}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, numbers.Integral)) and int(value) in (0, 1):
        return bool(value)
    raise ValueError(f"param {name!r} must be True or False, got {value!r}")


def activations() -> Choice:
    """The activation dimension every built-in space searches."""
    return Choice(list(ACTIVATIONS))


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[check_choice("activation", name, list(ACTIVATIONS))]()


def norm(name: str, width: int, dims: int) -> nn.Module:
    """Normalisation over features (``dims=0``, MLP) or channels of a 1-D / 2-D feature map."""
    if name == "batch":
        return nn.BatchNorm1d(width) if dims in (0, 1) else nn.BatchNorm2d(width)
    if name == "layer":
        return nn.LayerNorm(width) if dims == 0 else nn.GroupNorm(1, width)
    return nn.Identity()


class Residual(nn.Module):
    """``body(x) + skip(x)``: skip is the identity when shapes match, a projection otherwise."""

    def __init__(self, body: nn.Module, skip: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)
