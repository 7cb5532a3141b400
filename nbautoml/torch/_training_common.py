"""What train() and train_fused() share: the checkpoint files' layout, option checks, devices, RNG states.

One module so the two loops write and read the same ``checkpoint.pt`` / ``best.pt`` (either resumes the
other's), and check their common options with the same messages (which epoch is best is
:mod:`nbautoml.engine.direction`'s rule, for both). Private to the torch layer: :mod:`nbautoml.torch.train` and
:mod:`nbautoml.torch.fused`'s modules import it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nbautoml.engine.trial import Trial
from nbautoml.torch._optim import LRSchedule

__all__ = ["BEST", "CHECKPOINT", "FORMAT", "State", "atomic_save", "check_common", "cpu_state", "device_of",
           "fits_on", "load_checkpoint", "peak_mb", "place", "positive_int", "resume", "rng_state", "save_best",
           "save_checkpoint"]

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
FORMAT = 1
log = logging.getLogger(__name__)


def device_of(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r} (use 'auto', 'cpu', 'cuda', 'cuda:1', ...)") from error


def peak_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        import resource
    except ImportError:
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def check_common(epochs: Any, early_stopping: Any, grad_clip: Any, val_split: Any, mode: Any) -> None:
    """The options train() and train_fused() share, checked the same way."""
    positive_int("epochs", epochs)
    positive_int("early_stopping", early_stopping, allow_none=True)
    if grad_clip is not None and not (isinstance(grad_clip, (int, float)) and grad_clip > 0):
        raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")
    if not (isinstance(val_split, (int, float)) and 0 < val_split < 1):
        raise ValueError(f"val_split must be between 0 and 1, got {val_split!r}")
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def atomic_save(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then os.replace: never a torn checkpoint."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_best(folder: Path, weights: Mapping[str, torch.Tensor], epoch: int, metrics: Mapping[str, float],
              metric: str, mode: str, task: str, arch: Any) -> None:
    """``best.pt``: the best epoch's weights and what picked them; ``arch`` rebuilds the model (or None)."""
    atomic_save({"model": weights, "epoch": epoch, "metrics": metrics, "metric": metric, "mode": mode,
                 "task": task, "arch": arch}, folder / BEST)


def save_checkpoint(folder: Path, state: State, epoch: int, model: Mapping[str, torch.Tensor],
                    optimizer: Mapping[str, Any], schedule: Mapping[str, Any], rng: Mapping[str, Any],
                    split_seed: int | None) -> None:
    """``checkpoint.pt`` after ``epoch``: all a re-run needs to continue exactly (:func:`resume` reads it)."""
    atomic_save({"format": FORMAT, "epoch": epoch, "model": model, "optimizer": optimizer, "schedule": schedule,
                 "best_epoch": state.best_epoch, "best_metrics": state.best_metrics,
                 "best_model": None if state.best_epoch == epoch else state.best_weights,
                 "history": state.history, "rng": rng, "split_seed": split_seed}, folder / CHECKPOINT)


def rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    cuda = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "shuffle": shuffle.get_state()}


def set_rng_state(state: Mapping[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def place(x: torch.Tensor, dev: torch.device, fits: bool) -> torch.Tensor:
    return x.to(dev, non_blocking=True) if fits else x.cpu()


def fits_on(tensors: list[torch.Tensor], dev: torch.device) -> bool:
    """Whether the whole data set goes to the device (always on CPU; a quarter of free memory on CUDA)."""
    if dev.type != "cuda":
        return True
    size = sum(t.numel() * t.element_size() for t in tensors)
    free, _ = torch.cuda.mem_get_info(dev)
    return size < free // 4


class State:
    """What the loop carries between epochs and restores from a checkpoint."""

    def __init__(self) -> None:
        self.start = 0
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stopped: str | None = None


def load_checkpoint(trial: Trial) -> dict[str, Any] | None:
    """The checkpoint a re-run trial continues from, or None (with a warning: it then starts over)."""
    path = trial.checkpoint_dir / CHECKPOINT if trial.checkpoint_dir is not None else None
    if path is None or not path.exists():
        log.warning("trial %d: resume_step=%d but no checkpoint at %s; training from epoch 0", trial.number,
                    trial.resume_step, path)
        return None
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt


def resume(trial: Trial, ckpt: Mapping[str, Any], state: State, model: nn.Module,
            opt: torch.optim.Optimizer, sched: LRSchedule, shuffle: torch.Generator) -> None:
    """Continue after the checkpoint's epoch; re-report epochs it holds that the trial lacks."""
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["schedule"])
    set_rng_state(ckpt["rng"], shuffle)
    state.history = [dict(entry) for entry in ckpt["history"]]
    state.best_epoch, state.best_metrics = ckpt["best_epoch"], dict(ckpt["best_metrics"])
    state.best_weights = ckpt["best_model"] if ckpt["best_model"] is not None else cpu_state(model)
    state.start = int(ckpt["epoch"]) + 1
    if state.start < trial.resume_step:
        log.warning("trial %d: checkpoint ends at epoch %d, resume_step is %d; re-running epochs %d..%d",
                    trial.number, state.start - 1, trial.resume_step, state.start, trial.resume_step - 1)
    for entry in state.history[trial.resume_step:state.start]:  # checkpointed, never journaled: report now
        trial.report(int(entry["epoch"]), **{k: v for k, v in entry.items() if k != "epoch"})

