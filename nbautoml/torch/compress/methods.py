"""The compressions, each a function from a member network (and its training rows) to a smaller one.

- :func:`quantize`: int8 via ``torch.ao.quantization`` — dynamic for MLPs and GRU / LSTM (their time is in
  Linear / recurrent matmuls), static FX graph mode for CNNs (dynamic would only quantize the head). Batch
  norms are folded first. Measured on a digits CNN (2 blocks, 32 channels, this CPU, 1 thread): static int8
  2.8x faster than float at batch 256, no faster at batch 1 (the time there is per-call overhead).
- :func:`prune`: structured magnitude pruning. ``torch.nn.utils.prune.ln_structured`` (L1 norm of each
  unit's / channel's weights) picks what goes; the units are then really removed
  (:func:`._structure.shrink`), so the dense model computes less, and a short fine-tune on the training rows
  (validated on a split of them, never on the rows the report scores) recovers accuracy.
- :func:`distill`: one student (the best trial's architecture, started from its weights) trained on the
  ensemble's soft targets (its averaged probabilities, sharpened or softened by a temperature) plus the true
  labels, so one network's cost buys most of the ensemble's accuracy.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune as torch_prune

from nbautoml.torch.compress import _structure
from nbautoml.torch.export import Member
from nbautoml.torch.train import train

__all__ = ["distill", "prune", "quantize", "quantize_kind"]


def quantize_kind(module: nn.Module) -> str:
    """The quantization that pays for a network: static for one with convolutions (CNNs), dynamic for the others
    (MLPs and recurrent nets), whatever family built it."""
    return "static" if any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules()) else "dynamic"


def _edits(member: Member) -> dict[str, Any]:
    return dict(member.arch.get("compress") or {})


def _with(member: Member, module: nn.Module, **edits: Any) -> Member:
    arch = {**member.arch, "compress": {**_edits(member), **edits}}
    return Member(arch, member.prep, module.eval(), info=dict(member.info))


def quantize(member: Member, x_calibration: np.ndarray, how: str = "auto") -> Member:
    """The member in int8 (``how``: "auto", "dynamic" or "static"), batch norms folded first."""
    if _edits(member).get("quantize"):
        raise ValueError("this member is already quantized")
    assert member.module is not None
    how = quantize_kind(member.module) if how == "auto" else how
    net = copy.deepcopy(member.module).cpu().eval()
    _structure.slim(net)
    calibration = torch.from_numpy(np.ascontiguousarray(x_calibration[:512], dtype=np.float32))
    return _with(member, _structure.apply_quantization(net, how, calibration), slim=True, quantize=how)


def _keep(stage: _structure.Stage, amount: float) -> torch.Tensor:
    """Indices of the units / channels ``ln_structured`` keeps (the mask's non-zero rows), in order."""
    probe = copy.deepcopy(stage.main)
    torch_prune.ln_structured(probe, "weight", amount=amount, n=1, dim=0)
    mask: torch.Tensor = getattr(probe, "weight_mask")  # noqa: B009  (added by torch_prune)
    mask = mask.reshape(mask.shape[0], -1)
    return torch.nonzero(mask.any(dim=1)).flatten()


def prune(member: Member, train_rows: tuple[np.ndarray, np.ndarray], *, amount: float = 0.5, epochs: int = 10,
          lr: float = 1e-3, task: str = "classification", seed: int = 0) -> Member:
    """Remove ``amount`` of every prunable stage's units / channels, fine-tune, fold norms.

    A stage tied by an identity skip (a residual block whose width equals its input's) keeps its width,
    and so does the stage feeding it. A network without prunable stages (GRU) is a ValueError.
    """
    if not 0.0 < amount < 1.0:
        raise ValueError(f"prune amount must be in (0, 1), got {amount!r}")
    edits = _edits(member)
    if edits.get("quantize") or edits.get("slim"):
        raise ValueError("prune before quantizing (a folded or int8 network has no stages left to prune)")
    assert member.module is not None
    net = copy.deepcopy(member.module).cpu().eval()
    found = _structure.stages(net)
    if not found or all(s.tied for s in found):
        raise ValueError(f"a {member.arch['kind']} network has no units or channels that pruning can remove")
    keeps: list[torch.Tensor | None] = []
    for i, stage in enumerate(found):
        feeds_tied = i + 1 < len(found) and found[i + 1].tied
        keeps.append(None if stage.tied or feeds_tied else _keep(stage, amount))
    _structure.shrink(net, keeps)
    widths = [s.width for s in _structure.stages(net)]
    if epochs > 0:
        x, y = train_rows
        net = train(net, (x, y), epochs=epochs, lr=lr, batch_size=64, schedule="cosine", seed=seed,
                    task=task, val_split=0.15, grad_clip=5.0).model.cpu()
    net.eval()
    _structure.slim(net)
    return _with(member, net, widths=widths, slim=True)


def _soft(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's probabilities at ``temperature`` (softmax of log p / T): T > 1 softens them."""
    return torch.softmax(torch.log(probabilities.clamp_min(1e-8)) / temperature, dim=1)


def distill(student: Member, x: np.ndarray, teacher: np.ndarray, y: np.ndarray, *, task: str = "classification",
            epochs: int = 30, lr: float = 1e-3, temperature: float = 2.0, alpha: float = 0.7,
            batch_size: int = 64, seed: int = 0) -> Member:
    """``student`` trained on ``teacher`` outputs for the rows ``x`` (probabilities, or standardised
    predictions for regression), ``alpha`` of the loss on them and the rest on the labels ``y``."""
    if _edits(student).get("quantize") or _edits(student).get("slim"):
        raise ValueError("distill into a float network (quantize the student afterwards)")
    assert student.module is not None
    net = copy.deepcopy(student.module).cpu()
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    soft = torch.from_numpy(np.asarray(teacher, dtype=np.float32))
    hard = torch.from_numpy(np.asarray(y))
    regression = task == "regression"
    target = soft.reshape(len(soft), -1) if regression else _soft(soft, temperature)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    steps = max(1, math.ceil(len(xs) / batch_size)) * epochs
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(xs), generator=generator)
        for start in range(0, len(xs), batch_size):
            rows = order[start:start + batch_size]
            if len(rows) < 2:
                continue  # batch norm needs two rows
            out = net(xs[rows])
            if regression:
                out = out.reshape(len(rows), -1)
                loss = alpha * F.mse_loss(out, target[rows]) + (1 - alpha) * F.mse_loss(
                    out, hard[rows].float().reshape(len(rows), -1))
            else:
                log_p = F.log_softmax(out / temperature, dim=1)
                loss = (alpha * temperature ** 2 * F.kl_div(log_p, target[rows], reduction="batchmean")
                        + (1 - alpha) * F.cross_entropy(out, hard[rows].long()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            schedule.step()
    info = {**student.info, "distilled": True}
    return Member(dict(student.arch), student.prep, net.eval(), info=info)
