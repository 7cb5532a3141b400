"""The data a ``fit`` search works on, and the objective that trains one trial on it fold by fold.

:class:`PreparedData` holds the inputs, the encoded targets and the folds (one holdout, or ``cv`` k-fold), and
caches the fitted preprocessing per (scaler, select, fold): trials that chose the same preprocessing share it,
and :mod:`nbautoml.torch.results` rebuilds the same inputs after the search. :class:`FoldObjective` is the
one-by-one objective (fused groups: :mod:`nbautoml.torch.fused`): fold 0 trains under the trial itself, later
folds under a stand-in trial that stops when the real one does; the value is the folds' mean.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nbautoml.engine.trial import Trial
from nbautoml.torch import models
from nbautoml.torch._fitspace import family_of
from nbautoml.torch._fused_members import trial_seed
from nbautoml.torch.data import Preprocessor
from nbautoml.torch.families import get_family
from nbautoml.torch.train import train

__all__ = ["FoldObjective", "PreparedData", "fold_dir"]


def fold_dir(trial: Trial, f: int) -> Path:
    """Checkpoint folder of CV fold ``f`` (fold 0 trains under the trial itself)."""
    assert trial.checkpoint_dir is not None
    return trial.checkpoint_dir if f == 0 else trial.checkpoint_dir / f"fold-{f}"


class PreparedData:
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


class FoldObjective:
    """A trial trained one by one on every fold; its value is the folds' mean (and ``<metric>_std``)."""

    def __init__(self, data: PreparedData, kinds: tuple[str, ...], n_outputs: int, epochs: int, seed: int,
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
            seed = trial_seed(self.seed, trial) + f
            torch.manual_seed(seed)
            model = models.build(kind, arch, pre.input_shape, self.n_outputs)
            options = {**get_family(kind).training(self.epochs), "epochs": self.epochs,
                       "batch_size": int(p["batch_size"]), "optimizer": str(p["optimizer"]), "lr": float(p["lr"]),
                       "weight_decay": float(p["weight_decay"]), "schedule": str(p["schedule"]), "seed": seed,
                       "task": task, "metric": self.metric, "mode": self.mode, "trial": runner}
            result = train(model, ((x_tr, self.data.y[tr]), (x_va, self.data.y[va])), **options)
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


