"""The loop of :func:`nbautoml.torch.fused.train_fused`: K members of one family trained as one fused model.

The rules (seeds, what may differ per member, reports, checkpoints, what comes back) are in
:mod:`nbautoml.torch.fused`'s docstring, the public face of fused training; the per-member bookkeeping is in
:mod:`._fused_members`, the stacked layers and optimizer in :mod:`._fused_layers`.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nbautoml.engine.direction import default_mode
from nbautoml.engine.trial import Trial
from nbautoml.torch import _fitdata as fd
from nbautoml.torch import models
from nbautoml.torch._fused_layers import FusedEvaluator, FusedNet, FusedOptimizer, member_losses
from nbautoml.torch._fused_members import (
    BestWeights,
    FusedMember,
    epoch_end,
    finish,
    member_seed,
    positions,
    shared_param,
    stopping,
    take_rows,
)
from nbautoml.torch._optim import LRSchedule, make_optimizer
from nbautoml.torch._training_common import (
    BEST,
    check_common,
    device_of,
    fits_on,
    load_checkpoint,
    peak_mb,
    place,
    positive_int,
    resume,
)
from nbautoml.torch.families import Fusion, family_names, get_family
from nbautoml.torch.train import TrainResult

__all__ = ["PER_MEMBER", "fused_families", "fusion_of", "train_fused"]

PER_MEMBER = ("lr", "weight_decay", "momentum", "schedule", "warmup_epochs")
"""Training params each member takes from its own params (else the keyword)."""


def fused_families() -> list[str]:
    """The registered families fused training can stack (their ``fusion`` is set)."""
    return [name for name in family_names() if get_family(name).fusion is not None]


def fusion_of(kind: str) -> Fusion:
    fusion = get_family(kind).fusion
    if fusion is None:
        raise ValueError(f"fused training covers {fused_families()}, not {kind!r}: train it with train()")
    return fusion




def train_fused(members: Sequence[Trial | Mapping[str, Any]], data: Any, *, kind: str = "mlp",
                input_shape: Sequence[int] | int | None = None, n_outputs: int, epochs: int = 20,
                batch_size: int = 64, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                momentum: float = 0.9, schedule: str = "none", warmup_epochs: int = 0,
                early_stopping: int | None = None, grad_clip: float | None = None,
                device: str | torch.device = "auto", seed: int | Sequence[int] | None = 0, task: str = "auto",
                val_split: float = 0.2, metric: str | None = None, mode: str | None = None, amp: bool = True,
                schedule_options: Mapping[str, float] | None = None, rng: str = "auto",
                checkpoint_every: int | None = 1, params: Sequence[Mapping[str, Any]] | None = None,
                verbose: bool = False) -> list[TrainResult]:
    """Train the members as one fused model; see :mod:`nbautoml.torch.fused` for the rules."""
    fusion = fusion_of(kind)
    if not members:
        return []
    check_common(epochs, early_stopping, grad_clip, val_split, mode)
    positive_int("checkpoint_every", checkpoint_every, allow_none=True)
    if rng not in ("auto", "exact", "fast"):
        raise ValueError(f"rng must be 'auto', 'exact' or 'fast', got {rng!r}")
    trials = [m if isinstance(m, Trial) else None for m in members]
    plist = [dict(params[i]) if params is not None else dict(t.params if t is not None else m)  # type: ignore[arg-type]
             for i, (m, t) in enumerate(zip(members, trials, strict=True))]
    batch_size = int(shared_param(plist, "batch_size", batch_size))
    positive_int("batch_size", batch_size)
    optimizer = str(shared_param(plist, "optimizer", optimizer))
    defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "schedule": schedule,
                "warmup_epochs": warmup_epochs}
    group = [FusedMember(i, t, p, member_seed(i, p, t, seed), {h: p.get(h, defaults[h]) for h in PER_MEMBER})
             for i, (t, p) in enumerate(zip(trials, plist, strict=True))]
    arch = {json.dumps({k: v for k, v in models.arch_params(kind, p).items() if k not in fusion.varying},
                       default=str) for p in plist}
    if len(arch) > 1:
        raise ValueError(f"the architectures differ inside a fused group: {sorted(arch)}")
    dev = device_of(device)
    rng = ("exact" if dev.type == "cpu" else "fast") if rng == "auto" else rng
    x, y, explicit_val = fd.unpack(data)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need matching X and y with at least 2 samples, got {len(x)} and {len(y)}")
    shape = tuple(x.shape[1:]) if input_shape is None else input_shape
    with torch.random.fork_rng(devices=[]):
        for m in group:
            torch.default_generator.manual_seed(m.seed)  # the CPU state torch.manual_seed gives, at 1% the cost
            m.ref = models.build(kind, m.params, shape, n_outputs)
    head = group[0].ref
    head.eval()
    with torch.no_grad():
        out_dim = int(head(x[:2]).reshape(2, -1).shape[1])
    resolved = fd.resolve_task(task, y, out_dim)
    names = fd.metric_names(resolved)
    first = next((t for t in trials if t is not None), None)
    if metric is None:
        metric, mode = (first.metric, mode or first.mode) if first is not None and first.metric in names \
            else ("val_loss", mode)
    elif metric not in names:
        raise ValueError(f"metric {metric!r} is not reported for {resolved}; choose from {list(names)}")
    mode = mode or default_mode(metric)
    for m in group:
        if m.trial is not None and m.trial.resume_step > 0:
            m.ckpt = load_checkpoint(m.trial)
            m.split_seed = m.ckpt.get("split_seed", m.seed) if m.ckpt is not None else m.seed
    # the data: one copy for the group; per-member rows only where members' own splits differ
    stratify = resolved != "regression"
    tr_rows: torch.Tensor | None = None
    va_rows: torch.Tensor | None = None
    if explicit_val is None:
        splits = {s: fd.split(y, float(val_split), s, stratify=stratify) for s in {m.split_seed for m in group}}
        y_all = fd.targets(y, resolved, out_dim, "y")
        if len(splits) == 1:
            tr, va = next(iter(splits.values()))
            x_tr, y_tr, x_va, y_va = x[tr], y_all[tr], x[va], y_all[va]
        else:
            x_tr = x_va = x
            y_tr = y_va = y_all
            tr_rows = torch.stack([splits[m.split_seed][0] for m in group])
            va_rows = torch.stack([splits[m.split_seed][1] for m in group])
    else:
        x_tr, x_va = x, explicit_val[0]
        y_tr = fd.targets(y, resolved, out_dim, "y")
        y_va = fd.targets(explicit_val[1], resolved, out_dim, "y_val")
    n_tr = len(x_tr) if tr_rows is None else tr_rows.shape[1]
    n_va = len(x_va) if va_rows is None else va_rows.shape[1]
    has_bn = any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in head.modules())
    drop_last = has_bn and n_tr % batch_size == 1
    steps = n_tr // batch_size if drop_last else math.ceil(n_tr / batch_size)
    seen = n_tr - (1 if drop_last else 0)
    loss = fd.loss_fn(resolved)
    for m in group:
        hp = m.hyper
        m.opt = make_optimizer(optimizer, m.ref.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"],
                               momentum=hp["momentum"])
        m.sched = LRSchedule(m.opt, str(hp["schedule"]), epochs=epochs, steps_per_epoch=steps,
                             warmup_epochs=int(hp["warmup_epochs"]), mode=mode, options=schedule_options)
        if rng == "exact":
            m.gen = torch.Generator(dev)
            m.gen.manual_seed(m.seed)
        if m.folder is not None:
            m.folder.mkdir(parents=True, exist_ok=True)
        if m.ckpt is not None and m.trial is not None:
            resume(m.trial, m.ckpt, m.state, m.ref, m.opt, m.sched, m.shuffle)
            if m.gen is not None and m.gen.device.type == "cpu":
                m.gen.set_state(m.ckpt["rng"]["torch"])
    use_amp = amp and dev.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    active = [m for m in group if m.epoch < epochs]
    net = fopt = None
    try:
        fits = fits_on([x_tr, y_tr, x_va, y_va], dev)
        x_tr, y_tr, x_va, y_va = (place(t, dev, fits) for t in (x_tr, y_tr, x_va, y_va))
        tr_rows, va_rows = (r.to(x_tr.device) if r is not None else None for r in (tr_rows, va_rows))
        if active:
            net = FusedNet([m.ref for m in active], dev, rng, [m.gen for m in active])
            best = BestWeights()
            fopt = FusedOptimizer(optimizer, net.params, lr=[m.hyper["lr"] for m in active],
                                  weight_decay=[m.hyper["weight_decay"] for m in active],
                                  momentum=[m.hyper["momentum"] for m in active])
            for pos, m in enumerate(active):
                if m.ckpt is not None:
                    fopt.load(pos, m.opt, net.layout)
        scheduled = any(m.hyper["schedule"] != "none" or int(m.hyper["warmup_epochs"]) > 0 for m in group)
        while active and net is not None and fopt is not None:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            began = time.perf_counter()
            order = torch.stack([torch.randperm(n_tr, generator=m.shuffle) for m in active]).to(x_tr.device)
            idx = order if tr_rows is None else tr_rows[positions(active)].gather(1, order)
            factors = (torch.tensor([[m.sched.factor(m.epoch, b) for b in range(steps)] for m in active],
                                    dtype=torch.float64, device=dev) if scheduled else None)
            total = torch.zeros(len(active), device=dev)
            for b in range(steps):
                quit_now = stopping(active, mid_epoch=True)
                if quit_now:
                    keep = [i for i, m in enumerate(active) if i not in quit_now]
                    for i in quit_now:
                        active[i].state.stopped = "pruned" if active[i].trial.pruned else "stopped"  # type: ignore[union-attr]
                    finish([(i, active[i]) for i in quit_now], net, best, metric, mode, resolved)
                    active = [active[i] for i in keep]
                    if not active:
                        break
                    net.select(keep)
                    fopt.select(keep)
                    best.select(keep)
                    sel = torch.tensor(keep, device=dev)
                    idx, total = idx.index_select(0, sel.to(idx.device)), total.index_select(0, sel)
                    factors = factors.index_select(0, sel) if factors is not None else None
                batch = idx[:, b * batch_size:(b + 1) * batch_size]
                xb, yb = x_tr[batch].to(dev, non_blocking=True), y_tr[batch].to(dev, non_blocking=True)
                with autocast():
                    out = net(xb, training=True)
                per = member_losses(loss, out, yb)
                net.zero_grad()
                per.sum().backward()
                if grad_clip is not None:
                    net.clip_grad_norm(float(grad_clip))
                fopt.step(net.params, factors[:, b] if factors is not None else None)
                total += per.detach() * batch.shape[1]
            if not active:
                break
            rows = va_rows[positions(active)] if va_rows is not None else None
            y_mean = None
            if resolved == "regression":
                y_full = take_rows(y_va, rows, slice(0, n_va), len(active)).float()
                y_mean = y_full.reshape(len(active), n_va, -1).mean(dim=1).to(dev)
            evaluator = FusedEvaluator(resolved, y_mean)
            eval_batch = max(batch_size, 256)
            with torch.no_grad():
                for i in range(0, n_va, eval_batch):
                    sl = slice(i, i + eval_batch)
                    xv = take_rows(x_va, rows, sl, len(active)).to(dev)
                    yv = take_rows(y_va, rows, sl, len(active)).to(dev)
                    with autocast():
                        out = net(xv, training=False)
                    evaluator.update(out, yv)
            vals = evaluator.result()
            train_losses = (total / seen).tolist()
            shared = {"epoch_seconds": time.perf_counter() - began, "peak_memory_mb": peak_mb(dev)}
            finished = epoch_end(active, vals, train_losses, shared, net, fopt, best, metric, mode, resolved,
                                  epochs, early_stopping, checkpoint_every, verbose)
            if finished:
                keep = [i for i in range(len(active)) if i not in finished]
                active = [active[i] for i in keep]
                if active:
                    net.select(keep)
                    fopt.select(keep)
                    best.select(keep)
        for m in group:
            if m.state.best_weights is not None:
                m.ref.load_state_dict(m.state.best_weights)
    finally:  # also on errors (CUDA OOM): drop what pins device memory and give it back
        net = fopt = None
        x_tr = y_tr = x_va = y_va = tr_rows = va_rows = None  # type: ignore[assignment]
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return [TrainResult(m.state.best_metrics, model=m.ref, history=m.state.history, best_epoch=m.state.best_epoch,
                        stopped=m.state.stopped, task=resolved,
                        best_path=m.folder / BEST if m.folder is not None and m.state.best_epoch is not None
                        else None) for m in group]
