"""The ``mlp`` family: a multilayer perceptron over (N, F); inputs with more dims (images) are flattened.

``units`` is the first hidden layer's width; ``shape`` "constant" keeps it, "funnel" halves it each layer
(never below 4), "diamond" doubles towards the middle and comes back (u, 2u, 2u, u). A layer is linear, norm
(``norm="layer"`` is LayerNorm), activation, (+ skip when ``residual``: identity when the widths match, a
bias-free linear projection otherwise), dropout. ``layers=0`` is a linear model. Fused training stacks its
models on any device (it pays on the CPU too: 2.5x at K=4 on a 2-core CPU, bench/fused.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

import nbautoml.torch.families._blocks as b
from nbautoml.space import Choice, Int, Real, Space
from nbautoml.torch.families.base import FamilyBase, Fusion

__all__ = ["MLP", "mlp"]

SHAPES = ("constant", "funnel", "diamond")


def widths(layers: int, units: int, shape: str) -> list[int]:
    """The hidden layers' widths."""
    if shape == "funnel":
        return [max(4, units >> i) for i in range(layers)]
    if shape == "diamond":
        return [units * 2 ** min(i, layers - 1 - i) for i in range(layers)]
    return [units] * layers


class MLP(FamilyBase):
    name = "mlp"
    layouts = ("tabular", "sequence", "image")
    auto_for = ("tabular",)
    defaults: Mapping[str, Any] = {"layers": 2, "units": 128, "shape": "constant", "activation": "relu",
                                   "dropout": 0.0, "norm": "none", "residual": False}
    start: Mapping[str, Any] = {"layers": 2, "units": 256, "shape": "constant", "activation": "relu",
                                "dropout": 0.2, "norm": "batch", "residual": False}
    fusion = Fusion(pays_on=("cpu", "cuda"))

    def space(self, input_shape: tuple[int, ...], n_outputs: int) -> Space:
        return Space(layers=Int(1, 4), units=Int(32, 512, log=True), shape=Choice(list(SHAPES)),
                     activation=b.activations(), dropout=Real(0.0, 0.5), norm=Choice(list(b.NORMS)),
                     residual=Choice([False, True]))

    def arch_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        p = super().arch_params(params)
        return {"layers": b.check_int("layers", p["layers"], 0, 64), "units": b.check_int("units", p["units"], 1),
                "shape": b.check_choice("shape", p["shape"], SHAPES),
                "activation": b.check_choice("activation", p["activation"], list(b.ACTIVATIONS)),
                "dropout": b.check_float("dropout", p["dropout"], 0.0, 1.0, high_open=True),
                "norm": b.check_choice("norm", p["norm"], b.NORMS), "residual": b.check_bool("residual", p["residual"])}

    def build(self, arch: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        return mlp(math.prod(input_shape), n_outputs, **arch)

    def describe(self, arch: Mapping[str, Any]) -> str:
        a = self.arch_params(arch)
        return f"mlp {a['layers']}x{a['units']} {a['shape']} {a['activation']} norm={a['norm']}"


def mlp(in_features: int, out_features: int, layers: int = 2, units: int = 128, activation: str = "relu",
        dropout: float = 0.0, norm: str = "none", residual: bool = False,
        shape: str = "constant") -> nn.Sequential:
    """A multilayer perceptron; ``layers=0`` is a linear model. Inputs with more than 2 dims are flattened."""
    p = MLP().arch_params({"layers": layers, "units": units, "activation": activation, "dropout": dropout,
                           "norm": norm, "residual": residual, "shape": shape})
    width = b.check_int("in_features", in_features, 1)
    mods: list[nn.Module] = [nn.Flatten()]
    for out in widths(p["layers"], p["units"], p["shape"]):
        body = nn.Sequential(nn.Linear(width, out), b.norm(p["norm"], out, 0), b.activation(p["activation"]))
        if p["residual"]:
            skip = nn.Identity() if out == width else nn.Linear(width, out, bias=False)
            mods.append(b.Residual(body, skip))
        else:
            mods.append(body)
        if p["dropout"] > 0:
            mods.append(nn.Dropout(p["dropout"]))
        width = out
    mods.append(nn.Linear(width, b.check_int("out_features", out_features, 1)))
    return nn.Sequential(*mods)
