"""``nbautoml.fit``: data in, a searched, validated, exportable model out.

The search joins three parts in one :class:`~nbautoml.space.Space` (:mod:`._fitspace`): the preprocessing
(scaler, feature selection), the model families (``model="auto"``: those registered for the data's layout,
of the built-ins tabular → MLP, sequences → CNN-1D and GRU, images → CNN-2D; any registered family by name,
:mod:`nbautoml.torch.families`) with each one's own architecture space, and training (optimizer, lr, weight
decay, batch size, LR schedule). The number of epochs is not searched: it is ASHA's resource, so weak
configurations stop after a few epochs.

Each trial fits its preprocessing on its training rows only (cached per choice and fold, :mod:`._fitfolds`),
trains with
:func:`nbautoml.torch.train` on a stratified holdout (or each of ``cv`` folds: the value is the mean, the
leaderboard shows mean ± std) and leaves ``best.pt`` in its checkpoint folder. Nothing is retrained after the
search: :mod:`nbautoml.torch.results` rebuilds the top trials from those checkpoints into ``best_model`` and
``ensemble``, scores both on the holdout (out-of-fold rows with ``cv``) by the study's metric, and
``predict`` uses the better one.

Fused training (:mod:`nbautoml.torch.fused`): with a holdout, the families whose fusion pays on the device
(their ``Fusion.pays_on``) train in groups of ``group_size`` trials that share every structural param (preprocessing,
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

import pandas as pd
import torch

from nbautoml.engine.registry import make_sampler
from nbautoml.engine.schedulers import ASHA
from nbautoml.engine.study import Study
from nbautoml.events import StudyFinished
from nbautoml.torch._fitfolds import FoldObjective, PreparedData
from nbautoml.torch._fitspace import (
    WarmStartSampler,
    default_epochs,
    default_space,
    family_of,
    fit_families,
    start_points,
)
from nbautoml.torch.data import Preprocessor, TargetEncoder, holdout, kfold, layout_of, split_xy
from nbautoml.torch.families import get_family
from nbautoml.torch.fused import batch_objective, fused_families, structural
from nbautoml.torch.results import AutoMLResult

__all__ = ["AutoMLResult", "default_group_size", "default_space", "fit", "start_points"]

log = logging.getLogger(__name__)

GRACE_MIN = 10.0  # seconds a trial may run past fit's timeout before it is stopped
_METRICS = {"regression": ("val_loss", "val_r2", "val_mae"), "classification": ("val_loss", "val_acc")}


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
    ``model``: "auto" (the families registered for the data's layout), a registered family's name
    (:func:`nbautoml.torch.family_names`) or a list of them. ``ensemble``: how many top trials the ensemble
    averages (and the study keeps checkpoints of). ``timeout``: seconds; no trial starts
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
    kinds = fit_families(model, layout)
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
    prepared = PreparedData(x, y, encoder.task, folds)
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
            metric=metric, mode=study.mode, family_options=lambda kind: get_family(kind).training(epochs))
        study.optimize(objective_batch, trials=trials, timeout=timeout, parallel=parallel, background=background,
                       show=show, batch=size, group_by=structural(space.names))
    else:
        objective = FoldObjective(prepared, kinds, encoder.n_outputs, epochs, seed, metric, study.mode)
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
    fusions = [get_family(k).fusion for k in kinds]
    if fused is True:
        if all(f is None for f in fusions):
            raise ValueError(f"fused=True: none of {list(kinds)} can be fused (fused training covers "
                             f"{fused_families()})")
        return True
    return any(f is not None and device in f.pays_on for f in fusions)


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
