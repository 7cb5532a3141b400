"""Optimizers by name and learning-rate schedules with linear warm-up, for :func:`nbautoml.torch.train`.

The schedule is a pure function of (epoch, batch) — ``LRSchedule.factor`` — plus, for "plateau" only, a little
state of plain numbers. That keeps checkpoints free of pickled objects, makes a resumed run follow exactly the
curve of an uninterrupted one, and lets a fused trainer ask for any model's LR without stepping anything.

Curves (``T`` = epochs after warm-up, ``e`` = epochs since warm-up ended, factor multiplies the base lr):
  * none         1
  * step         gamma ** (e // step_size); defaults gamma=0.1, step_size=max(1, T // 3)
  * exponential  gamma ** e; default gamma reaches 0.01 at the last epoch
  * time_decay   1 / (1 + decay * e) (Keras' time-based decay, lr0 / (1 + k·t)); default decay reaches 0.1 at
                 the last epoch
  * cosine       min_factor + (1 - min_factor) * (1 + cos(pi * e / T)) / 2; default min_factor=0
  * plateau      × factor (0.5) after ``patience`` (2) epochs without a relative improvement of ``threshold``
                 (1e-4) in the monitored metric (train's best-epoch metric), never below min_factor (1e-4)
Warm-up (``warmup_epochs`` W > 0) ramps linearly per batch: step s of W·steps_per_epoch gets
(s + 1) / (W·steps_per_epoch), reaching the base lr on the last warm-up batch. The defaults scale with
``epochs`` so that one ``lr`` means the same thing across budgets (a search's trials with different epoch
counts stay comparable).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from nbautoml.engine import direction

__all__ = ["OPTIMIZERS", "SCHEDULES", "LRSchedule", "make_optimizer"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
SCHEDULES = ("none", "step", "exponential", "time_decay", "cosine", "plateau")
_OPTIONS = {
    "none": (),
    "step": ("step_size", "gamma"),
    "exponential": ("gamma",),
    "time_decay": ("decay",),
    "cosine": ("min_factor",),
    "plateau": ("patience", "factor", "threshold", "min_factor"),
}


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9, fused: bool = False) -> torch.optim.Optimizer:
    """One of :data:`OPTIMIZERS`. ``momentum`` applies to "momentum" and "nesterov" only (rmsprop uses none);
    ``weight_decay`` is L2 for all but adamw, where it is decoupled. ``fused`` picks the fused CUDA kernels of
    Adam / AdamW (one launch per step instead of one per tensor: small models are launch-bound on GPUs)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    lr, weight_decay, momentum = float(lr), float(weight_decay), float(momentum)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=name == "nesterov",
                               weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay, fused=True if fused else None)


class LRSchedule:
    """Sets the optimizer's lr before every batch; see the module docstring for the curves."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str = "none", *, epochs: int,
                 steps_per_epoch: int = 1, warmup_epochs: int = 0, mode: str = "min",
                 options: Mapping[str, float] | None = None) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose one of {list(SCHEDULES)}")
        if not isinstance(warmup_epochs, int) or isinstance(warmup_epochs, bool) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        given = dict(options or {})
        unknown = sorted(set(given) - set(_OPTIONS[name]))
        if unknown:
            raise ValueError(f"schedule {name!r} takes options {list(_OPTIONS[name])}, not {unknown}")
        self.optimizer = optimizer
        self.name = name
        self.epochs = max(1, int(epochs))
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.warmup_epochs = warmup_epochs
        self.mode = mode
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        span = max(1, self.epochs - warmup_epochs)  # T
        last = max(1, span - 1)  # e of the last epoch
        self.step_size = int(given.get("step_size", max(1, span // 3)))
        self.gamma = float(given.get("gamma", 0.1 if name == "step" else 0.01 ** (1 / last)))
        self.decay = float(given.get("decay", 9.0 / last))
        self.patience = int(given.get("patience", 2))
        self.plateau_factor = float(given.get("factor", 0.5))
        self.threshold = float(given.get("threshold", 1e-4))
        self.min_factor = float(given.get("min_factor", 1e-4 if name == "plateau" else 0.0))
        self._span = span
        for label, bad in (("step_size", self.step_size < 1), ("gamma", not 0 < self.gamma <= 1),
                           ("decay", self.decay < 0), ("patience", self.patience < 0),
                           ("factor", not 0 < self.plateau_factor < 1),
                           ("min_factor", not 0 <= self.min_factor < 1)):
            if bad:
                raise ValueError(f"schedule {name!r}: bad option {label}={given.get(label)!r}")
        # plateau state: plain numbers, so it checkpoints without pickle
        self.scale = 1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def factor(self, epoch: int, batch: int = 0) -> float:
        """The multiplier of the base lr at this batch of this (0-based) epoch."""
        step = epoch * self.steps_per_epoch + batch
        warm = self.warmup_epochs * self.steps_per_epoch
        if step < warm:
            return (step + 1) / warm
        e = epoch - self.warmup_epochs
        if self.name == "step":
            return float(self.gamma ** (e // self.step_size))
        if self.name == "exponential":
            return float(self.gamma**e)
        if self.name == "time_decay":
            return 1.0 / (1.0 + self.decay * e)
        if self.name == "cosine":
            cosine = (1 + math.cos(math.pi * min(e, self._span) / self._span)) / 2
            return self.min_factor + (1 - self.min_factor) * cosine
        if self.name == "plateau":
            return self.scale
        return 1.0

    def lr(self, epoch: int, batch: int = 0) -> float:
        """The first param group's lr at that point."""
        return self.base_lrs[0] * self.factor(epoch, batch)

    def set(self, epoch: int, batch: int = 0) -> None:
        """Write this batch's lr into every param group."""
        f = self.factor(epoch, batch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f

    def epoch_end(self, epoch: int, value: float) -> None:
        """Feed the monitored metric after an epoch ("plateau" only; warm-up epochs are not judged)."""
        if self.name != "plateau" or epoch < self.warmup_epochs or not math.isfinite(value):
            return
        if self.best is None or self._improves(value, self.best):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale = max(self.min_factor, self.scale * self.plateau_factor)
            self.bad_epochs = 0

    def _improves(self, value: float, best: float) -> bool:
        margin = self.threshold * abs(best)
        return direction.loss(value, self.mode) < direction.loss(best, self.mode) - margin

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"checkpoint was written with schedule {state.get('name')!r}, not {self.name!r}")
        self.scale = float(state["scale"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
