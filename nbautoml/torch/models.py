"""MLP / CNN / GRU built from architecture params: the neural-architecture part of a search space.

``space(kind, input_shape, n_outputs)`` is the default search space of a family and
``build(kind, params, input_shape, n_outputs)`` turns one point of it into an ``nn.Module``. ``build`` takes
the trial's whole params dict (optimizer params such as ``lr`` live in the same dict and are ignored here),
fills missing architecture keys from :data:`DEFAULTS`, and raises a ValueError naming the first bad param, so
a broken point fails loudly instead of training the wrong model. The resolved architecture is kept on the
model as ``model.nbautoml_arch`` (plain JSON: kind, params, input_shape, n_outputs) so a saved model can be
rebuilt from its weights without any pickle.

Array layouts (``input_shape`` never includes the batch dim):
  * ``mlp``   (N, F); inputs with more dims (e.g. images) are flattened first.
  * ``cnn1d`` (N, C, L) and ``cnn2d`` (N, C, H, W); the channel axis is required.
  * ``gru``   (N, C, L), the same layout as cnn1d so one array feeds both families; it is transposed to
    (N, L, C) inside. ``cell="lstm"`` makes it an LSTM.

Shapes the params control:
  * MLP ``units`` is the first hidden layer's width; ``shape`` "constant" keeps it, "funnel" halves it each
    layer (never below 4), "diamond" doubles towards the middle and comes back (u, 2u, 2u, u).
  * CNN block i has ``round(channels * growth**i)`` channels (capped at 1024): conv (odd ``kernel``, "same"
    padding), norm, activation (+ skip), 2x pooling, dropout. Pooling uses ``ceil_mode`` so any spatial
    size works (a size-1 axis stays 1: 8x8 digits take any number of blocks). The head is global average
    pooling and a linear layer. ``norm="layer"`` is GroupNorm(1, C): layer norm over channels and positions.
  * Residual connections add the block's input: identity when the shapes match, a bias-free linear / 1x1
    conv projection otherwise.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nbautoml.space import Choice, Int, Real, Space

__all__ = ["ACTIVATIONS", "DEFAULTS", "KINDS", "arch_params", "build", "cnn", "gru", "mlp", "space"]

KINDS = ("mlp", "cnn1d", "cnn2d", "gru")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
}
NORMS = ("none", "batch", "layer")
MLP_SHAPES = ("constant", "funnel", "diamond")
POOLS = ("max", "avg")
CELLS = ("gru", "lstm")
READOUTS = ("last", "mean")
MAX_CHANNELS = 1024

_MLP = {"layers": 2, "units": 128, "shape": "constant", "activation": "relu", "dropout": 0.0, "norm": "none",
        "residual": False}
_CNN = {"blocks": 2, "channels": 32, "growth": 2.0, "kernel": 3, "pool": "max", "activation": "relu",
        "dropout": 0.0, "norm": "batch", "residual": False}
_GRU = {"cell": "gru", "layers": 1, "hidden": 64, "bidirectional": False, "dropout": 0.0, "readout": "last"}
DEFAULTS: dict[str, dict[str, Any]] = {"mlp": _MLP, "cnn1d": _CNN, "cnn2d": _CNN, "gru": _GRU}
"""The architecture params of each family and the value ``build`` uses when one is missing."""


# ---- validation --------------------------------------------------------------------------------------------
def _int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ValueError(f"param {name!r} must be an integer, got {value!r}")
    out = int(float(value))
    if out < low or (high is not None and out > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"param {name!r} must be {bound}, got {value!r}")
    return out


def _float(name: str, value: Any, low: float, high: float, *, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"param {name!r} must be a finite number, got {value!r}")
    out = float(value)
    if out < low or out > high or (high_open and out == high):
        end = ")" if high_open else "]"
        raise ValueError(f"param {name!r} must be in [{low}, {high}{end}, got {value!r}")
    return out


def _choice(name: str, value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"param {name!r} must be one of {list(options)}, got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, numbers.Integral)) and int(value) in (0, 1):
        return bool(value)
    raise ValueError(f"param {name!r} must be True or False, got {value!r}")


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {list(KINDS)}")
    return kind


def arch_params(kind: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The family's architecture params from ``params`` (other keys ignored), defaults filled, checked."""
    defaults = DEFAULTS[_check_kind(kind)]
    given = dict(params or {})
    p = {name: given.get(name, default) for name, default in defaults.items()}
    out: dict[str, Any] = {}
    for name in ("layers", "blocks"):
        if name in p:
            out[name] = _int(name, p[name], 0 if kind == "mlp" else 1, 64)
    for name in ("units", "channels", "hidden"):
        if name in p:
            out[name] = _int(name, p[name], 1)
    if "shape" in p:
        out["shape"] = _choice("shape", p["shape"], MLP_SHAPES)
    if "activation" in p:
        out["activation"] = _choice("activation", p["activation"], list(ACTIVATIONS))
    out["dropout"] = _float("dropout", p["dropout"], 0.0, 1.0, high_open=True)
    if "norm" in p:
        out["norm"] = _choice("norm", p["norm"], NORMS)
    if "residual" in p:
        out["residual"] = _bool("residual", p["residual"])
    if "growth" in p:
        out["growth"] = _float("growth", p["growth"], 0.25, 4.0)
    if "kernel" in p:
        out["kernel"] = _int("kernel", p["kernel"], 1, 31)
        if out["kernel"] % 2 == 0:
            raise ValueError(f"param 'kernel' must be odd (symmetric 'same' padding), got {p['kernel']!r}")
    if "pool" in p:
        out["pool"] = _choice("pool", p["pool"], POOLS)
    if "cell" in p:
        out["cell"] = _choice("cell", p["cell"], CELLS)
    if "bidirectional" in p:
        out["bidirectional"] = _bool("bidirectional", p["bidirectional"])
    if "readout" in p:
        out["readout"] = _choice("readout", p["readout"], READOUTS)
    return {name: out[name] for name in defaults}


def _shape(kind: str, input_shape: Sequence[int] | int) -> tuple[int, ...]:
    single = isinstance(input_shape, numbers.Integral)
    dims: tuple[Any, ...] = (input_shape,) if single else tuple(input_shape)  # type: ignore[arg-type]
    want = {"mlp": None, "cnn1d": 2, "cnn2d": 3, "gru": 2}[kind]
    layout = {"cnn1d": "(C, L)", "cnn2d": "(C, H, W)", "gru": "(C, L)"}
    if not dims or (want is not None and len(dims) != want):
        hint = f"{kind} needs input_shape {layout[kind]}" if want else "mlp needs a non-empty input_shape"
        raise ValueError(f"input_shape {dims!r}: {hint} (no batch dim; add a channel axis if missing)")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
            raise ValueError(f"input_shape {dims!r}: every size must be a positive integer")
    return tuple(int(d) for d in dims)


# ---- the default search spaces ----------------------------------------------------------------------------
def space(kind: str, input_shape: Sequence[int] | int, n_outputs: int) -> Space:
    """The default architecture search space of a family, sized for small / medium data."""
    shape = _shape(_check_kind(kind), input_shape)
    _int("n_outputs", n_outputs, 1)
    acts = Choice(["relu", "gelu", "silu", "tanh", "leaky_relu"])
    if kind == "mlp":
        return Space(layers=Int(1, 4), units=Int(32, 512, log=True), shape=Choice(list(MLP_SHAPES)),
                     activation=acts, dropout=Real(0.0, 0.5), norm=Choice(list(NORMS)),
                     residual=Choice([False, True]))
    if kind in ("cnn1d", "cnn2d"):
        smallest = min(shape[1:])
        # Blocks past log2(size)+1 only see a 1-wide map; still valid, but not worth searching.
        blocks = max(2, min(4, int(math.log2(smallest)) + 1))
        kernels = [3, 5, 7] if kind == "cnn1d" and smallest >= 7 else [3, 5] if smallest >= 5 else [3]
        return Space(blocks=Int(1, blocks), channels=Int(8, 128, log=True), growth=Choice([1.0, 1.5, 2.0]),
                     kernel=Choice(kernels), pool=Choice(list(POOLS)), activation=acts,
                     dropout=Real(0.0, 0.5), norm=Choice(list(NORMS)), residual=Choice([False, True]))
    return Space(cell=Choice(list(CELLS)), layers=Int(1, 3), hidden=Int(16, 256, log=True),
                 bidirectional=Choice([False, True]), dropout=Real(0.0, 0.5), readout=Choice(list(READOUTS)))


# ---- modules ----------------------------------------------------------------------------------------------
def _activation(name: str) -> nn.Module:
    return ACTIVATIONS[_choice("activation", name, list(ACTIVATIONS))]()


def _norm(name: str, width: int, dims: int) -> nn.Module:
    """Normalisation over features (``dims=0``, MLP) or channels of a 1-D / 2-D feature map."""
    if name == "batch":
        return nn.BatchNorm1d(width) if dims in (0, 1) else nn.BatchNorm2d(width)
    if name == "layer":
        return nn.LayerNorm(width) if dims == 0 else nn.GroupNorm(1, width)
    return nn.Identity()


class _Residual(nn.Module):
    """``body(x) + skip(x)``: skip is the identity when shapes match, a projection otherwise."""

    def __init__(self, body: nn.Module, skip: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _mlp_widths(layers: int, units: int, shape: str) -> list[int]:
    if shape == "funnel":
        return [max(4, units >> i) for i in range(layers)]
    if shape == "diamond":
        return [units * 2 ** min(i, layers - 1 - i) for i in range(layers)]
    return [units] * layers


def mlp(in_features: int, out_features: int, layers: int = 2, units: int = 128, activation: str = "relu",
        dropout: float = 0.0, norm: str = "none", residual: bool = False,
        shape: str = "constant") -> nn.Sequential:
    """A multilayer perceptron; ``layers=0`` is a linear model. Inputs with more than 2 dims are flattened."""
    p = arch_params("mlp", {"layers": layers, "units": units, "activation": activation, "dropout": dropout,
                            "norm": norm, "residual": residual, "shape": shape})
    width = _int("in_features", in_features, 1)
    mods: list[nn.Module] = [nn.Flatten()]
    for out in _mlp_widths(p["layers"], p["units"], p["shape"]):
        body = nn.Sequential(nn.Linear(width, out), _norm(p["norm"], out, 0), _activation(p["activation"]))
        if p["residual"]:
            skip = nn.Identity() if out == width else nn.Linear(width, out, bias=False)
            mods.append(_Residual(body, skip))
        else:
            mods.append(body)
        if p["dropout"] > 0:
            mods.append(nn.Dropout(p["dropout"]))
        width = out
    mods.append(nn.Linear(width, _int("out_features", out_features, 1)))
    return nn.Sequential(*mods)


def cnn(in_channels: int, out_features: int, dims: int = 2, blocks: int = 2, channels: int = 32,
        kernel: int = 3, growth: float = 2.0, pool: str = "max", activation: str = "relu",
        dropout: float = 0.0, norm: str = "batch", residual: bool = False) -> nn.Sequential:
    """A CNN over (N, C, L) (``dims=1``) or (N, C, H, W) (``dims=2``) with a global-average-pooling head."""
    if dims not in (1, 2):
        raise ValueError(f"param 'dims' must be 1 or 2, got {dims!r}")
    p = arch_params("cnn1d", {"blocks": blocks, "channels": channels, "kernel": kernel, "growth": growth,
                              "pool": pool, "activation": activation, "dropout": dropout, "norm": norm,
                              "residual": residual})
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    pool_cls: type[nn.Module] = {(1, "max"): nn.MaxPool1d, (1, "avg"): nn.AvgPool1d,
                                 (2, "max"): nn.MaxPool2d, (2, "avg"): nn.AvgPool2d}[(dims, p["pool"])]
    width = _int("in_channels", in_channels, 1)
    mods: list[nn.Module] = []
    for i in range(p["blocks"]):
        out = max(1, min(MAX_CHANNELS, round(p["channels"] * p["growth"] ** i)))
        body = nn.Sequential(conv(width, out, p["kernel"], padding=p["kernel"] // 2),
                             _norm(p["norm"], out, dims), _activation(p["activation"]))
        if p["residual"]:
            skip = nn.Identity() if out == width else conv(width, out, 1, bias=False)
            mods.append(_Residual(body, skip))
        else:
            mods.append(body)
        mods.append(pool_cls(2, ceil_mode=True))
        if p["dropout"] > 0:
            mods.append(nn.Dropout(p["dropout"]))
        width = out
    gap = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
    mods += [gap, nn.Flatten(), nn.Linear(width, _int("out_features", out_features, 1))]
    return nn.Sequential(*mods)


class RecurrentNet(nn.Module):
    """GRU / LSTM over (N, C, L) input (the CNN-1D layout), read out from the last state or the time mean."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, layers: int = 1,
                 bidirectional: bool = False, cell: str = "gru", dropout: float = 0.0,
                 readout: str = "last") -> None:
        super().__init__()
        p = arch_params("gru", {"hidden": hidden, "layers": layers, "bidirectional": bidirectional,
                                "cell": cell, "dropout": dropout, "readout": readout})
        rnn_cls = nn.GRU if p["cell"] == "gru" else nn.LSTM
        self.rnn = rnn_cls(_int("in_features", in_features, 1), p["hidden"], num_layers=p["layers"],
                           batch_first=True, bidirectional=p["bidirectional"],
                           dropout=p["dropout"] if p["layers"] > 1 else 0.0)
        self.directions = 2 if p["bidirectional"] else 1
        self.readout = p["readout"]
        self.dropout = nn.Dropout(p["dropout"])
        self.head = nn.Linear(p["hidden"] * self.directions, _int("out_features", out_features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, state = self.rnn(x.transpose(1, 2))
        if self.readout == "mean":
            features = out.mean(dim=1)
        else:
            h_n = state[0] if isinstance(state, tuple) else state  # (layers * directions, N, hidden)
            features = torch.cat(list(h_n[-self.directions:]), dim=-1)
        return self.head(self.dropout(features))


def gru(in_features: int, out_features: int, hidden: int = 64, layers: int = 1, bidirectional: bool = False,
        cell: str = "gru", dropout: float = 0.0, readout: str = "last") -> RecurrentNet:
    """A GRU (or ``cell="lstm"``) classifier / regressor over (N, C, L) sequences; ``in_features`` is C."""
    return RecurrentNet(in_features, out_features, hidden=hidden, layers=layers, bidirectional=bidirectional,
                        cell=cell, dropout=dropout, readout=readout)


def build(kind: str, params: Mapping[str, Any] | None, input_shape: Sequence[int] | int,
          n_outputs: int) -> nn.Module:
    """The family's model for one point of its space; extra keys in ``params`` ignored, missing ones default.

    ``input_shape`` excludes the batch dim; the resolved architecture is stored as ``model.nbautoml_arch``.
    """
    shape = _shape(_check_kind(kind), input_shape)
    n_out = _int("n_outputs", n_outputs, 1)
    p = arch_params(kind, params)
    model: nn.Module
    if kind == "mlp":
        model = mlp(math.prod(shape), n_out, **p)
    elif kind in ("cnn1d", "cnn2d"):
        model = cnn(shape[0], n_out, dims=1 if kind == "cnn1d" else 2, **p)
    else:
        model = gru(shape[0], n_out, **p)
    arch: dict[str, Any] = {"kind": kind, "params": p, "input_shape": list(shape), "n_outputs": n_out}
    model.nbautoml_arch = arch  # type: ignore[assignment]  # a plain attribute, not a submodule
    return model
