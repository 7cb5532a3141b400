"""Structural edits of compression: removing units computes what they computed, folding keeps outputs, and
a compressed member's structure is rebuilt exactly from its JSON (so its state dict loads)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from nbautoml.torch import models
from nbautoml.torch.compress import _structure


def _silence(net: nn.Module, keeps: list[torch.Tensor]) -> None:
    """Zero every unit / channel outside ``keeps``: with no norm, each then outputs relu(0) = 0."""
    for stage, keep in zip(_structure.stages(net), keeps, strict=True):
        drop = torch.ones(stage.width, dtype=torch.bool)
        drop[keep] = False
        with torch.no_grad():
            stage.main.weight[drop] = 0.0  # type: ignore[index]
            stage.main.bias[drop] = 0.0  # type: ignore[index]
            if stage.skip_owner is not None and not stage.tied:
                stage.skip_owner.skip.weight[drop] = 0.0  # type: ignore[index]


@pytest.mark.parametrize(("kind", "params", "shape"), [
    ("mlp", {"layers": 3, "units": 16, "norm": "none"}, (12,)),
    ("mlp", {"layers": 2, "units": 16, "norm": "none", "residual": True, "shape": "funnel"}, (12,)),
    ("cnn2d", {"blocks": 2, "channels": 8, "norm": "none", "residual": True}, (1, 8, 8)),
    ("cnn1d", {"blocks": 2, "channels": 6, "norm": "none", "growth": 1.0}, (2, 10)),
])
def test_removing_silent_units_keeps_the_outputs(kind: str, params: dict, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = models.build(kind, params, shape, 3).eval()
    found = _structure.stages(net)
    keeps = [torch.arange(0, s.width, 2) for s in found]
    _silence(net, keeps)
    x = torch.randn(5, *shape)
    before = net(x)
    _structure.shrink(net, keeps)
    assert [s.width for s in _structure.stages(net)] == [len(k) for k in keeps]
    torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-6)


def test_identity_skip_is_not_pruned() -> None:
    net = models.build("mlp", {"layers": 2, "units": 12, "residual": True}, (12,), 2)
    assert all(s.tied for s in _structure.stages(net))
    with pytest.raises(ValueError, match="identity skip"):
        _structure.shrink(net, [torch.arange(6), None])


@pytest.mark.parametrize(("kind", "params", "shape"), [
    ("mlp", {"layers": 2, "units": 16, "norm": "batch", "dropout": 0.3}, (12,)),
    ("cnn2d", {"blocks": 2, "channels": 8, "norm": "batch", "dropout": 0.2}, (1, 8, 8)),
])
def test_slim_folds_norms_and_drops_no_ops(kind: str, params: dict, shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    net = models.build(kind, params, shape, 3)
    net.train()
    for _ in range(3):  # give the batch norms real running statistics
        net(torch.randn(32, *shape))
    net.eval()
    x = torch.randn(6, *shape)
    before = net(x)
    _structure.slim(net)
    kinds = {type(m) for m in net.modules()}
    assert not kinds & {nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Identity}
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("kind", "how", "shape"), [("mlp", "dynamic", (12,)), ("gru", "dynamic", (3, 7)),
                                                    ("cnn2d", "static", (1, 8, 8))])
def test_rebuild_gives_the_structure_a_saved_state_loads_into(kind: str, how: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(2)
    net = models.build(kind, {}, shape, 4).eval()
    arch = {**dict(net.nbautoml_arch), "compress": {"slim": True, "quantize": how}}  # type: ignore[arg-type]
    if kind != "gru":
        keeps = [torch.arange(s.width // 2) for s in _structure.stages(net)]
        _structure.shrink(net, keeps)
        arch["compress"]["widths"] = [s.width for s in _structure.stages(net)]
    _structure.slim(net)
    x = torch.randn(9, *shape)
    quantized = _structure.apply_quantization(net, how, x)
    buffer = io.BytesIO()
    torch.save(_structure.state_of(quantized), buffer)
    buffer.seek(0)
    again = _structure.rebuild(arch)
    _structure.load_state(again, torch.load(buffer, weights_only=True))
    torch.testing.assert_close(again(x), quantized(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown quantization"):
        _structure.apply_quantization(net, "int4", x)
