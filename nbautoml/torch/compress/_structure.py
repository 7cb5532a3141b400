"""The structural edits compression makes to a network, replayable so a saved model loads without pickle.

A compressed member's ``arch`` is ``models.build``'s JSON plus ``"compress": {"widths", "slim", "quantize"}``:

- ``widths``: the width of every prunable stage (an MLP hidden layer, a CNN block) after structured pruning;
  units / channels are *removed* (the dense model is smaller), not masked;
- ``slim``: batch norms folded into the layer before them (``torch.nn.utils.fusion``) and eval-time no-ops
  (dropout, identities) taken out of the ``Sequential``s: fewer module calls, which is most of a small
  network's batch-1 latency on a CPU;
- ``quantize``: "dynamic" (int8 weights of Linear / GRU / LSTM, activations quantized on the fly) or
  "static" (int8 weights and activations, calibrated; FX graph mode, for CNNs).

:func:`rebuild` replays the edits on a freshly built network (pruning keeps the first ``w`` units, batch norms
fold with their fresh statistics, quantization observes a zero batch), which gives exactly the module
structure and state-dict keys of the compressed network; its saved state dict then loads with
``torch.load(weights_only=True)``. Measured here (torch 2.13): a dynamically quantized Linear's state dict
holds its int8 weight as a quantized tensor inside a tuple, an FX-converted CNN's holds quantized tensors and
scales, and both load with ``weights_only=True``; a dynamically quantized GRU / LSTM saves float weights
(torch re-quantizes them when loading), so its file does not shrink.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from nbautoml.torch import models
from nbautoml.torch.families._blocks import Residual

__all__ = ["Stage", "apply_quantization", "rebuild", "shrink", "slim", "stages"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
Layer = nn.Linear | nn.Conv1d | nn.Conv2d


@dataclass
class Stage:
    """One prunable stage of a Sequential network: the layer making its outputs and what reads them."""

    holder: nn.Sequential  # the Sequential whose index ``main_at`` holds ``main``
    main_at: int
    norm_at: int | None  # index of the norm module in ``holder`` (None: no norm)
    skip_owner: Residual | None  # the residual wrapper, when the stage has a skip
    tied: bool  # an identity skip ties the stage's width to its input: cannot prune

    @property
    def main(self) -> Layer:
        layer = self.holder[self.main_at]
        assert isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d))
        return layer

    @property
    def width(self) -> int:
        main = self.main
        return main.out_features if isinstance(main, nn.Linear) else main.out_channels


def stages(net: nn.Module) -> list[Stage]:
    """The stages of an MLP / CNN built by ``models.build`` (empty for other networks: nothing to prune)."""
    if not isinstance(net, nn.Sequential):
        return []
    found = []
    for block in net:
        owner = block if isinstance(block, Residual) else None
        body = block.body if isinstance(block, Residual) else block
        if not isinstance(body, nn.Sequential) or not len(body):
            continue
        if not isinstance(body[0], (nn.Linear, nn.Conv1d, nn.Conv2d)):
            continue
        norm_at = 1 if len(body) > 1 and isinstance(body[1], (*_BATCH_NORMS, nn.LayerNorm, nn.GroupNorm)) else None
        tied = owner is not None and isinstance(owner.skip, nn.Identity)
        found.append(Stage(body, 0, norm_at, owner, tied))
    return found


def _head(net: nn.Sequential) -> nn.Linear:
    head = net[len(net) - 1]
    if not isinstance(head, nn.Linear):
        raise ValueError(f"expected the network to end in a Linear layer, got {type(head).__name__}")
    return head


def _cut(layer: nn.Module, keep: torch.Tensor | None, keep_in: torch.Tensor | None) -> Layer:
    """A copy of a Linear / Conv layer with output rows ``keep`` and input columns ``keep_in`` only."""
    assert isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d))
    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else None
    if keep is not None:
        weight = weight[keep]
        bias = bias[keep] if bias is not None else None
    if keep_in is not None:
        weight = weight[:, keep_in]
    new = copy.deepcopy(layer)  # same kernel, stride, padding; only the sizes change
    new.weight = nn.Parameter(weight.clone())
    if bias is not None:
        new.bias = nn.Parameter(bias.clone())
    out_n, in_n = int(weight.shape[0]), int(weight.shape[1])
    if isinstance(new, nn.Linear):
        new.out_features, new.in_features = out_n, in_n
    else:
        new.out_channels, new.in_channels = out_n, in_n
    return new


def _cut_norm(norm: nn.Module, keep: torch.Tensor) -> nn.Module:
    n = len(keep)
    new: nn.BatchNorm1d | nn.BatchNorm2d | nn.LayerNorm | nn.GroupNorm
    if isinstance(norm, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new = type(norm)(n, eps=norm.eps, momentum=norm.momentum)
        assert norm.running_mean is not None and norm.running_var is not None
        assert new.running_mean is not None and new.running_var is not None
        with torch.no_grad():
            new.running_mean.copy_(norm.running_mean[keep])
            new.running_var.copy_(norm.running_var[keep])
    elif isinstance(norm, nn.LayerNorm):
        new = nn.LayerNorm(n, eps=norm.eps)
    else:
        assert isinstance(norm, nn.GroupNorm)
        new = nn.GroupNorm(1, n, eps=norm.eps)
    assert norm.weight is not None and norm.bias is not None and new.weight is not None and new.bias is not None
    with torch.no_grad():
        new.weight.copy_(norm.weight[keep])
        new.bias.copy_(norm.bias[keep])
    return new


def shrink(net: nn.Module, keeps: Sequence[torch.Tensor | None]) -> None:
    """Remove units / channels in place: stage i keeps the indices ``keeps[i]`` (None: all of them).

    The next stage's (and the head's) input columns and a projection skip's rows follow, so the network
    computes what the kept units computed, only smaller.
    """
    found = stages(net)
    if len(keeps) != len(found):
        raise ValueError(f"{len(keeps)} widths given for a network with {len(found)} prunable stages")
    previous: torch.Tensor | None = None
    for stage, keep in zip(found, keeps, strict=True):
        if stage.tied and (keep is not None or previous is not None):
            raise ValueError("a stage with an identity skip keeps its input's width: it cannot be pruned")
        stage.holder[stage.main_at] = _cut(stage.main, keep, previous)
        if keep is not None and stage.norm_at is not None:
            stage.holder[stage.norm_at] = _cut_norm(stage.holder[stage.norm_at], keep)
        if stage.skip_owner is not None and not stage.tied:
            stage.skip_owner.skip = _cut(stage.skip_owner.skip, keep, previous)
        previous = keep
    if previous is not None:
        assert isinstance(net, nn.Sequential)
        net[len(net) - 1] = _cut(_head(net), None, previous)


def _eval_no_ops(module: nn.Module) -> bool:
    return isinstance(module, (nn.Dropout, nn.Identity))


def _slim_sequential(seq: nn.Sequential) -> None:
    kept: list[nn.Module] = []
    for module in seq:
        layer = kept[-1] if kept else None
        if isinstance(module, _BATCH_NORMS) and isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            kept[-1] = (fuse_linear_bn_eval(layer, module) if isinstance(layer, nn.Linear)
                        else fuse_conv_bn_eval(layer, module))
        elif not _eval_no_ops(module):
            kept.append(module)
    for name in list(seq._modules):
        del seq._modules[name]
    for i, module in enumerate(kept):
        seq.add_module(str(i), module)


def _sequentials(net: nn.Module) -> Iterator[nn.Sequential]:
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            yield module


def slim(net: nn.Module) -> None:
    """Fold batch norms into the layer before them and drop eval-time no-ops, in place (eval mode only)."""
    net.eval()
    for seq in list(_sequentials(net)):
        _slim_sequential(seq)


def apply_quantization(net: nn.Module, how: str, calibration: torch.Tensor) -> nn.Module:
    """The int8 twin of ``net``: "dynamic" (Linear / GRU / LSTM) or "static" (FX graph mode, calibrated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices (still shipped in 2.13)
        if how == "dynamic":
            from torch.ao.quantization import quantize_dynamic

            return quantize_dynamic(net.eval(), {nn.Linear, nn.GRU, nn.LSTM}, dtype=torch.qint8)
        if how == "static":
            from torch.ao.quantization import get_default_qconfig_mapping
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

            prepared = prepare_fx(net.eval(), get_default_qconfig_mapping("x86"), (calibration[:1],))
            with torch.no_grad():
                prepared(calibration)
            return convert_fx(prepared)
    raise ValueError(f"unknown quantization {how!r}; choose 'dynamic' or 'static'")


def rebuild(arch: dict[str, Any]) -> nn.Module:
    """An untrained network with the exact structure (and state-dict keys) of a compressed member."""
    net = models.build(arch["kind"], arch["params"], arch["input_shape"], arch["n_outputs"])
    edits = arch.get("compress") or {}
    widths = edits.get("widths")
    if widths is not None:
        shrink(net, [None if w is None else torch.arange(int(w)) for w in widths])
    if edits.get("slim"):
        slim(net)
    how = edits.get("quantize")
    if how:
        net = apply_quantization(net, str(how), torch.zeros((2, *arch["input_shape"])))
    return net.eval()


_RNN_KEY = ".int8."  # "<rnn>.int8.weight.weight_ih_l0": a quantized RNN's weights, as plain quantized tensors


def _quantized_rnns(net: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Dynamically quantized GRU / LSTM modules: their packed weights are TorchScript objects, which
    ``weights_only`` refuses, so they are saved and restored through ``_weight_bias`` / ``set_weight_bias``."""
    for name, module in net.named_modules():
        if hasattr(module, "_all_weight_values") and hasattr(module, "set_weight_bias"):
            yield name, module


def state_of(net: nn.Module) -> dict[str, Any]:
    """A state dict that loads with ``torch.load(weights_only=True)``: tensors moved to the CPU in place (so
    the dict keeps its ``_metadata``, the module versions a quantized Linear's loader reads), a quantized
    RNN's packed weights replaced by its quantized weight and float bias tensors."""
    state = net.state_dict()
    for name, rnn in _quantized_rnns(net):
        prefix = f"{name}." if name else ""
        for key in [k for k in state if k.startswith(f"{prefix}_all_weight_values.")]:
            del state[key]
        for part, tensors in rnn._weight_bias().items():  # type: ignore[operator]
            for key, tensor in tensors.items():
                state[f"{name}{_RNN_KEY}{part}.{key}"] = tensor
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            state[key] = value.cpu()
    return state


def load_state(net: nn.Module, state: dict[str, Any]) -> None:
    """``net.load_state_dict`` for a state written by :func:`state_of` (a quantized RNN's weights repacked)."""
    metadata = getattr(state, "_metadata", None)
    state = OrderedDict(state)
    if metadata is not None:
        state._metadata = metadata  # type: ignore[attr-defined]  # torch's module versions, read when loading
    for name, rnn in _quantized_rnns(net):
        parts: dict[str, dict[str, torch.Tensor]] = {"weight": {}, "bias": {}}
        for key in [k for k in state if k.startswith(f"{name}{_RNN_KEY}")]:
            part, _, tensor_name = key[len(name) + len(_RNN_KEY):].partition(".")
            parts[part][tensor_name] = state.pop(key)
        rnn.set_weight_bias({**parts["weight"], **parts["bias"]})  # type: ignore[operator]
        prefix = f"{name}." if name else ""
        for key, value in rnn.state_dict(prefix=prefix).items():
            if key.startswith(f"{prefix}_all_weight_values."):
                state[key] = value
    net.load_state_dict(state)
