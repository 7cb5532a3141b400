"""The ``gru`` family: a GRU (or ``cell="lstm"``) over (N, C, L), the CNN-1D layout, so one array feeds both.

The input is transposed to (N, L, C) inside: C is the recurrent net's features, L its time steps. The readout
is the last layer's final state (both directions when ``bidirectional``) or the mean over time, then dropout
and a linear head. Not fusable: stacking K recurrences would need a batched RNN kernel; it trains one by one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import nbautoml.torch.families._blocks as b
from nbautoml.space import Choice, Int, Real, Space
from nbautoml.torch.families.base import FamilyBase

__all__ = ["GRU", "RecurrentNet", "gru"]

CELLS = ("gru", "lstm")
READOUTS = ("last", "mean")


class GRU(FamilyBase):
    name = "gru"
    layouts = ("sequence",)
    auto_for = ("sequence",)
    defaults: Mapping[str, Any] = {"cell": "gru", "layers": 1, "hidden": 64, "bidirectional": False,
                                   "dropout": 0.0, "readout": "last"}
    start: Mapping[str, Any] = {**defaults, "dropout": 0.1}

    def space(self, input_shape: tuple[int, ...], n_outputs: int) -> Space:
        return Space(cell=Choice(list(CELLS)), layers=Int(1, 3), hidden=Int(16, 256, log=True),
                     bidirectional=Choice([False, True]), dropout=Real(0.0, 0.5), readout=Choice(list(READOUTS)))

    def arch_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        p = super().arch_params(params)
        return {"cell": b.check_choice("cell", p["cell"], CELLS), "layers": b.check_int("layers", p["layers"], 1, 64),
                "hidden": b.check_int("hidden", p["hidden"], 1),
                "bidirectional": b.check_bool("bidirectional", p["bidirectional"]),
                "dropout": b.check_float("dropout", p["dropout"], 0.0, 1.0, high_open=True),
                "readout": b.check_choice("readout", p["readout"], READOUTS)}

    def build(self, arch: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        return RecurrentNet(input_shape[0], n_outputs, **arch)

    def describe(self, arch: Mapping[str, Any]) -> str:
        a = self.arch_params(arch)
        return f"{a['cell']} {a['layers']}x{a['hidden']}{' bi' if a['bidirectional'] else ''} {a['readout']}"


class RecurrentNet(nn.Module):
    """GRU / LSTM over (N, C, L) input (the CNN-1D layout), read out from the last state or the time mean."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, layers: int = 1,
                 bidirectional: bool = False, cell: str = "gru", dropout: float = 0.0,
                 readout: str = "last") -> None:
        super().__init__()
        p = GRU().arch_params({"hidden": hidden, "layers": layers, "bidirectional": bidirectional,
                               "cell": cell, "dropout": dropout, "readout": readout})
        rnn_cls = nn.GRU if p["cell"] == "gru" else nn.LSTM
        self.rnn = rnn_cls(b.check_int("in_features", in_features, 1), p["hidden"], num_layers=p["layers"],
                           batch_first=True, bidirectional=p["bidirectional"],
                           dropout=p["dropout"] if p["layers"] > 1 else 0.0)
        self.directions = 2 if p["bidirectional"] else 1
        self.readout = p["readout"]
        self.dropout = nn.Dropout(p["dropout"])
        self.head = nn.Linear(p["hidden"] * self.directions, b.check_int("out_features", out_features, 1))

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
