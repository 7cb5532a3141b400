"""What :func:`nbautoml.torch.train` does to its ``data`` argument: tensors, the task, the split, the metrics.

Kept apart from the loop so the rules are readable in one place:

* ``data`` is ``(X, y)`` (numpy, torch, pandas or lists) — split here — or ``((X_tr, y_tr), (X_val, y_val))``
  (two tuples). X becomes float32 (the families in :mod:`nbautoml.torch.models` take floats).
* Task "auto", decided from y and the model's output width K (a probe forward on two samples):
  y with several columns → regression; K > 1 and integral 1-D y → classification (cross-entropy);
  K == 1 and integer / bool y holding only 0 and 1 → binary (BCE with logits); anything else → regression
  (MSE). So float 0/1 targets with one output are regressed: pass ``task="classification"`` to get BCE.
  ``task`` may also be "classification" / "multiclass" / "binary" / "regression" to override.
* The split is stratified for classification, random otherwise, seeded by ``seed`` (0 when None, so every
  trial of a search is scored on the same validation rows).
* Validation metrics: ``val_loss`` (the training loss, averaged over samples), ``val_acc``; for regression
  ``val_r2`` (R² per output column, averaged; a constant column scores 1 when predicted exactly, else 0, like
  sklearn) and ``val_mae`` (mean absolute error over all elements).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TASKS", "Evaluator", "Sums", "as_tensor", "loss_fn", "metric_names", "metrics_of", "resolve_task",
           "split", "targets", "unpack"]

TASKS = ("auto", "classification", "multiclass", "binary", "regression")


def as_tensor(value: Any, name: str) -> torch.Tensor:
    """A tensor view of arrays, DataFrames, Series or lists (no copy where the dtype allows)."""
    if isinstance(value, torch.Tensor):
        return value
    to_numpy = getattr(value, "to_numpy", None)
    array = to_numpy() if callable(to_numpy) else np.asarray(value)
    if array.dtype == object or array.dtype.kind in "USM":
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype} (encode labels / columns first, "
                         "e.g. with nbautoml.torch.data)")
    return torch.from_numpy(np.ascontiguousarray(array))


def unpack(data: Any) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """(X, y, explicit validation pair or None) from ``(X, y)`` or ``((X_tr, y_tr), (X_val, y_val))``."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("data must be (X, y) or ((X_train, y_train), (X_val, y_val))")
    if all(isinstance(part, tuple) and len(part) == 2 for part in data):
        (x, y), (xv, yv) = data
        val = (_x(xv, "X_val"), as_tensor(yv, "y_val"))
        return _x(x, "X_train"), as_tensor(y, "y_train"), val
    return _x(data[0], "X"), as_tensor(data[1], "y"), None


def _x(value: Any, name: str) -> torch.Tensor:
    x = as_tensor(value, name)
    if x.ndim < 2:
        raise ValueError(f"{name} needs a batch dim and at least one feature dim, got shape {tuple(x.shape)}")
    return x if x.dtype == torch.float32 else x.float()


def _integral(y: torch.Tensor) -> bool:
    if not y.is_floating_point():
        return True
    finite = torch.isfinite(y).all()
    return bool(finite) and bool((y == torch.round(y)).all())


def resolve_task(task: str, y: torch.Tensor, out_dim: int) -> str:
    """"classification", "binary" or "regression" (see the module docstring for the rules)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    columns = 1 if y.ndim == 1 else math.prod(y.shape[1:])
    if task == "regression":
        return "regression"
    if task in ("classification", "multiclass", "binary"):
        if columns != 1:
            raise ValueError(f"classification needs one label per sample, y has shape {tuple(y.shape)}")
        return "binary" if out_dim == 1 else "classification"
    if columns > 1:
        return "regression"
    if out_dim > 1:
        if not _integral(y):
            raise ValueError(f"the model has {out_dim} outputs but y is continuous: pass one output for "
                             "regression, integer class labels for classification, or task=...")
        return "classification"
    if not y.is_floating_point() and y.numel() and bool(((y == 0) | (y == 1)).all()):
        return "binary"
    return "regression"


def targets(y: torch.Tensor, task: str, out_dim: int, name: str = "y") -> torch.Tensor:
    """y in the dtype and shape the loss wants, checked against the model's output width."""
    if task == "regression":
        per_sample = 1 if y.ndim == 1 else math.prod(y.shape[1:])
        if per_sample != out_dim:
            raise ValueError(f"{name} has {per_sample} value(s) per sample but the model outputs {out_dim}")
        if out_dim > 1:  # (N, K) ↔ (N, K); (N,) and (N, 1) both train against a single output
            return y.reshape(len(y), out_dim).float()
        return y.reshape(len(y)).float()
    y = y.reshape(len(y))
    if not _integral(y):
        raise ValueError(f"{name} must hold integer class labels for classification, got non-integer values")
    labels = y.long()
    low, high = (int(labels.min()), int(labels.max())) if labels.numel() else (0, 0)
    classes = 2 if task == "binary" else out_dim
    if low < 0 or high >= classes:
        raise ValueError(f"{name} holds labels {low}..{high} but the model has {out_dim} output(s): "
                         f"labels must be 0..{classes - 1}")
    return labels.float() if task == "binary" else labels


def metric_names(task: str) -> tuple[str, ...]:
    """The names train reports every epoch for this task (docs/ARCHITECTURE.md "Metric names")."""
    extra = ("val_r2", "val_mae") if task == "regression" else ("val_acc",)
    return ("val_loss", "train_loss", "epoch_seconds", "peak_memory_mb", *extra)


def loss_fn(task: str) -> Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]:
    """loss(output, target, reduction) in float32, whatever precision autocast computed the output in."""

    def loss(out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        out = out.float()
        if task == "classification":
            return F.cross_entropy(out, y, reduction=reduction)
        if task == "binary":
            return F.binary_cross_entropy_with_logits(out.reshape(y.shape), y, reduction=reduction)
        return F.mse_loss(out.reshape(y.shape), y, reduction=reduction)

    return loss


def split(y: torch.Tensor, val_split: float, seed: int | None,
          stratify: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices); stratified per class if asked (a class of one stays in train)."""
    n = len(y)
    rng = np.random.default_rng(0 if seed is None else seed)
    if stratify:
        labels = y.reshape(n).cpu().numpy()
        val_parts = []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            take = round(len(members) * val_split) if len(members) > 1 else 0
            val_parts.append(members[:take])
        val = np.concatenate(val_parts) if val_parts else np.empty(0, dtype=np.int64)
    else:
        val = rng.permutation(n)[: round(n * val_split)]
    if len(val) == 0 or len(val) == n:
        raise ValueError(f"val_split={val_split} of {n} samples leaves an empty train or validation set")
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return torch.from_numpy(np.flatnonzero(mask)), torch.from_numpy(np.sort(val))


class Sums:
    """Running sums of a validation pass, kept on the device (float64) until one host sync at the end."""

    def __init__(self, task: str, y_mean: torch.Tensor | None) -> None:
        self.task = task
        self.loss = loss_fn(task)
        self.y_mean = y_mean
        self.parts: dict[str, torch.Tensor] = {}
        self.n = 0

    def _add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().double()
        self.parts[key] = self.parts[key] + value if key in self.parts else value


def metrics_of(parts: dict[str, torch.Tensor], task: str, n: int) -> dict[str, float]:
    """val_loss and val_acc, or val_r2 (mean over target columns) and val_mae, from one model's sums."""
    count = float(max(1, n))
    out = {"val_loss": float(parts["loss"]) / count}
    if task == "regression":
        sse, sst = parts["sse"].reshape(-1), parts["sst"].reshape(-1)
        r2 = [1.0 - float(e) / float(t) if float(t) > 0 else (1.0 if float(e) == 0 else 0.0)
              for e, t in zip(sse, sst, strict=True)]
        out["val_r2"] = sum(r2) / len(r2)
        out["val_mae"] = float(parts["sae"]) / (count * len(r2))
    else:
        out["val_acc"] = float(parts["correct"]) / count
    return out


class Evaluator(Sums):
    """Accumulates a validation pass batch by batch on the device; one host sync in :meth:`result`."""

    def __init__(self, task: str, y_val: torch.Tensor) -> None:
        super().__init__(task, y_val.float().mean(dim=0) if task == "regression" else None)

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        out = out.float()
        self._add("loss", self.loss(out, y, "sum"))
        self.n += len(y)
        if self.task == "classification":
            self._add("correct", (out.argmax(dim=1) == y).sum())
        elif self.task == "binary":
            self._add("correct", ((out.reshape(y.shape) > 0).float() == y).sum())
        else:
            pred = out.reshape(y.shape)
            assert self.y_mean is not None
            err = pred - y
            self._add("sse", (err * err).sum(dim=0))
            self._add("sst", ((y - self.y_mean.to(y.device)) ** 2).sum(dim=0))
            self._add("sae", err.abs().sum())

    def result(self) -> dict[str, float]:
        return metrics_of({key: value.cpu() for key, value in self.parts.items()}, self.task, self.n)
