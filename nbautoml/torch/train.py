"""The training loop: epoch reports to the current trial, checkpoints, cooperative stop, exact resume.

``train(model, (X, y))`` works anywhere; inside a trial (``nbautoml.engine.trial.current_trial()`` or
``trial=``) it also reports the metric names (docs/ARCHITECTURE.md) every epoch (0-based steps), checks
``trial.should_stop()`` between batches (a stop mid-epoch ends training at once and that epoch is neither
reported nor checkpointed), and keeps two files in ``trial.checkpoint_dir``:

* ``checkpoint.pt`` — everything needed to continue (model, optimizer, schedule, best weights, history and
  the RNG states, as tensors and plain numbers: ``torch.load(path, weights_only=True)`` reads it). Written
  after every epoch to a temp file, fsynced, then ``os.replace``d, *before* the epoch is reported, so a report
  the journal holds always has its checkpoint. With ``trial.resume_step > 0`` training continues from it and
  ends with the same metrics as an uninterrupted run (same seed, same machine).
* ``best.pt`` — the best epoch's weights (``model``), ``epoch``, ``metrics``, ``metric``, ``mode``, ``task``
  and ``arch`` (``model.nbautoml_arch`` when the model came from :func:`nbautoml.torch.models.build`).

Speed: small data sets are moved to the device once and iterated by index slicing (a DataLoader's per-sample
collation dominates small tabular models, on CPU too); data too large for a quarter of the free GPU memory
stays on the host and goes over batch by batch. On CUDA the forward runs under bf16 autocast (no loss scaling
needed), Adam / AdamW use their fused kernels, and at the end the optimizer state is dropped and the cache
emptied. The model goes back to the device it came on, so finished trials do not pile up GPU memory.

``peak_memory_mb`` is ``torch.cuda.max_memory_allocated`` over the epoch on CUDA; on CPU it is the process's
resident high-water mark (``resource.getrusage().ru_maxrss``, whole process, never decreasing), NaN where the
``resource`` module is missing (Windows).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nbautoml.engine.direction import better, default_mode
from nbautoml.engine.trial import Trial, current_trial
from nbautoml.torch import _fitdata as fd
from nbautoml.torch._optim import LRSchedule, make_optimizer
from nbautoml.torch._training_common import (
    BEST,
    CHECKPOINT,
    State,
    check_common,
    cpu_state,
    device_of,
    fits_on,
    load_checkpoint,
    peak_mb,
    place,
    positive_int,
    resume,
    rng_state,
    save_best,
    save_checkpoint,
)

__all__ = ["BEST", "CHECKPOINT", "TrainResult", "train"]


class TrainResult(dict[str, float]):
    """The best epoch's metrics plus ``"epoch"`` (a study picks its metric from it), with the run attached."""

    def __init__(self, metrics: Mapping[str, float], *, model: nn.Module, history: list[dict[str, float]],
                 best_epoch: int | None, stopped: str | None, task: str, best_path: Path | None) -> None:
        super().__init__(metrics)
        self.model = model  # with the best epoch's weights loaded
        self.history = history  # one dict per epoch run: "epoch" and the reported metrics
        self.best_epoch = best_epoch
        self.stopped = stopped  # "pruned", "stopped", "early_stopping", "diverged" or None (ran all epochs)
        self.task = task  # "classification", "binary" or "regression"
        self.best_path = best_path

    def __repr__(self) -> str:
        return f"TrainResult({dict(self)!r}, best_epoch={self.best_epoch}, stopped={self.stopped!r})"



def train(model: nn.Module, data: Any, *, epochs: int = 20, batch_size: int = 64, optimizer: str = "adam",
          lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.9, schedule: str = "none",
          warmup_epochs: int = 0, early_stopping: int | None = None, grad_clip: float | None = None,
          device: str | torch.device = "auto", seed: int | None = None, task: str = "auto",
          val_split: float = 0.2, metric: str | None = None, mode: str | None = None, verbose: bool = False,
          schedule_options: Mapping[str, float] | None = None, amp: bool = True,
          trial: Trial | None = None) -> TrainResult:
    """Train ``model`` on ``data`` and return the best epoch's metrics (a :class:`TrainResult`).

    ``data``: ``(X, y)`` (split by ``val_split``, stratified for classification, seeded by ``seed``) or
    ``((X_tr, y_tr), (X_val, y_val))``; the split uses ``seed``, or 0 when it is None, so every trial of a
    search is judged on the same rows. ``seed`` also seeds torch's global RNG (dropout) and the shuffling
    (without it they draw from torch's global RNG, which a seeded study sets per trial before the objective
    runs: :mod:`nbautoml.engine.seeding`); outside a seeded study seed the model's initialisation yourself.
    ``metric`` / ``mode`` pick the best epoch
    (default: the trial's metric when train reports it, else ``val_loss``, "min"); ``early_stopping=k`` ends
    after k epochs without a new best. ``schedule_options`` tunes a schedule (see :mod:`._optim`); ``amp``
    turns bf16 autocast on CUDA off when False. ``task``: "auto" | "classification" | "binary" | "regression".
    """
    positive_int("batch_size", batch_size)
    check_common(epochs, early_stopping, grad_clip, val_split, mode)
    trial = trial if trial is not None else current_trial()
    dev = device_of(device)
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    folder = trial.checkpoint_dir if trial is not None else None
    ckpt = load_checkpoint(trial) if trial is not None and trial.resume_step > 0 else None
    # a re-run trial may get another seed (seeds often derive from trial.number): keep the first run's split
    split_seed: int | None = ckpt.get("split_seed", seed) if ckpt is not None else seed
    x, y, explicit_val = fd.unpack(data)
    if len(x) != len(y):
        raise ValueError(f"X has {len(x)} samples but y has {len(y)}")
    if explicit_val is not None and len(explicit_val[0]) != len(explicit_val[1]):
        raise ValueError(f"X_val has {len(explicit_val[0])} samples but y_val has {len(explicit_val[1])}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 training samples, got {len(x)}")
    if seed is not None:
        torch.manual_seed(seed)
    if trial is not None:
        trial.set_max_steps(epochs)  # early-stopping rungs are placed as fractions of it
    # a probe forward where the model lives (eval mode: no running-stat update, no dropout RNG) gives the
    # output width, and a clear error for inputs of the wrong shape before anything moves to the device
    model.eval()
    try:
        with torch.no_grad():
            probe = model(x[:2].to(home))
    except (RuntimeError, ValueError, TypeError) as error:
        shape = tuple(x.shape[1:])
        raise ValueError(f"the model cannot take X with per-sample shape {shape}: {error}") from error
    if not isinstance(probe, torch.Tensor) or probe.ndim not in (1, 2):
        got = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise ValueError(f"the model must return (N,) or (N, outputs), got {got}")
    out_dim = 1 if probe.ndim == 1 else int(probe.shape[1])
    resolved = fd.resolve_task(task, y, out_dim)
    if explicit_val is None:
        tr, va = fd.split(y, float(val_split), split_seed, stratify=resolved != "regression")
        x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    else:
        x_tr, y_tr, (x_va, y_va) = x, y, explicit_val
        if tuple(x_va.shape[1:]) != tuple(x_tr.shape[1:]):
            shapes = tuple(x_va.shape[1:]), tuple(x_tr.shape[1:])
            raise ValueError(f"X_val samples have shape {shapes[0]}, X_train samples {shapes[1]}")
    y_tr = fd.targets(y_tr, resolved, out_dim, "y")
    y_va = fd.targets(y_va, resolved, out_dim, "y_val")
    names = fd.metric_names(resolved)
    if metric is None:
        if trial is not None and trial.metric in names:
            metric, mode = trial.metric, mode or trial.mode
        else:
            metric = "val_loss"
    elif metric not in names:
        raise ValueError(f"metric {metric!r} is not reported for {resolved}; choose from {list(names)}")
    mode = mode or default_mode(metric)

    use_amp = amp and dev.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    n_tr = len(x_tr)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    drop_last = has_bn and n_tr % batch_size == 1  # batch norm cannot train on a batch of one
    steps = n_tr // batch_size if drop_last else math.ceil(n_tr / batch_size)
    loss = fd.loss_fn(resolved)
    shuffle = torch.Generator()
    shuffle.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    state = State()
    opt: torch.optim.Optimizer | None = None
    try:
        model.to(dev)
        fits = fits_on([x_tr, y_tr, x_va, y_va], dev)
        x_tr, y_tr, x_va, y_va = (place(t, dev, fits) for t in (x_tr, y_tr, x_va, y_va))
        opt = make_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=weight_decay,
                             momentum=momentum, fused=dev.type == "cuda" and optimizer in ("adam", "adamw"))
        sched = LRSchedule(opt, schedule, epochs=epochs, steps_per_epoch=steps, warmup_epochs=warmup_epochs,
                           mode=mode, options=schedule_options)
        if trial is not None and ckpt is not None:
            resume(trial, ckpt, state, model, opt, sched, shuffle)
        for epoch in range(state.start, epochs):
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            began = time.perf_counter()
            model.train()
            order = torch.randperm(n_tr, generator=shuffle).to(x_tr.device)
            total = torch.zeros((), device=dev)
            for b in range(steps):
                if trial is not None and trial.should_stop():
                    state.stopped = "pruned" if trial.pruned else "stopped"
                    break
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = x_tr[idx].to(dev, non_blocking=True), y_tr[idx].to(dev, non_blocking=True)
                sched.set(epoch, b)
                with autocast():
                    out = model(xb)
                batch_loss = loss(out, yb, "mean")
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
                opt.step()
                total += batch_loss.detach() * len(idx)
            if state.stopped:
                break  # stopped mid-epoch: this epoch is neither reported nor checkpointed
            model.eval()
            evaluator = fd.Evaluator(resolved, y_va)
            eval_batch = max(batch_size, 256)
            with torch.no_grad():
                for i in range(0, len(x_va), eval_batch):
                    xb, yb = x_va[i:i + eval_batch].to(dev), y_va[i:i + eval_batch].to(dev)
                    with autocast():
                        out = model(xb)
                    evaluator.update(out, yb)
            val = evaluator.result()
            seen = n_tr - (1 if drop_last else 0)
            metrics = {"val_loss": val["val_loss"], "train_loss": float(total) / seen,
                       "epoch_seconds": time.perf_counter() - began, "peak_memory_mb": peak_mb(dev),
                       **{k: v for k, v in val.items() if k != "val_loss"}}
            state.history.append({"epoch": epoch, **metrics})
            if state.best_epoch is None or better(metrics[metric], state.best_metrics.get(metric), mode):
                state.best_epoch, state.best_metrics = epoch, {**metrics, "epoch": epoch}
                state.best_weights = cpu_state(model)
                if folder is not None:
                    save_best(folder, state.best_weights, epoch, metrics, metric, mode, resolved,
                              getattr(model, "nbautoml_arch", None))
            sched.epoch_end(epoch, metrics[metric])
            if folder is not None:
                save_checkpoint(folder, state, epoch, model.state_dict(), opt.state_dict(), sched.state_dict(),
                                rng_state(shuffle), split_seed)
            if trial is not None:
                trial.report(epoch, **metrics)
            if verbose:
                shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "epoch_seconds")
                print(f"epoch {epoch + 1}/{epochs}  {shown}  {metrics['epoch_seconds']:.2f}s", flush=True)
            if not math.isfinite(metrics["train_loss"]):
                state.stopped = "diverged"
            elif trial is not None and trial.should_stop():
                state.stopped = "pruned" if trial.pruned else "stopped"
            elif early_stopping is not None and epoch - state.best_epoch >= early_stopping:
                state.stopped = "early_stopping"
            if state.stopped:
                break
        if state.best_weights is not None:
            model.load_state_dict(state.best_weights)
    finally:  # also on errors (CUDA OOM): drop the device tensors this frame holds and give the memory back
        model.to(home)
        opt = sched = x_tr = y_tr = x_va = y_va = None  # type: ignore[assignment]  # unpin device memory
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    best_path = folder / BEST if folder is not None and state.best_epoch is not None else None
    return TrainResult(state.best_metrics, model=model, history=state.history, best_epoch=state.best_epoch,
                       stopped=state.stopped, task=resolved, best_path=best_path)
