"""``nbautoml.fit``: data in, a searched, validated, exportable model out.

The search joins three parts in one :class:`~nbautoml.space.Space` (see :func:`default_space`): the
preprocessing (scaler, feature selection), the model family picked from the data's layout (tabular → MLP,
sequences → CNN-1D and GRU, images → CNN-2D) with its architecture space from
:func:`nbautoml.torch.models.space`, and training (optimizer, lr, weight decay, batch size, LR schedule). The
number of epochs is not searched: it is ASHA's resource, so weak configurations stop after a few epochs.

Each trial fits its preprocessing on its training rows only (cached per choice and fold), trains with
:func:`nbautoml.torch.train` on a stratified holdout (or each of ``cv`` folds: the value is the mean, the
leaderboard shows mean ± std) and leaves ``best.pt`` in its checkpoint folder. Nothing is retrained after the
search: :mod:`nbautoml.torch.results` rebuilds the top trials from those checkpoints into ``best_model`` and
``ensemble``, scores both on the holdout (out-of-fold rows with ``cv``) by the study's metric, and
``predict`` uses the better one.

Fused training (issue 7, :mod:`nbautoml.torch.fused`): with a holdout, the families that pay on the device
(:data:`FUSE_PAYS`) train in groups of ``group_size`` trials that share every structural param (preprocessing,
architecture, batch size, optimizer) and differ in lr, weight decay, schedule and dropout — one fused model
per group, each member still a trial with its own reports, ASHA decisions and ``best.pt``, the same seed as the
one-by-one path. The study asks ``group_size`` points at a time (``optimize(batch=, group_by=)``): the
sampler picks each group's architecture and every member's other values. Fewer architectures per trial budget
in exchange for several times the trials per second, so :func:`default_group_size` keeps groups small when the
budget is small. ``cv`` folds train one by one (``fused="auto"`` falls back; ``fused=True`` refuses).

Regression targets are standardised for training, so ``val_loss`` / ``val_mae`` are in units of the target's
standard deviation; predictions come back in the original units.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from nbautoml.engine.registry import make_sampler
from nbautoml.engine.samplers.base import point_key
from nbautoml.engine.schedulers import ASHA
from nbautoml.engine.study import Study
from nbautoml.engine.trial import Trial
from nbautoml.events import StudyFinished
from nbautoml.space import Choice, Real, Space
from nbautoml.torch import models
from nbautoml.torch.data import Preprocessor, TargetEncoder, holdout, kfold, layout_of, split_xy
from nbautoml.torch.fused import FUSED_KINDS, batch_objective, structural
from nbautoml.torch.results import AutoMLResult, family_of, fold_dir
from nbautoml.torch.train import train

__all__ = ["FAMILIES", "FUSE_PAYS", "AutoMLResult", "default_group_size", "default_space", "fit"]

log = logging.getLogger(__name__)

FAMILIES = {"tabular": ("mlp",), "sequence": ("cnn1d", "gru"), "image": ("cnn2d",)}
_LAYOUTS = {"mlp": ("tabular", "sequence", "image"), "cnn1d": ("sequence",), "gru": ("sequence",),
            "cnn2d": ("image",)}
GRACE_MIN = 10.0  # seconds a trial may run past fit's timeout before it is stopped
FUSE_PAYS: dict[str, tuple[str, ...]] = {"cpu": ("mlp", "cnn2d"), "cuda": FUSED_KINDS}
"""Families whose fused groups train faster per trial than one by one on that device (bench/fused.py: on this
2-core CPU, MLP 2.5x and 2-D CNN 2.2x at K=4; cnn1d is not measured there, its 1-D pooling is slow fused)."""
_METRICS = {"regression": ("val_loss", "val_r2", "val_mae"), "classification": ("val_loss", "val_acc")}


# ---- the search space -------------------------------------------------------------------------------
def default_space(layout: str, kinds: Sequence[str], input_shape: Sequence[int], n_outputs: int,
                  n_train: int) -> Space:
    """Preprocessing + family/architecture + training dimensions for data of this layout and size.

    One family: its params keep their names (``layers``, ``units``...). Several: a ``family`` choice and each
    family's params prefixed (``gru_hidden``), since the families share names with different meanings.
    """
    dims: dict[str, Any] = {}
    if layout == "tabular":
        dims["scaler"] = Choice(["standard", "robust", "minmax", "quantile"])
        if int(np.prod(input_shape)) >= 8:
            dims["select"] = Choice([1.0, 0.75, 0.5])
    else:
        dims["scaler"] = Choice(["standard", "robust", "minmax"])
    if len(kinds) == 1:
        dims.update(models.space(kinds[0], input_shape, n_outputs))
    else:
        dims["family"] = Choice(list(kinds))
        for kind in kinds:
            dims.update({f"{kind}_{k}": v for k, v in models.space(kind, input_shape, n_outputs).items()})
    sizes = [b for b in (16, 32, 64, 128, 256, 512) if b <= max(16, n_train // 8)][-4:]
    train_dims = {
        "optimizer": Choice(["adam", "adamw", "nesterov"]),
        "lr": Real(1e-4, 1e-1, log=True),
        "weight_decay": Real(1e-6, 1e-1, log=True),
        "batch_size": Choice(sizes),
        "schedule": Choice(["none", "cosine", "exponential", "plateau"]),
    }
    clash = set(train_dims) & set(dims)
    if clash:
        raise RuntimeError(f"search space names clash: {sorted(clash)}")
    return Space({**dims, **train_dims})


def default_epochs(n_train: int) -> int:
    """ASHA's maximum resource: more epochs for small data, where an epoch is cheap and few steps."""
    return 40 if n_train <= 3000 else 30 if n_train <= 30000 else 20


def _kinds(model: str | Sequence[str], layout: str) -> tuple[str, ...]:
    kinds = FAMILIES[layout] if model == "auto" else (model,) if isinstance(model, str) else tuple(model)
    for kind in kinds:
        if kind not in _LAYOUTS:
            raise ValueError(f"unknown model {kind!r}; choose 'auto' or from {sorted(_LAYOUTS)}")
        if layout not in _LAYOUTS[kind]:
            raise ValueError(f"model {kind!r} does not take {layout} data (it takes {list(_LAYOUTS[kind])})")
    return tuple(dict.fromkeys(kinds))


def study_name(task: str, target: str | None, x: Any, extra: dict[str, Any]) -> str:
    """fit-<task>-<target>-<hash>; the hash covers the columns (or the array's shape) and the split settings."""
    shape = list(x.shape)
    described: dict[str, Any] = {"shape": shape}
    if isinstance(x, pd.DataFrame):
        described["columns"] = [str(c) for c in x.columns]
    text = json.dumps({**described, **extra}, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()
    raw = target or "x".join(map(str, shape[1:]))
    label = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in raw)
    return f"fit-{task}-{label[:40]}-{digest[:8]}"


# ---- warm start ----------------------------------------------------------------------------------------
_STARTS: dict[str, Any] = {
    "scaler": "standard", "select": 1.0, "optimizer": "adam", "lr": 2e-3, "weight_decay": 1e-5,
    "batch_size": 64, "schedule": "cosine",
    "mlp": {"layers": 2, "units": 256, "shape": "constant", "activation": "relu", "dropout": 0.2,
            "norm": "batch", "residual": False},
    "cnn": {"blocks": 2, "channels": 32, "growth": 2.0, "kernel": 3, "pool": "max", "activation": "relu",
            "dropout": 0.2, "norm": "batch", "residual": False},
    "gru": {"cell": "gru", "layers": 1, "hidden": 64, "bidirectional": False, "dropout": 0.1,
            "readout": "last"},
}


def start_points(space: Space, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """One modest, usually good configuration per family, tried first (cheap and safe, like FLAML's start).

    A default outside the space (a smaller batch-size list, say) is replaced by the dimension's nearest
    value, so every start point lies inside the space.
    """
    points = []
    for kind in kinds:
        arch = _STARTS["cnn" if kind.startswith("cnn") else kind]
        wanted = {**{k: v for k, v in _STARTS.items() if not isinstance(v, dict)}, "family": kind}
        wanted.update({k: v for k, v in arch.items()} if len(kinds) == 1 else
                      {f"{kind}_{k}": v for k, v in arch.items()})
        point = {name: _nearest(dim, wanted.get(name)) for name, dim in space.items()}
        points.append(space.normalise(point))
    return points


def _nearest(dim: Any, value: Any) -> Any:
    """``value`` when the dimension holds it, else its nearest option / bound (or the first option)."""
    if dim.contains(value):
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(dim, Choice):
        options = [o for o in dim.options if isinstance(o, (int, float)) and not isinstance(o, bool)]
        return min(options, key=lambda o: abs(float(o) - float(value))) if number and options else dim.options[0]
    return dim.normalise(min(max(value, dim.low), dim.high)) if number else dim.normalise(dim.low)


class WarmStartSampler:
    """Proposes ``starts`` first (those not yet told or pending), then asks the wrapped sampler."""

    def __init__(self, inner: Any, starts: list[dict[str, Any]]) -> None:
        self.inner, self.starts = inner, starts
        self.name = inner.name  # journaled: a reopened study rebuilds the inner sampler by this registered name
        self._seen: set[str] = set()


    def ask(self, n: int = 1, pending: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        busy = self._seen | {point_key(p) for p in pending}
        chosen = [p for p in self.starts if point_key(p) not in busy][:n]
        if len(chosen) < n:
            chosen += self.inner.ask(n - len(chosen), pending=[*pending, *chosen])
        return chosen

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        self._seen.add(point_key(params))
        self.inner.tell(params, value)

    def tell_many(self, observations: Sequence[tuple[dict[str, Any], float | None]]) -> None:
        self._seen.update(point_key(p) for p, _ in observations)
        self.inner.tell_many(observations)


# ---- the data a search works on --------------------------------------------------------------------------
class _Prepared:
    """Inputs, encoded targets, folds, and a cache of fitted preprocessing per (scaler, select, fold)."""

    def __init__(self, x: Any, y: np.ndarray, task: str, folds: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.x, self.y, self.task, self.folds = x, y, task, folds
        self._cache: dict[tuple[str, float, int], tuple[Preprocessor, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def rows(self, index: np.ndarray) -> Any:
        return self.x.iloc[index] if isinstance(self.x, pd.DataFrame) else self.x[index]

    def fold(self, params: dict[str, Any], f: int) -> tuple[Preprocessor, np.ndarray, np.ndarray]:
        """(fitted preprocessor, X_train, X_val) of fold ``f`` for the trial's preprocessing choices."""
        key = (str(params.get("scaler", "standard")), float(params.get("select", 1.0)), f)
        with self._lock:
            if key not in self._cache:
                tr, va = self.folds[f]
                task = "regression" if self.task == "regression" else "classification"
                pre = Preprocessor(key[0], key[1]).fit(self.rows(tr), self.y[tr], task)
                self._cache[key] = (pre, pre.transform(self.rows(tr)), pre.transform(self.rows(va)))
            return self._cache[key]

    def holdout(self, params: dict[str, Any]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """``((X_train, y_train), (X_val, y_val))`` of fold 0, preprocessed for these params."""
        _, x_tr, x_va = self.fold(params, 0)
        tr, va = self.folds[0]
        return (x_tr, self.y[tr]), (x_va, self.y[va])


class _FoldHost:
    """Host of the stand-in trial a later CV fold trains under: it stops when the real trial stops."""

    def __init__(self, real: Trial) -> None:
        self.real = real

    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None:
        pass

    def stop_requested(self, trial: Trial) -> bool:
        return self.real.should_stop()


def _training(epochs: int) -> dict[str, Any]:
    """The training options every trial of fit gets, fused or not."""
    return {"early_stopping": max(5, epochs // 4), "grad_clip": 5.0}


class _Objective:
    def __init__(self, data: _Prepared, kinds: tuple[str, ...], n_outputs: int, epochs: int, seed: int,
                 metric: str, mode: str) -> None:
        self.data, self.kinds, self.n_outputs, self.epochs = data, kinds, n_outputs, epochs
        self.seed, self.metric, self.mode = seed, metric, mode

    def __call__(self, trial: Trial) -> dict[str, float]:
        p = trial.params
        kind, arch = family_of(p, self.kinds)
        task = "regression" if self.data.task == "regression" else "classification"
        results = []
        for f, (tr, va) in enumerate(self.data.folds):
            pre, x_tr, x_va = self.data.fold(p, f)
            runner = trial if f == 0 else Trial(
                trial.number, p, study_name=trial.study_name, checkpoint_dir=fold_dir(trial, f),
                metric=trial.metric, mode=trial.mode, host=_FoldHost(trial))
            seed = self.seed * 100003 + trial.number * 101 + f
            torch.manual_seed(seed)
            model = models.build(kind, arch, pre.input_shape, self.n_outputs)
            result = train(
                model, ((x_tr, self.data.y[tr]), (x_va, self.data.y[va])), epochs=self.epochs,
                batch_size=int(p["batch_size"]), optimizer=str(p["optimizer"]), lr=float(p["lr"]),
                weight_decay=float(p["weight_decay"]), schedule=str(p["schedule"]), seed=seed, task=task,
                metric=self.metric, mode=self.mode, trial=runner, **_training(self.epochs))
            results.append(dict(result))
            if trial.should_stop() or result.stopped in ("pruned", "stopped"):
                break  # the study settles it as PRUNED / INTERRUPTED
        values = np.asarray([r.get(self.metric, np.nan) for r in results], dtype=np.float64)
        out = {k: float(np.mean([r[k] for r in results if k in r])) for k in results[0]}
        out[self.metric] = float(values.mean())
        if len(self.data.folds) > 1:
            out["folds"] = float(len(results))
            if len(results) == len(self.data.folds):  # a pruned trial ran fold 0 only: no spread to show
                out[f"{self.metric}_std"] = float(values.std())
        return out


# ---- fit -------------------------------------------------------------------------------------------------
def fit(data: Any, target: Any = None, *, task: str = "auto", trials: int = 40, timeout: float | None = None,
        metric: str | None = None, cv: int | None = None, model: str | Sequence[str] = "auto",
        name: str | None = None, storage: str = "auto", background: bool = False, ensemble: int = 5,
        seed: int = 0, epochs: int | None = None, sampler: str = "bayes", parallel: int = 1,
        fused: bool | str = "auto", group_size: int | None = None, show: bool = True) -> AutoMLResult:
    """Search preprocessing, architecture and training for ``data`` and return an :class:`AutoMLResult`.

    ``data``: a DataFrame and ``target`` its column name, an ``(X, y)`` pair, or X with ``target=y``; X may
    be a DataFrame or an array of 2 (tabular), 3 (N, C, L) or 4 (N, C, H, W) dims. ``task``: "auto",
    "classification", "binary", "multiclass" or "regression". ``metric``: "val_loss" (default), "val_acc",
    "val_r2" or "val_mae". ``cv=k``: k-fold cross-validation instead of a 20% stratified holdout.
    ``model``: "auto" (from the layout), "mlp", "cnn1d", "cnn2d", "gru" or a list. ``ensemble``: how many top
    trials the ensemble averages (and the study keeps checkpoints of). ``timeout``: seconds; no trial starts
    after it and trials still running a tenth later are stopped. ``epochs``: ASHA's maximum per trial
    (default from the data size). Re-running the same call continues the same study (``name`` defaults to
    one derived from the task and the data's columns/shape); ``storage=":memory:"`` keeps nothing on disk.
    ``fused``: "auto" (fused groups where they pay: see the module docstring), True or False;
    ``group_size``: trials per fused group (default :func:`default_group_size`); ``parallel`` then counts groups.
    """
    x, y_raw, target_name = split_xy(data, target)
    layout = layout_of(x)
    y_series = y_raw if isinstance(y_raw, pd.Series) else pd.Series(y_raw)
    keep = y_series.notna().to_numpy()
    if not keep.all():
        log.warning("fit: dropping %d row(s) whose target is missing", int((~keep).sum()))
        x = x[keep] if not isinstance(x, pd.DataFrame) else x.loc[keep]
        y_series = y_series[keep]
    encoder = TargetEncoder(task).fit(y_series)
    y = encoder.transform(y_series)
    kinds = _kinds(model, layout)
    family = "regression" if encoder.task == "regression" else "classification"
    metric = metric or "val_loss"
    if metric not in _METRICS[family]:
        allowed = list(_METRICS[family])
        raise ValueError(f"metric {metric!r} does not fit {encoder.task}; choose one of {allowed}")
    if ensemble < 1:
        raise ValueError(f"ensemble must be >= 1, got {ensemble}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_fused = _use_fused(fused, cv, kinds, device)
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)
                                   or group_size < 1):
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if cv is not None:
        folds = kfold(y, int(cv), task=encoder.task, seed=seed)
    else:
        folds = [holdout(y, val_size=0.2, task=encoder.task, seed=seed)]
    n_train = len(folds[0][0])
    epochs = int(epochs) if epochs is not None else default_epochs(n_train)
    prepared = _Prepared(x, y, encoder.task, folds)
    probe = Preprocessor().fit(prepared.rows(folds[0][0]))
    space = default_space(layout, kinds, probe.input_shape, encoder.n_outputs, n_train)
    name = name or study_name(encoder.task, target_name, x, {"cv": cv, "seed": seed, "kinds": kinds,
                                                             "epochs": epochs, "classes": encoder.classes})
    scheduler = ASHA(max_steps=epochs)  # the default rungs (nbautoml.engine.schedulers.asha)
    warm = WarmStartSampler(make_sampler(sampler, space, seed=seed), start_points(space, kinds))
    study = Study(name, space, metric=metric, sampler=warm, scheduler=scheduler, storage=storage,
                  seed=seed, keep_checkpoints=max(1, ensemble))
    result = AutoMLResult(study, prepared, encoder, kinds, ensemble)
    _deadline(study, timeout)
    if use_fused:
        size = group_size or default_group_size(trials, device)
        objective_batch = batch_objective(
            prepared.holdout, n_outputs=encoder.n_outputs, family=lambda p: family_of(p, kinds), epochs=epochs,
            seed=seed, group_size=size, task="regression" if family == "regression" else "classification",
            metric=metric, mode=study.mode, **_training(epochs))
        study.optimize(objective_batch, trials=trials, timeout=timeout, parallel=parallel, background=background,
                       show=show, batch=size, group_by=structural(space.names))
    else:
        objective = _Objective(prepared, kinds, encoder.n_outputs, epochs, seed, metric, study.mode)
        study.optimize(objective, trials=trials, timeout=timeout, parallel=parallel, background=background,
                       show=show)
    return result


def default_group_size(trials: int | None, device: str) -> int:
    """Trials per fused group: about an eighth of the budget, so a search still tries several architectures,
    at most 4 on a CPU (the gain flattens there: 2.6x at 4, about 3x at 16) and 32 on a GPU (where it keeps
    growing with K); at least 2."""
    cap = 4 if device == "cpu" else 32
    return max(2, min(cap, (trials if trials is not None else 8 * cap) // 8))


def _use_fused(fused: bool | str, cv: int | None, kinds: Sequence[str], device: str) -> bool:
    if fused not in (True, False, "auto"):
        raise ValueError(f"fused must be 'auto', True or False, got {fused!r}")
    if fused is False:
        return False
    if cv is not None:
        if fused is True:
            raise ValueError("fused=True trains on the holdout, and cv folds train one by one: drop cv or pass "
                             "fused='auto' / False")
        return False
    if fused is True:
        if not any(k in FUSED_KINDS for k in kinds):
            raise ValueError(f"fused=True: none of {list(kinds)} can be fused (fused training covers "
                             f"{list(FUSED_KINDS)})")
        return True
    return any(k in FUSE_PAYS[device] for k in kinds)


def _deadline(study: Study, timeout: float | None) -> threading.Timer | None:
    """Make ``timeout`` a budget: no trial starts after it (the study's rule) and one still running a tenth
    later (at least 10 s) is stopped — INTERRUPTED, so re-running the same ``fit`` resumes it."""
    if timeout is None:
        return None

    def stop() -> None:
        if study.state.value == "RUNNING":
            log.info("fit: %r ran past its timeout of %.0f s; stopping the running trials", study.name, timeout)
            study.stop(source="timeout")

    timer = threading.Timer(timeout + max(GRACE_MIN, timeout / 10), stop)
    timer.daemon = True

    def finished(event: Any) -> None:
        timer.cancel()
        unsubscribe()

    unsubscribe = study.events.subscribe(finished, StudyFinished)
    timer.start()
    return timer
