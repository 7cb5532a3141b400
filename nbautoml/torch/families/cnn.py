"""The ``cnn1d`` and ``cnn2d`` families: a CNN over (N, C, L) or (N, C, H, W); the channel axis is required.

Block i has ``round(channels * growth**i)`` channels (capped at 1024): conv (odd ``kernel``, "same" padding),
norm, activation (+ skip when ``residual``: identity when the shapes match, a bias-free 1x1 conv otherwise),
2x pooling, dropout. Pooling uses ``ceil_mode`` so any spatial size works (a size-1 axis stays 1: 8x8 digits
take any number of blocks). The head is global average pooling and a linear layer. ``norm="layer"`` is
GroupNorm(1, C): layer norm over channels and positions. One module, two registered families: they differ
only in the number of spatial dims. Fused training stacks both (one grouped convolution per layer); on the
CPU it pays for 2-D (2.2x at K=4, bench/fused.py), not for 1-D (its 1-D pooling is slow fused).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

import nbautoml.torch.families._blocks as b
from nbautoml.space import Choice, Int, Real, Space
from nbautoml.torch.families.base import FamilyBase, Fusion

__all__ = ["CNN", "cnn"]

POOLS = ("max", "avg")
MAX_CHANNELS = 1024


class CNN(FamilyBase):
    defaults: Mapping[str, Any] = {"blocks": 2, "channels": 32, "growth": 2.0, "kernel": 3, "pool": "max",
                                   "activation": "relu", "dropout": 0.0, "norm": "batch", "residual": False}
    start: Mapping[str, Any] = {**defaults, "dropout": 0.2}

    def __init__(self, dims: int) -> None:
        if dims not in (1, 2):
            raise ValueError(f"param 'dims' must be 1 or 2, got {dims!r}")
        self.dims = dims
        self.name = f"cnn{dims}d"
        self.layouts = ("sequence",) if dims == 1 else ("image",)
        self.auto_for = self.layouts
        self.fusion = Fusion(pays_on=("cuda",) if dims == 1 else ("cpu", "cuda"))

    def space(self, input_shape: tuple[int, ...], n_outputs: int) -> Space:
        smallest = min(input_shape[1:])
        # Blocks past log2(size)+1 only see a 1-wide map; still valid, but not worth searching.
        blocks = max(2, min(4, int(math.log2(smallest)) + 1))
        kernels = [3, 5, 7] if self.dims == 1 and smallest >= 7 else [3, 5] if smallest >= 5 else [3]
        return Space(blocks=Int(1, blocks), channels=Int(8, 128, log=True), growth=Choice([1.0, 1.5, 2.0]),
                     kernel=Choice(kernels), pool=Choice(list(POOLS)), activation=b.activations(),
                     dropout=Real(0.0, 0.5), norm=Choice(list(b.NORMS)), residual=Choice([False, True]))

    def arch_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        p = super().arch_params(params)
        return {"blocks": b.check_int("blocks", p["blocks"], 1, 64),
                "channels": b.check_int("channels", p["channels"], 1),
                "growth": b.check_float("growth", p["growth"], 0.25, 4.0), "kernel": _odd_kernel(p["kernel"]),
                "pool": b.check_choice("pool", p["pool"], POOLS),
                "activation": b.check_choice("activation", p["activation"], list(b.ACTIVATIONS)),
                "dropout": b.check_float("dropout", p["dropout"], 0.0, 1.0, high_open=True),
                "norm": b.check_choice("norm", p["norm"], b.NORMS), "residual": b.check_bool("residual", p["residual"])}

    def build(self, arch: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        return cnn(input_shape[0], n_outputs, dims=self.dims, **arch)

    def describe(self, arch: Mapping[str, Any]) -> str:
        a = self.arch_params(arch)
        return f"{self.name} {a['blocks']}x{a['channels']}ch k{a['kernel']} {a['pool']} {a['activation']}"


def _odd_kernel(value: Any) -> int:
    kernel = b.check_int("kernel", value, 1, 31)
    if kernel % 2 == 0:
        raise ValueError(f"param 'kernel' must be odd (symmetric 'same' padding), got {value!r}")
    return kernel


def cnn(in_channels: int, out_features: int, dims: int = 2, blocks: int = 2, channels: int = 32,
        kernel: int = 3, growth: float = 2.0, pool: str = "max", activation: str = "relu",
        dropout: float = 0.0, norm: str = "batch", residual: bool = False) -> nn.Sequential:
    """A CNN over (N, C, L) (``dims=1``) or (N, C, H, W) (``dims=2``) with a global-average-pooling head."""
    p = CNN(dims).arch_params({"blocks": blocks, "channels": channels, "kernel": kernel, "growth": growth,
                               "pool": pool, "activation": activation, "dropout": dropout, "norm": norm,
                               "residual": residual})
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    pool_cls: type[nn.Module] = {(1, "max"): nn.MaxPool1d, (1, "avg"): nn.AvgPool1d,
                                 (2, "max"): nn.MaxPool2d, (2, "avg"): nn.AvgPool2d}[(dims, p["pool"])]
    width = b.check_int("in_channels", in_channels, 1)
    mods: list[nn.Module] = []
    for i in range(p["blocks"]):
        out = max(1, min(MAX_CHANNELS, round(p["channels"] * p["growth"] ** i)))
        body = nn.Sequential(conv(width, out, p["kernel"], padding=p["kernel"] // 2),
                             b.norm(p["norm"], out, dims), b.activation(p["activation"]))
        if p["residual"]:
            skip = nn.Identity() if out == width else conv(width, out, 1, bias=False)
            mods.append(b.Residual(body, skip))
        else:
            mods.append(body)
        mods.append(pool_cls(2, ceil_mode=True))
        if p["dropout"] > 0:
            mods.append(nn.Dropout(p["dropout"]))
        width = out
    gap = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
    mods += [gap, nn.Flatten(), nn.Linear(width, b.check_int("out_features", out_features, 1))]
    return nn.Sequential(*mods)
