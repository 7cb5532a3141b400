"""``result.compress(...)``: compressed models next to the uncompressed best and the ensemble, measured.

Each row of :attr:`CompressionReport.table` is one model: ``params`` (numbers stored: weights, biases,
norm statistics; an int8 weight counts once), ``bytes`` (the weight files ``export`` writes, measured by
writing them), ``latency_ms_1`` / ``latency_ms_256`` (CPU milliseconds per row at batch 1 and 256, one torch
thread, median of repeated calls, the models measured in interleaved rounds so machine load hits them alike;
the network only — preprocessing is the same for all and left out), and ``score`` (accuracy or R² on rows
no model trained on: the holdout, or the ``x, y`` given). ``size_ratio`` and ``speedup_1`` compare with the
uncompressed best model.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch

from nbautoml.torch.compress import methods
from nbautoml.torch.export import Member, Predictor

if TYPE_CHECKING:
    from nbautoml.engine.study import Study
    from nbautoml.torch.data import TargetEncoder

__all__ = ["STEPS", "CompressionReport", "compress", "measure_bytes", "measure_latency"]

STEPS = ("distill", "prune", "quantize")


class AutoMLResult(Protocol):
    """What compression reads of a fit's result (:class:`nbautoml.torch.results.AutoMLResult`).

    A protocol rather than an import: results.py calls into this module, so an import back would be a cycle.
    """

    study: Study
    target: TargetEncoder
    _data: Any  # the prepared data: folds, y, rows(indices)

    @property
    def task(self) -> str: ...

    @property
    def best_model(self) -> Predictor: ...

    @property
    def ensemble(self) -> Predictor: ...


class CompressionReport:
    """The table of models and the compressed models themselves: ``report["prune"]`` is a Predictor."""

    def __init__(self, table: pd.DataFrame, models: dict[str, Predictor]) -> None:
        self.table = table
        self.models = models

    def __getitem__(self, method: str) -> Predictor:
        if method not in self.models:
            raise KeyError(f"no model {method!r} in this report; it has {list(self.models)}")
        return self.models[method]

    def __contains__(self, method: object) -> bool:
        return method in self.models

    def __repr__(self) -> str:
        return f"CompressionReport\n{self.table.to_string(index=False)}"

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda v: f"{v:.4g}")


# ---- measuring -------------------------------------------------------------------------------------------
def measure_bytes(model: Predictor) -> int:
    """Bytes of the weight files ``model.export`` writes (the manifest left out: it is a few KB of JSON)."""
    with tempfile.TemporaryDirectory(prefix="nbautoml-size-") as tmp:
        folder = model.export(Path(tmp) / "m")
        return sum(p.stat().st_size for p in folder.iterdir() if p.name != "manifest.json")


def _stored_numbers(model: Predictor) -> int:
    total = 0
    for net in model.modules:
        for value in net.state_dict().values():
            parts = value if isinstance(value, tuple) else (value,)
            total += sum(int(p.numel()) for p in parts if isinstance(p, torch.Tensor) and p.ndim > 0)
    return total


def _batch(x: np.ndarray, n: int) -> torch.Tensor:
    reps = -(-n // len(x))
    return torch.from_numpy(np.ascontiguousarray(np.concatenate([x] * reps)[:n], dtype=np.float32))


def measure_latency(models: dict[str, Predictor], x: Any, batches: Sequence[int] = (1, 256), *,
                    rounds: int = 7, calls: int = 20) -> dict[str, dict[int, float]]:
    """CPU ms per row of each model's networks at each batch size: the median over ``rounds`` interleaved
    rounds of the mean of ``calls`` calls, with one torch thread."""
    inputs = {name: m.transform_inputs(x) for name, m in models.items()}
    times: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in models}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(rounds):
                for b in batches:
                    for name, model in models.items():
                        feeds = [(m.module, _batch(inputs[name][m.prep], b)) for m in model.members]
                        for net, feed in feeds:  # warm up (first-call allocations, quantized packing)
                            assert net is not None
                            net(feed)
                        start = time.perf_counter()
                        for _ in range(calls):
                            for net, feed in feeds:
                                net(feed)  # type: ignore[misc]
                        times[name][b].append((time.perf_counter() - start) / calls / b * 1e3)
    finally:
        torch.set_num_threads(threads)
    return {name: {b: float(np.median(v)) for b, v in per.items()} for name, per in times.items()}


# ---- compressing -----------------------------------------------------------------------------------------
def _chains(spec: Sequence[str] | str) -> list[list[str]]:
    chains = []
    for text in [spec] if isinstance(spec, str) else spec:
        steps = [s.strip() for s in str(text).split("+") if s.strip()]
        bad = [s for s in steps if s not in STEPS]
        if not steps or bad:
            raise ValueError(f"unknown compression {text!r}; use {list(STEPS)} or chains like 'prune+quantize'")
        if "distill" in steps[1:]:
            raise ValueError(f"{text!r}: distill makes the student, so it comes first in a chain")
        if len(set(steps)) != len(steps):
            raise ValueError(f"{text!r} names a step twice")
        if "quantize" in steps[:-1]:
            raise ValueError(f"{text!r}: quantize is the last step (an int8 network is not trained further)")
        chains.append(steps)
    return chains


class _Compressor:
    """What the steps need from a fit: each member's training rows, the teacher, the task, the options."""

    def __init__(self, result: AutoMLResult, options: dict[str, Any]) -> None:
        self.result, self.options = result, options
        self.data = result._data
        self.trials = {t.number: t for t in result.study.trials}
        self.task = "regression" if result.task == "regression" else "classification"

    def rows(self, member: Member) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) the member trained on: its trial's preprocessing of its fold's training rows."""
        trial = self.trials[int(member.info["trial"])]
        fold = int(member.info.get("fold", 0))
        _, x_tr, _ = self.data.fold(trial.params, fold)
        return x_tr, self.data.y[self.data.folds[fold][0]]

    def teacher(self, fold: int) -> np.ndarray:
        """The ensemble's outputs on a fold's training rows: probabilities, or standardised predictions."""
        raw = self.data.rows(self.data.folds[fold][0])
        ensemble = self.result.ensemble
        if self.task == "regression":
            return self.result.target.transform(ensemble.predict(raw))
        return ensemble.predict_proba(raw)

    def step(self, name: str, member: Member) -> Member:
        o = self.options
        x, y = self.rows(member)
        if name == "quantize":
            return methods.quantize(member, x, o["quantize"])
        if name == "prune":
            return methods.prune(member, (x, y), amount=o["prune_amount"], epochs=o["finetune_epochs"],
                                 task=self.task, seed=o["seed"])
        teacher = self.teacher(int(member.info.get("fold", 0)))
        return methods.distill(member, x, teacher, y, task=self.task, epochs=o["distill_epochs"],
                               temperature=o["temperature"], seed=o["seed"])

    def chain(self, steps: list[str]) -> Predictor:
        best = self.result.best_model
        members = []
        for member in best.members:
            for name in steps:
                member = self.step(name, member)
            members.append(member)
        return Predictor(best.preprocessors, members, best.target)


def _evaluation_rows(result: AutoMLResult, x: Any, y: Any) -> tuple[Any, Any]:
    if x is not None or y is not None:
        if x is None or y is None:
            raise ValueError("compress: give both x and y (the rows to score on), or neither (the holdout)")
        return x, y
    if len(result._data.folds) > 1:
        raise ValueError("compress: with cv every row trained some fold model; pass x, y rows to score on")
    rows = result._data.folds[0][1]
    return result._data.rows(rows), result.target.inverse_transform(result._data.y[rows])


def compress(result: AutoMLResult, methods: Sequence[str] | str = ("quantize", "prune", "distill"), *,
             x: Any = None, y: Any = None, quantize: str = "auto", prune_amount: float = 0.5,
             finetune_epochs: int = 10, distill_epochs: int = 30, temperature: float = 2.0, seed: int = 0,
             batches: Sequence[int] = (1, 256)) -> CompressionReport:
    """Compress a fit's best model by each method (a step or a '+' chain such as "prune+quantize").

    Steps: "quantize" (int8: ``quantize`` "auto" picks static for CNNs, dynamic otherwise), "prune"
    (``prune_amount`` of each layer's units / channels removed, ``finetune_epochs`` of fine-tuning),
    "distill" (the ensemble taught to one best-architecture student for ``distill_epochs``). Every model is
    scored on ``x, y`` (default: the holdout) and measured; see the module docstring for the columns.
    """
    chains = _chains(methods)
    options = {"quantize": quantize, "prune_amount": prune_amount, "finetune_epochs": finetune_epochs,
               "distill_epochs": distill_epochs, "temperature": temperature, "seed": seed}
    x_eval, y_eval = _evaluation_rows(result, x, y)
    compressor = _Compressor(result, options)
    models: dict[str, Predictor] = {"best": result.best_model, "ensemble": result.ensemble}
    for steps in chains:
        models["+".join(steps)] = compressor.chain(steps)
    latency = measure_latency(models, x_eval, batches)
    rows = []
    for name, model in models.items():
        row: dict[str, Any] = {"model": name, "members": len(model), "params": _stored_numbers(model),
                               "bytes": measure_bytes(model)}
        row.update({f"latency_ms_{b}": latency[name][b] for b in batches})
        row["score"] = model.score(x_eval, y_eval)
        rows.append(row)
    table = pd.DataFrame(rows)
    first = f"latency_ms_{batches[0]}"
    table["size_ratio"] = table["bytes"].iloc[0] / table["bytes"]
    table[f"speedup_{batches[0]}"] = table[first].iloc[0] / table[first]
    return CompressionReport(table, {k: v for k, v in models.items() if k not in ("best", "ensemble")})
