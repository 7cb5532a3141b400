"""Predictors (fitted preprocessing + one or more networks) and saving / loading them without pickle.

A :class:`Predictor` is what ``nbautoml.fit`` hands back as ``best_model`` / ``ensemble`` and what
:func:`load_model` returns: members, each a network with the index of its fitted :class:`Preprocessor`,
whose softmax probabilities (classification) or predictions (regression) are averaged.

A saved model is a folder:

- ``manifest.json``: format, task, the target encoder and every preprocessor as JSON parameters, and one entry
  per member (architecture params, which preprocessor, which weights file);
- ``state_dict`` format: ``member-<i>.pt``, ``torch.save`` of a state dict, loaded with ``weights_only=True``
  into a model rebuilt by :func:`nbautoml.torch.models.build` (and, for a compressed member, the pruning /
  folding / int8 edits its manifest entry lists: :mod:`nbautoml.torch.compress._structure`) — no code and no
  pickle is ever loaded;
- ``torchscript`` format: ``member-<i>.ts``, traced TorchScript. **A TorchScript file is code: loading one
  means trusting whoever wrote it**, so :func:`load_model` asks for ``trust_code=True`` for it;
- ``onnx`` format: ``member-<i>.onnx`` run by onnxruntime (the optional extra ``pip install nbautoml[onnx]``).

Members stay separate files (rather than one fused graph) because they may use different preprocessing
(the scaler is searched); combining them is the same few lines of numpy for every format, so each format
gives the same predictions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nbautoml.torch.compress import _structure
from nbautoml.torch.data import Preprocessor, TargetEncoder
from nbautoml.torch.families import family_names

__all__ = ["FORMATS", "Member", "Predictor", "load_model"]

FORMATS = ("state_dict", "torchscript", "onnx")
MANIFEST = "manifest.json"
_VERSION = 1
_BATCH = 4096
_ONNX_HINT = "ONNX needs the optional extra: pip install nbautoml[onnx]  (onnx, onnxscript, onnxruntime)"


@dataclass
class Member:
    """One network of a predictor; ``arch`` is ``models.build``'s JSON (kind, params, input_shape, n_outputs)."""

    arch: dict[str, Any]
    prep: int
    module: nn.Module | None = None
    runner: Callable[[np.ndarray], np.ndarray] | None = None  # raw outputs from a non-torch runtime (ONNX)
    info: dict[str, Any] = field(default_factory=dict)  # trial number, fold: for the manifest and the reader

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """Raw network outputs (logits or standardised predictions), in batches, in eval mode."""
        if self.runner is not None:
            return np.concatenate([self.runner(x[i:i + _BATCH]) for i in range(0, len(x), _BATCH)] or
                                  [np.zeros((0, self.arch["n_outputs"]), np.float32)])
        assert self.module is not None
        self.module.eval()
        chunks = []
        with torch.no_grad():
            for i in range(0, len(x), _BATCH):
                chunks.append(self.module(torch.from_numpy(x[i:i + _BATCH])).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.arch["n_outputs"]), np.float32)


class Predictor:
    """Fitted preprocessing + averaged networks, with scikit-learn's predict / predict_proba / score."""

    def __init__(self, preprocessors: list[Preprocessor], members: list[Member], target: TargetEncoder,
                 *, format: str = "state_dict") -> None:
        if not members:
            raise ValueError("a predictor needs at least one member network")
        self.preprocessors = preprocessors
        self.members = members
        self.target = target
        self.format = format

    @property
    def task(self) -> str:
        return self.target.task

    @property
    def classes_(self) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression model has no classes")
        return self.target.inverse_transform(np.arange(len(self.target.classes)))

    @property
    def modules(self) -> list[nn.Module]:
        """The member networks (torch modules; empty for an ONNX predictor)."""
        return [m.module for m in self.members if m.module is not None]

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        kinds = sorted({m.arch["kind"] for m in self.members})
        return (f"Predictor(task={self.task!r}, members={len(self.members)}, kinds={kinds}, "
                f"format={self.format!r})")

    # ---- predicting -------------------------------------------------------------------------------------
    def transform_inputs(self, x: Any) -> list[np.ndarray]:
        """Each preprocessor's float32 input array (errors name the bad column or the expected shape)."""
        return [pre.transform(x) for pre in self.preprocessors]

    def _combined(self, x: Any) -> np.ndarray:
        """Mean of the members' probabilities (N, C) or standardised predictions (N,)."""
        inputs = self.transform_inputs(x)
        total: np.ndarray | None = None
        for member in self.members:
            out = member.outputs(inputs[member.prep]).astype(np.float64)
            if self.task == "regression":
                out = out.reshape(len(out), -1)[:, 0]
            else:
                out = np.exp(out - out.max(axis=1, keepdims=True))
                out /= out.sum(axis=1, keepdims=True)
            total = out if total is None else total + out
        assert total is not None
        return total / len(self.members)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of ``classes_``."""
        if self.task == "regression":
            raise AttributeError("predict_proba is for classification; this model does regression")
        return self._combined(x)

    def predict(self, x: Any) -> np.ndarray:
        """Labels in the user's own values (strings stay strings) or regression values in original units."""
        combined = self._combined(x)
        if self.task == "regression":
            return self.target.inverse_transform(combined)
        return self.target.inverse_transform(combined.argmax(axis=1))

    def score(self, x: Any, y: Any) -> float:
        """Accuracy (classification) or R² (regression), like scikit-learn's estimators."""
        predicted = self.predict(x)
        truth = np.asarray(y)
        if self.task == "regression":
            truth = truth.astype(np.float64)
            residual = float(((truth - predicted) ** 2).sum())
            total = float(((truth - truth.mean()) ** 2).sum())
            return 1.0 - residual / total if total > 0 else 0.0
        wanted = self.target.inverse_transform(self.target.transform(truth))
        return float(np.mean(predicted == wanted))

    # ---- saving -----------------------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str], format: str = "state_dict") -> Path:
        """Write the model to the folder ``path`` (replaced if it exists); see the module docstring."""
        if format not in FORMATS:
            raise ValueError(f"unknown export format {format!r}; choose one of {list(FORMATS)}")
        if any(m.module is None for m in self.members):
            raise ValueError("this predictor was loaded from ONNX; export it from the original model")
        if format == "onnx":
            _need_onnx(export=True)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".nbautoml-export-", dir=target.parent))
        try:
            members = [self._write_member(i, m, tmp, format) for i, m in enumerate(self.members)]
            manifest = {
                "nbautoml_model": _VERSION,
                "format": format,
                "task": self.task,
                "target": self.target.to_json(),
                "preprocessors": [p.to_json() for p in self.preprocessors],
                "members": members,
                "torch": torch.__version__,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _write_member(self, i: int, member: Member, folder: Path, format: str) -> dict[str, Any]:
        assert member.module is not None
        module = member.module.eval()
        entry = {"arch": member.arch, "prep": member.prep, **member.info}
        if format == "state_dict":
            entry["file"] = f"member-{i}.pt"
            torch.save(_structure.state_of(module), folder / entry["file"])
            return entry
        if format == "onnx" and (member.arch.get("compress") or {}).get("quantize"):
            raise ValueError("an int8 (quantized) model has no ONNX export here; export it as 'state_dict', "
                             "or export the pruned / distilled float model to ONNX")
        example = torch.from_numpy(np.zeros((2, *member.arch["input_shape"]), dtype=np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices of jit.trace / the TorchScript exporter
            if format == "torchscript":
                entry["file"] = f"member-{i}.ts"
                traced = torch.jit.trace(module, example)
                traced.save(str(folder / entry["file"]))
            else:
                entry["file"] = f"member-{i}.onnx"
                _export_onnx(module, example, folder / entry["file"])
        return entry


def _need_onnx(export: bool) -> None:
    names = ("onnx", "onnxruntime") if export else ("onnxruntime",)
    for name in names:
        try:
            __import__(name)
        except ImportError as error:
            raise ImportError(f"{_ONNX_HINT}; missing: {name}") from error


def _export_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """The TorchScript-based exporter while torch has it (fast, needs no onnxscript), else torch.export."""
    try:
        torch.onnx.export(module, (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
        return
    except (TypeError, RuntimeError, NotImplementedError):
        pass
    batch = torch.export.Dim("batch")
    torch.onnx.export(module, (example,), str(path), input_names=["x"], output_names=["y"],
                      dynamic_shapes=({0: batch},), dynamo=True)


# ---- loading ---------------------------------------------------------------------------------------------
def load_model(path: str | os.PathLike[str], *, trust_code: bool = False) -> Predictor:
    """A saved model folder → a :class:`Predictor` with the same preprocessing and predictions.

    ``state_dict`` and ``onnx`` models load without running code from the folder (weights via
    ``torch.load(weights_only=True)``, preprocessing from JSON). A ``torchscript`` model is code: loading it
    means trusting it, so it needs ``trust_code=True``.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{folder} is not a saved nbautoml model (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("nbautoml_model") != _VERSION:
        raise ValueError(f"{manifest_path}: unsupported model version {manifest.get('nbautoml_model')!r}")
    format = manifest["format"]
    if format not in FORMATS:
        raise ValueError(f"{manifest_path}: unknown format {format!r}")
    if format == "torchscript" and not trust_code:
        raise PermissionError(
            f"{folder} holds TorchScript, which is code: loading it runs whatever its author put in it. "
            "Pass load_model(path, trust_code=True) only for files you trust, or export with "
            "format='state_dict' (weights + JSON, no code)."
        )
    if format == "onnx":
        _need_onnx(export=False)
    preprocessors = [Preprocessor.from_json(state) for state in manifest["preprocessors"]]
    target = TargetEncoder.from_json(manifest["target"])
    members = [_load_member(folder, entry, format) for entry in manifest["members"]]
    return Predictor(preprocessors, members, target, format=format)


def _load_member(folder: Path, entry: dict[str, Any], format: str) -> Member:
    file = folder / Path(str(entry["file"])).name  # never outside the folder
    arch = dict(entry["arch"])
    info = {k: v for k, v in entry.items() if k not in ("arch", "prep", "file")}
    member = Member(arch=arch, prep=int(entry["prep"]), info=info)
    if format == "state_dict":
        if arch["kind"] not in family_names():
            raise ValueError(f"{folder}: member {entry['file']} is a {arch['kind']!r} model, a family this process "
                             f"has not registered (registered: {family_names()}); register it with "
                             "nbautoml.torch.register_family before load_model")
        module = _structure.rebuild(arch)  # models.build, plus the edits of a compressed member
        _structure.load_state(module, torch.load(file, map_location="cpu", weights_only=True))
        member.module = module.eval()
    elif format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in torch >= 2.9
            member.module = torch.jit.load(str(file), map_location="cpu").eval()
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])

        def run(x: np.ndarray, session: Any = session) -> np.ndarray:
            return np.asarray(session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0])

        member.runner = run
    return member
