"""K configurations of one architecture trained as one fused model: GPU throughput, and a CPU gain too.

A small model leaves a GPU idle between kernel launches (FACTS.md: a digits MLP takes ~940 ms one at a time on
an H100, ~6 ms each when 256 are fused). Here K models of one family (:data:`FUSED_KINDS`: ``mlp``, ``cnn1d``,
``cnn2d``) that share every structural param run as stacked tensors (:mod:`._fused_layers`: batched matmuls,
for CNNs one grouped convolution per layer (:mod:`._fused_conv`), a per-member optimizer), while each stays a
trial of its own. ``gru`` is not fused: its recurrence would need a batched RNN kernel; it trains one by one.

``train_fused(members, data, *, kind="mlp", input_shape=None, n_outputs, epochs=20, batch_size=64,
optimizer="adam", lr=1e-3, weight_decay=0.0, momentum=0.9, schedule="none", warmup_epochs=0,
early_stopping=None, grad_clip=None, device="auto", seed=0, task="auto", val_split=0.2, metric=None,
mode=None, amp=True, schedule_options=None, rng="auto", checkpoint_every=1, params=None) -> list[TrainResult]``

* ``members``: Trials or param dicts; ``params`` may override what each member's params are. Per member,
  ``lr``, ``weight_decay``, ``momentum``, ``schedule``, ``warmup_epochs``, ``seed`` and ``dropout`` come from
  its params when present (else the keyword). ``batch_size``, ``optimizer`` and the architecture must agree
  (ValueError otherwise: group by them). ``input_shape`` defaults to X's per-sample shape.
* Each member is built by :func:`~nbautoml.torch.models.build` right after seeding the CPU generator as
  ``torch.manual_seed(seed)`` would, and
  trains exactly like ``train(model, data, seed=seed, ...)`` does: its own shuffling, its own validation split
  when ``data`` is ``(X, y)``, its own dropout masks (``rng="exact"``, the CPU default; on CUDA "fast", one
  draw for the group) — so fused and one-by-one results agree to float rounding (tests/torch_layer). One
  exception: a bias right before batch norm has a true gradient of zero, and Adam / RMSprop scale its rounding
  noise (a grouped conv or batched matmul sums in another order) up to lr-sized steps, so that bias and its
  norm's running mean drift apart from the twin's (the training-mode function is the same; eval differs a
  little through the running mean).
  Seeds: ``params["seed"]``, else ``seed[i]`` for a sequence, else :func:`trial_seed` (fit's rule) for a
  Trial, else ``seed + i``.
* A Trial member reports DESIGN.md's metrics every epoch (``epoch_seconds`` and ``peak_memory_mb`` are the
  group's), checks its own ``should_stop()`` at each epoch end (and the study-wide stop between batches),
  stops on early stopping / divergence, and writes ``checkpoint.pt`` (each epoch) and ``best.pt`` (once, when
  it leaves the group: best weights stay on the device until then) in its ``checkpoint_dir`` in train()'s
  format (its save helpers; ``train`` can resume a fused checkpoint and vice versa). A stopped member leaves
  the fused tensors at once. ``checkpoint_every=None`` skips checkpoint.pt
  (a stopped trial then restarts from epoch 0 on resume) — worth it for large K on a GPU, where K files
  per epoch cost more than the epoch.
* Returns one :class:`~nbautoml.torch.train.TrainResult` per member (its best epoch's weights on the CPU).

``batch_objective(data, *, n_outputs, kind="mlp", family=None, defaults=None, epochs=20, seed=0,
min_group=1, group_size=None, **options) -> objective_batch`` makes the batch objective that
``study.optimize(objective_batch, batch=K, group_by=structural(space))`` runs:

* ``data``: the data, or ``data(params) -> data``, called once per group (preprocessing params are structural).
* ``defaults``: params the space does not search (a trial's own value wins).
* ``family(params) -> (kind, arch_params)``: maps prefixed spaces (fit's
  :func:`~nbautoml.torch.results.family_of`); ``options``: ``train_fused``'s keywords (defaults for params
  the space lacks: ``batch_size``, ``optimizer``, ``lr``..., and ``early_stopping``, ``grad_clip``, ``task``,
  ``metric``, ``device``, ``checkpoint_every``...). Unknown keywords raise TypeError at once.
* ``group_size=G``: the study asks in blocks of G points that share their structural params
  (:mod:`nbautoml.engine.runners.batch`); without it, independently drawn points rarely share an
  architecture and groups stay small.
* Trials that differ in a non-fusable param are split into sub-groups; families outside :data:`FUSED_KINDS`
  (``gru``), and groups smaller than ``min_group``, train one by one with :func:`~nbautoml.torch.train.train`
  (same seeds). A sub-group that runs out of memory is retried in halves; another error fails that
  sub-group's trials only. Holdout data only (fit's ``cv`` folds are not fused).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from nbautoml.engine.runners.batch import halving
from nbautoml.engine.trial import Trial, using_trial
from nbautoml.torch import _fitdata as fd
from nbautoml.torch import models
from nbautoml.torch._fused_layers import FusedEvaluator, FusedNet, FusedOptimizer, member_losses
from nbautoml.torch._fused_members import (
    BestWeights,
    Member,
    epoch_end,
    finish,
    member_seed,
    positions,
    shared_param,
    stopping,
    take_rows,
    trial_seed,
)
from nbautoml.torch._optim import LRSchedule, make_optimizer
from nbautoml.torch.train import (
    BEST,
    TrainResult,
    _check_common,
    _default_mode,
    _device,
    _fits,
    _load_checkpoint,
    _peak_mb,
    _place,
    _positive_int,
    _resume,
    train,
)

__all__ = ["FUSABLE", "FUSED_KINDS", "batch_objective", "structural", "train_fused", "trial_seed"]

FUSED_KINDS = ("mlp", "cnn1d", "cnn2d")
FUSABLE = ("lr", "weight_decay", "momentum", "dropout", "seed", "schedule", "warmup_epochs")
"""Params that may differ inside a fused group; every other param of a space is structural."""
_HYPER = ("lr", "weight_decay", "momentum", "schedule", "warmup_epochs")


def _structural(name: str) -> bool:
    return name not in FUSABLE and not name.endswith("_dropout")


def structural(names: Iterable[str]) -> list[str]:
    """The ``group_by`` for a space (or its names): everything but :data:`FUSABLE` (and ``<family>_dropout``)."""
    return [n for n in names if _structural(n)]


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
    """Train the members as one fused model; see the module docstring for the rules."""
    if kind not in FUSED_KINDS:
        raise ValueError(f"fused training covers {list(FUSED_KINDS)}, not {kind!r}: train it with train()")
    if not members:
        return []
    _check_common(epochs, early_stopping, grad_clip, val_split, mode)
    _positive_int("checkpoint_every", checkpoint_every, allow_none=True)
    if rng not in ("auto", "exact", "fast"):
        raise ValueError(f"rng must be 'auto', 'exact' or 'fast', got {rng!r}")
    trials = [m if isinstance(m, Trial) else None for m in members]
    plist = [dict(params[i]) if params is not None else dict(t.params if t is not None else m)  # type: ignore[arg-type]
             for i, (m, t) in enumerate(zip(members, trials, strict=True))]
    batch_size = int(shared_param(plist, "batch_size", batch_size))
    _positive_int("batch_size", batch_size)
    optimizer = str(shared_param(plist, "optimizer", optimizer))
    defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "schedule": schedule,
                "warmup_epochs": warmup_epochs}
    group = [Member(i, t, p, member_seed(i, p, t, seed), {h: p.get(h, defaults[h]) for h in _HYPER})
             for i, (t, p) in enumerate(zip(trials, plist, strict=True))]
    arch = {json.dumps({k: v for k, v in models.arch_params(kind, p).items() if k != "dropout"}, default=str)
            for p in plist}
    if len(arch) > 1:
        raise ValueError(f"the architectures differ inside a fused group: {sorted(arch)}")
    dev = _device(device)
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
    mode = mode or _default_mode(metric)
    for m in group:
        if m.trial is not None and m.trial.resume_step > 0:
            m.ckpt = _load_checkpoint(m.trial)
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
            _resume(m.trial, m.ckpt, m.state, m.ref, m.opt, m.sched, m.shuffle)
            if m.gen is not None and m.gen.device.type == "cpu":
                m.gen.set_state(m.ckpt["rng"]["torch"])
    use_amp = amp and dev.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    active = [m for m in group if m.epoch < epochs]
    net = fopt = None
    try:
        fits = _fits([x_tr, y_tr, x_va, y_va], dev)
        x_tr, y_tr, x_va, y_va = (_place(t, dev, fits) for t in (x_tr, y_tr, x_va, y_va))
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
            shared = {"epoch_seconds": time.perf_counter() - began, "peak_memory_mb": _peak_mb(dev)}
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


# ---- the batch objective ------------------------------------------------------------------------------------
def _input_shape(data: Any) -> tuple[int, ...]:
    return tuple(fd.unpack(data)[0].shape[1:])


def batch_objective(data: Any, *, n_outputs: int, kind: str = "mlp",
                    family: Callable[[Mapping[str, Any]], tuple[str, Mapping[str, Any]]] | None = None,
                    defaults: Mapping[str, Any] | None = None, epochs: int = 20, seed: int = 0,
                    min_group: int = 1, group_size: int | None = None,
                    **options: Any) -> Callable[[list[Trial]], list[Any]]:
    """A batch objective for ``study.optimize(..., batch=K, group_by=structural(space))`` (module docstring)."""
    allowed = set(inspect.signature(train_fused).parameters) - {"members", "data", "params"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"batch_objective: unknown train_fused options {unknown} (fixed params go in defaults=)")
    one_by_one = {k: v for k, v in options.items() if k not in ("rng", "checkpoint_every")}
    fixed = dict(defaults or {})

    def resolve(trial: Trial) -> tuple[str, dict[str, Any]]:
        params = {**fixed, **trial.params}
        k, arch = family(params) if family is not None else (kind, params)
        return k, {**params, **arch}

    def train_one(trial: Trial, k: str, p: dict[str, Any], d: Any) -> dict[str, float]:
        s = int(p["seed"]) if "seed" in p else trial_seed(seed, trial)
        torch.manual_seed(s)
        model = models.build(k, p, one_by_one.get("input_shape") or _input_shape(d), n_outputs)
        kw = {**{n: v for n, v in one_by_one.items() if n != "input_shape"},
              **{n: p[n] for n in (*_HYPER, "batch_size", "optimizer") if n in p}}
        with using_trial(trial):
            return dict(train(model, d, epochs=epochs, seed=s, trial=trial, **kw))

    def objective_batch(trials: list[Trial]) -> list[Any]:
        groups: dict[str, list[int]] = {}
        resolved = [resolve(t) for t in trials]
        for i, (t, (k, _)) in enumerate(zip(trials, resolved, strict=True)):
            key = json.dumps([k, {n: v for n, v in t.params.items() if _structural(n)}], sort_keys=True,
                             default=str)
            groups.setdefault(key, []).append(i)
        results: list[Any] = [None] * len(trials)
        for idxs in groups.values():
            sub = [trials[i] for i in idxs]
            k = resolved[idxs[0]][0]
            try:
                d = data(sub[0].params) if callable(data) else data
            except Exception as error:
                for i in idxs:
                    results[i] = error
                continue
            if k in FUSED_KINDS and len(sub) >= min_group:
                def run(chunk: list[int], d: Any = d, k: str = k) -> list[dict[str, float]]:
                    out = train_fused([trials[i] for i in chunk], d, kind=k, n_outputs=n_outputs, epochs=epochs,
                                      seed=seed, params=[resolved[i][1] for i in chunk], **options)
                    return [dict(r) for r in out]

                outs = halving(run, idxs)
            else:  # one at a time; an error (OOM too) fails that trial alone
                def alone(chunk: list[int], d: Any = d, k: str = k) -> list[dict[str, float]]:
                    return [train_one(trials[chunk[0]], k, resolved[chunk[0]][1], d)]

                outs = [halving(alone, [i])[0] for i in idxs]
            for i, value in zip(idxs, outs, strict=True):
                results[i] = value
        return results

    objective_batch.group_size = group_size  # type: ignore[attr-defined]  # read by the batch runner
    return objective_batch
