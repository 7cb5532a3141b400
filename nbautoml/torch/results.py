"""What ``nbautoml.fit`` hands back: the leaderboard, and models rebuilt from the trials' checkpoints.

Nothing is retrained. The top ``ensemble`` COMPLETE trials (the ones whose checkpoints the study keeps) are
rebuilt from ``best.pt`` (``torch.load(weights_only=True)``) with the preprocessing their params chose, fitted
again on the same training rows (deterministic and cheap). ``best_model`` is the best trial, ``ensemble`` the
average of the top trials (with ``cv``, a trial is the average of its fold models). Both are scored on rows no
member trained on — the holdout, or with ``cv`` each row by the fold models that held it out — by the study's
metric, and ``predict`` uses the better one (the best model on a tie: it is smaller).

Models are built lazily and rebuilt when more trials have finished, so a ``background=True`` search can be
used while it runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from nbautoml.engine import direction
from nbautoml.engine.study import Study
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.torch import models
from nbautoml.torch._fitfolds import PreparedData, fold_dir
from nbautoml.torch._fitspace import family_of
from nbautoml.torch.data import Preprocessor, TargetEncoder
from nbautoml.torch.export import Member, Predictor
from nbautoml.torch.families import get_family

if TYPE_CHECKING:
    from pathlib import Path

    from nbautoml.torch.compress.report import CompressionReport

__all__ = ["AutoMLResult"]

log = logging.getLogger(__name__)
_Built = tuple[Trial, list[Member], np.ndarray]  # a rebuilt trial: its fold models and out-of-fold outputs


def _score(metric: str, task: str, out: np.ndarray, y: np.ndarray) -> float:
    """The study's metric, computed on combined outputs (probabilities / standardised predictions)."""
    if task == "regression":
        err = out - y
        if metric == "val_mae":
            return float(np.abs(err).mean())
        if metric == "val_r2":
            total = float(((y - y.mean()) ** 2).sum())
            return 1.0 - float((err ** 2).sum()) / total if total > 0 else 0.0
        return float((err ** 2).mean())
    if metric == "val_acc":
        return float((out.argmax(axis=1) == y).mean())
    return float(-np.log(np.clip(out[np.arange(len(y)), y], 1e-12, 1.0)).mean())


class AutoMLResult:
    """A finished (or running, with ``background=True``) ``fit``: leaderboard, models, predict, export."""

    def __init__(self, study: Study, data: PreparedData, target: TargetEncoder, kinds: tuple[str, ...],
                 ensemble: int) -> None:
        self.study = study
        self.target = target
        self._data = data
        self._kinds = kinds
        self._ensemble_size = ensemble
        self._built_key: tuple[Any, ...] | None = None
        self._best: Predictor | None = None
        self._ensemble: Predictor | None = None
        self.selected = ""  # "best_model" or "ensemble": what predict uses
        self.validation: dict[str, float] = {}  # holdout / out-of-fold score of each, by the study's metric

    # ---- views ------------------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.target.task

    @property
    def classes_(self) -> np.ndarray:
        return self.predictor.classes_

    @property
    def best_model(self) -> Predictor:
        self._ensure()
        assert self._best is not None
        return self._best

    @property
    def ensemble(self) -> Predictor:
        self._ensure()
        assert self._ensemble is not None
        return self._ensemble

    @property
    def predictor(self) -> Predictor:
        """The model ``predict`` uses: ``best_model`` or ``ensemble``, whichever validated better."""
        self._ensure()
        return self.ensemble if self.selected == "ensemble" else self.best_model

    def predict(self, x: Any) -> np.ndarray:
        return self.predictor.predict(x)

    def predict_proba(self, x: Any) -> np.ndarray:
        return self.predictor.predict_proba(x)

    def score(self, x: Any, y: Any) -> float:
        """Accuracy (classification) or R² (regression) of :attr:`predictor`."""
        return self.predictor.score(x, y)

    def export(self, path: Any, format: str = "state_dict") -> Path:
        """Save :attr:`predictor` as a folder (:mod:`nbautoml.torch.export`); ``load_model`` reads it back."""
        return self.predictor.export(path, format)

    def compress(self, methods: Sequence[str] | str = ("quantize", "prune", "distill"),
                 **options: Any) -> CompressionReport:
        """Quantized / pruned / distilled versions of the best model, measured next to it and the ensemble
        (:func:`nbautoml.torch.compress.report.compress` lists the options and the table's columns)."""
        from nbautoml.torch.compress.report import compress

        return compress(self, methods, **options)

    def wait(self, timeout: float | None = None) -> bool:
        return self.study.wait(timeout)

    def stop(self) -> None:
        self.study.stop()

    def __repr__(self) -> str:
        best = self.study.best_value
        shown = "none yet" if best is None else f"{best:.5g}"
        return (f"AutoMLResult(study={self.study.name!r}, task={self.task!r}, "
                f"trials={self.study.n_finished}, best {self.study.metric}={shown})")

    @property
    def leaderboard(self) -> pd.DataFrame:
        """One row per trial: rank, value (± std with cv), model, key params, epochs, seconds, state."""
        order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}
        rows = []
        cv = len(self._data.folds) > 1
        metric = self.study.metric
        for t in self.study.trials:
            kind, arch = family_of(t.params, self._kinds)
            value = t.value if t.value is not None and math.isfinite(t.value) else math.nan
            row: dict[str, Any] = {"trial": t.number, "value": value}
            if cv:
                std = t.metrics.get(f"{metric}_std", math.nan)
                row["std"] = std
                text = "" if math.isnan(value) else f"{value:.4g}"
                row["value ± std"] = text if not text or math.isnan(std) else f"{text} ± {std:.2g}"
            family = get_family(kind)
            try:
                row["model"] = family.describe(arch)
            except ValueError:  # a point the family rejects (it failed): its name is all there is to show
                row["model"] = kind
            row.update({k: t.params.get(k) for k in ("scaler", "select", "optimizer", "lr", "weight_decay",
                                                      "batch_size", "schedule") if k in t.params})
            row.update(family.columns(arch))
            row["epochs"] = len(t.reports)
            best_epoch = t.metrics.get("epoch")
            row["best_epoch"] = None if best_epoch is None else int(best_epoch) + 1
            row["seconds"] = t.duration
            row["state"] = t.state.value
            row["_key"] = (order.get(t.state, 2), direction.rank_key(value, self.study.mode), t.number)
            rows.append(row)
        rows.sort(key=lambda r: r["_key"])
        for i, row in enumerate(rows):
            row["rank"] = i + 1 if row["_key"][0] < 2 and not math.isnan(row["value"]) else None
            del row["_key"]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        frame["rank"] = frame["rank"].astype("Int64")  # stays an integer next to the unranked (None) rows
        columns = ["rank", *[c for c in frame.columns if c != "rank"]]
        return frame[columns].reset_index(drop=True)

    # ---- building the models ----------------------------------------------------------------------------
    def _ensure(self) -> None:
        key = (self.study.n_finished, self.study.state.value)
        if self._built_key == key and self._best is not None:
            return
        ranked = self.study.ranked_trials()
        prep_index: dict[tuple[str, float, int], int] = {}
        preprocessors: list[Preprocessor] = []
        built: list[_Built] = []
        for trial in ranked:
            if len(built) >= self._ensemble_size:
                break
            try:
                members, oof = self._rebuild(trial, prep_index, preprocessors)
            except (FileNotFoundError, RuntimeError, ValueError, KeyError) as error:
                log.warning("trial %d left out of the models: %s", trial.number, error)
                continue
            built.append((trial, members, oof))
        if not built:
            why = self.study.message or f"{self.study.n_finished} trials finished"
            name = self.study.name
            raise RuntimeError(f"study {name!r} has no completed trial with a checkpoint yet ({why})")
        rows = np.unique(np.concatenate([va for _, va in self._data.folds]))
        y = self._data.y[rows]
        best_out = built[0][2][rows]
        mean_out = np.mean([oof[rows] for _, _, oof in built], axis=0)
        metric = self.study.metric
        self.validation = {"best_model": _score(metric, self.task, best_out, y),
                           "ensemble": _score(metric, self.task, mean_out, y)}
        better = direction.loss(self.validation["ensemble"], self.study.mode) < direction.loss(
            self.validation["best_model"], self.study.mode)
        self.selected = "ensemble" if len(built) > 1 and better else "best_model"
        self._best = self._predictor(preprocessors, built[:1])
        self._ensemble = self._predictor(preprocessors, built)
        self._built_key = key

    def _predictor(self, preprocessors: list[Preprocessor], built: list[_Built]) -> Predictor:
        members = [m for _, ms, _ in built for m in ms]
        used = sorted({m.prep for m in members})
        remap = {old: new for new, old in enumerate(used)}
        copies = [Member(m.arch, remap[m.prep], m.module, m.runner, dict(m.info)) for m in members]
        return Predictor([preprocessors[i] for i in used], copies, self.target)

    def _rebuild(self, trial: Trial, prep_index: dict[tuple[str, float, int], int],
                 preprocessors: list[Preprocessor]) -> tuple[list[Member], np.ndarray]:
        """A trial's fold models from their best.pt, and their outputs on the rows each held out."""
        kind, arch = family_of(trial.params, self._kinds)
        n = len(self._data.y)
        oof = np.full((n,) if self.task == "regression" else (n, self.target.n_outputs), np.nan)
        members = []
        for f, (_, va) in enumerate(self._data.folds):
            path = fold_dir(trial, f) / "best.pt"
            if not path.is_file():
                raise FileNotFoundError(f"no checkpoint {path}")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            pre, _, x_va = self._data.fold(trial.params, f)
            spec = ckpt.get("arch") or {"kind": kind, "params": models.arch_params(kind, arch),
                                        "input_shape": list(pre.input_shape),
                                        "n_outputs": self.target.n_outputs}
            module = models.build(spec["kind"], spec["params"], spec["input_shape"], spec["n_outputs"])
            module.load_state_dict(ckpt["model"])
            key = (pre.scaler, pre.select, f)
            if key not in prep_index:
                prep_index[key] = len(preprocessors)
                preprocessors.append(pre)
            info = {"trial": trial.number, "fold": f}
            member = Member(dict(spec), prep_index[key], module.eval(), info=info)
            out = member.outputs(x_va).astype(np.float64)
            if self.task == "regression":
                oof[va] = out.reshape(len(out), -1)[:, 0]
            else:
                out = np.exp(out - out.max(axis=1, keepdims=True))
                oof[va] = out / out.sum(axis=1, keepdims=True)
            members.append(member)
        return members, oof
