"""K configurations of one architecture trained as one fused model: GPU throughput, and a CPU gain too.

A small model leaves a GPU idle between kernel launches (BENCHMARKS.md: a digits MLP takes ~920 ms one at a
time on an H100, ~7 ms each when 256 are fused). Here K models of one family whose ``fusion`` is set
(:func:`fused_families`: of the built-ins ``mlp``, ``cnn1d``, ``cnn2d``) that share every structural param run as
stacked tensors (:mod:`._fused_layers`: batched matmuls, for CNNs one grouped convolution per layer
(:mod:`._fused_conv`), a per-member optimizer), while each stays a trial of its own. ``gru`` is not fused: its
recurrence would need a batched RNN kernel; it trains one by one.

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
* A Trial member reports the metric names (docs/ARCHITECTURE.md) every epoch (``epoch_seconds`` and
  ``peak_memory_mb`` are the group's), checks its own ``should_stop()`` at each epoch end (and the study-wide
  stop between batches),
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
* ``family_options(kind) -> options``: per-family ``train_fused`` / ``train`` keywords over ``options`` (fit
  passes each family's ``training(epochs)``).
* Trials that differ in a non-fusable param are split into sub-groups; families without ``fusion``
  (``gru``), and groups smaller than ``min_group``, train one by one with :func:`~nbautoml.torch.train.train`
  (same seeds). A sub-group that runs out of memory is retried in halves; another error fails that
  sub-group's trials only. Holdout data only (fit's ``cv`` folds are not fused).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from nbautoml.engine.runners.batch import halving
from nbautoml.engine.trial import Trial, using_trial
from nbautoml.torch import _fitdata as fd
from nbautoml.torch import models
from nbautoml.torch._fused_members import trial_seed
from nbautoml.torch._fused_train import PER_MEMBER, fused_families, fusion_of, train_fused
from nbautoml.torch.families import get_family
from nbautoml.torch.train import train

__all__ = ["FUSABLE_TRAINING", "batch_objective", "fused_families", "structural", "train_fused", "trial_seed"]

FUSABLE_TRAINING = (*PER_MEMBER, "seed")
"""Training params that may differ inside a fused group. With the families' ``Fusion.varying`` architecture
params (a dropout rate), they are the non-structural ones; every other param of a space is structural."""


def _varying() -> set[str]:
    """Architecture params that may differ inside a fused group, over every fusable registered family."""
    return {v for name in fused_families() for v in fusion_of(name).varying}


def _structural(name: str, varying: set[str]) -> bool:
    """Whether ``name`` must agree inside a group; ``<family>_<param>`` is a multi-family space's name."""
    return name not in FUSABLE_TRAINING and name not in varying and not any(name.endswith(f"_{v}") for v in varying)


def structural(names: Iterable[str]) -> list[str]:
    """The ``group_by`` for a space (or its names): all but :data:`FUSABLE_TRAINING` and the families' varying
    params (bare or ``<family>_``-prefixed)."""
    varying = _varying()
    return [n for n in names if _structural(n, varying)]


# ---- the batch objective ------------------------------------------------------------------------------------
def _input_shape(data: Any) -> tuple[int, ...]:
    return tuple(fd.unpack(data)[0].shape[1:])


def _check_options(options: Mapping[str, Any]) -> None:
    allowed = set(inspect.signature(train_fused).parameters) - {"members", "data", "params"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"batch_objective: unknown train_fused options {unknown} (fixed params go in defaults=)")


def batch_objective(data: Any, *, n_outputs: int, kind: str = "mlp",
                    family: Callable[[Mapping[str, Any]], tuple[str, Mapping[str, Any]]] | None = None,
                    defaults: Mapping[str, Any] | None = None, epochs: int = 20, seed: int = 0,
                    min_group: int = 1, group_size: int | None = None,
                    family_options: Callable[[str], Mapping[str, Any]] | None = None,
                    **options: Any) -> Callable[[list[Trial]], list[Any]]:
    """A batch objective for ``study.optimize(..., batch=K, group_by=structural(space))`` (module docstring)."""
    _check_options(options)
    fixed = dict(defaults or {})

    def options_of(k: str) -> dict[str, Any]:
        extra = dict(family_options(k)) if family_options is not None else {}
        _check_options(extra)
        return {**options, **extra}

    def resolve(trial: Trial) -> tuple[str, dict[str, Any]]:
        params = {**fixed, **trial.params}
        k, arch = family(params) if family is not None else (kind, params)
        return k, {**params, **arch}

    def train_one(trial: Trial, k: str, p: dict[str, Any], d: Any) -> dict[str, float]:
        s = int(p["seed"]) if "seed" in p else trial_seed(seed, trial)
        torch.manual_seed(s)
        one_by_one = {n: v for n, v in options_of(k).items() if n not in ("rng", "checkpoint_every")}
        model = models.build(k, p, one_by_one.get("input_shape") or _input_shape(d), n_outputs)
        kw = {**{n: v for n, v in one_by_one.items() if n != "input_shape"},
              **{n: p[n] for n in (*PER_MEMBER, "batch_size", "optimizer") if n in p}}
        with using_trial(trial):
            return dict(train(model, d, epochs=epochs, seed=s, trial=trial, **kw))

    def objective_batch(trials: list[Trial]) -> list[Any]:
        groups: dict[str, list[int]] = {}
        resolved = [resolve(t) for t in trials]
        varying = _varying()
        for i, (t, (k, _)) in enumerate(zip(trials, resolved, strict=True)):
            key = json.dumps([k, {n: v for n, v in t.params.items() if _structural(n, varying)}], sort_keys=True,
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
            if get_family(k).fusion is not None and len(sub) >= min_group:
                def run(chunk: list[int], d: Any = d, k: str = k) -> list[dict[str, float]]:
                    out = train_fused([trials[i] for i in chunk], d, kind=k, n_outputs=n_outputs, epochs=epochs,
                                      seed=seed, params=[resolved[i][1] for i in chunk], **options_of(k))
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

