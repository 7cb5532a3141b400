"""result.compress on tiny digits fits: every compressed model predicts, exports and loads back (no pickle),
its reported sizes are the files' sizes, and ONNX exports (best, ensemble, compressed) agree with torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from nbautoml.torch.automl import fit
from nbautoml.torch.compress import CompressionReport, _structure
from nbautoml.torch.export import load_model
from nbautoml.torch.results import AutoMLResult

HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
TINY: dict[str, Any] = {"trials": 3, "epochs": 4, "storage": ":memory:", "show": False, "ensemble": 2,
                        "sampler": "random"}
FAST = {"finetune_epochs": 2, "distill_epochs": 2}
METHODS = ["quantize", "prune", "distill", "prune+quantize"]


def digits(images: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x, y = x[:400].astype(np.float32), y[:400]
    return (x.reshape(-1, 1, 8, 8), y) if images else (x, y)


@pytest.fixture(scope="module", params=["mlp", "cnn2d"])
def fitted(request: pytest.FixtureRequest) -> tuple[AutoMLResult, CompressionReport, np.ndarray, np.ndarray]:
    torch.set_num_threads(1)
    x, y = digits(request.param == "cnn2d")
    result = fit(x, target=y, model=request.param, **TINY)
    return result, result.compress(METHODS, **FAST), x, y


def test_table_has_a_row_per_model_and_true_sizes(fitted: Any, tmp_path: Path) -> None:
    _, report, _, _ = fitted
    table = report.table
    assert list(table["model"]) == ["best", "ensemble", *METHODS]
    assert {"params", "bytes", "latency_ms_1", "latency_ms_256", "score", "size_ratio", "speedup_1"} <= set(table)
    assert (table["latency_ms_1"] > 0).all() and (table["latency_ms_256"] > 0).all()
    assert table["score"].between(0, 1).all()
    for name in METHODS:
        folder = report[name].export(tmp_path / name)
        files = sum(p.stat().st_size for p in folder.iterdir() if p.name != "manifest.json")
        assert int(table.set_index("model").loc[name, "bytes"]) == files
    sizes = table.set_index("model")["bytes"]
    assert sizes["quantize"] < sizes["best"] / 2  # int8 weights
    assert sizes["prune"] < sizes["best"] and sizes["prune+quantize"] < sizes["quantize"]
    assert "<table" in report._repr_html_() and "prune+quantize" in repr(report)
    with pytest.raises(KeyError, match="no model 'zip'"):
        report["zip"]


def test_compressed_models_predict_export_and_load_without_pickle(fitted: Any, tmp_path: Path) -> None:
    _, report, x, y = fitted
    for name in METHODS:
        model = report[name]
        assert model.predict(x[:20]).shape == (20,) and model.predict_proba(x[:20]).shape == (20, 10)
        assert 0.0 <= model.score(x, y) <= 1.0
        folder = model.export(tmp_path / name)
        for file in folder.glob("member-*.pt"):
            torch.load(file, weights_only=True)  # tensors only: no code, no pickled objects
        loaded = load_model(folder)
        np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_each_method_changes_what_it_says(fitted: Any) -> None:
    result, report, _, _ = fitted
    best = result.best_model.members[0]
    pruned = report["prune"].members[0]
    widths = pruned.arch["compress"]["widths"]
    original = [s.width for s in _structure.stages(_structure.rebuild({**best.arch, "compress": {}}))]
    assert all(w <= o for w, o in zip(widths, original, strict=True)) and sum(widths) < sum(original)
    params = lambda m: sum(p.numel() for p in m.module.parameters())  # noqa: E731
    assert params(pruned) < params(best)
    quantized_types = {type(m).__module__ for m in report["quantize"].members[0].module.modules()}
    assert any("quantized" in t for t in quantized_types)
    student = report["distill"].members[0]
    assert student.arch == best.arch and student.info["distilled"]
    changed = [not torch.equal(a, b) for a, b in zip(student.module.state_dict().values(),
                                                      best.module.state_dict().values(), strict=True)]
    assert any(changed)  # trained on the ensemble's soft targets


@pytest.mark.skipif(not HAS_ONNX, reason="optional extra nbautoml[onnx] not installed")
def test_onnx_exports_match_torch(fitted: Any, tmp_path: Path) -> None:
    result, report, x, _ = fitted
    for name, model in [("best", result.best_model), ("ensemble", result.ensemble),
                        ("prune", report["prune"]), ("distill", report["distill"])]:
        loaded = load_model(model.export(tmp_path / name, format="onnx"))
        assert loaded.format == "onnx"
        np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), rtol=0, atol=1e-5)
        assert (loaded.predict(x) == model.predict(x)).mean() >= 0.995  # a float tie may flip a label
    with pytest.raises(ValueError, match="int8"):
        report["quantize"].export(tmp_path / "q", format="onnx")


def test_bad_requests_are_clear_errors(fitted: Any) -> None:
    result, _, x, _ = fitted
    with pytest.raises(ValueError, match="unknown compression 'zip'"):
        result.compress("zip")
    with pytest.raises(ValueError, match="comes first"):
        result.compress("prune+distill")
    with pytest.raises(ValueError, match="last step"):
        result.compress("quantize+prune")
    with pytest.raises(ValueError, match="both x and y"):
        result.compress("quantize", x=x)


def test_gru_quantizes_but_does_not_prune(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2, 6)).astype(np.float32)
    y = (x[:, 0].sum(axis=1) > 0).astype(int)
    result = fit(x, target=y, model="gru", **TINY)
    report = result.compress("quantize", **FAST)
    model = report["quantize"]
    network = model.members[0].module
    assert any(isinstance(m, nn.Module) and "quantized" in type(m).__module__ for m in network.modules())
    loaded = load_model(model.export(tmp_path / "gru"))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    with pytest.raises(ValueError, match="no units or channels"):
        result.compress("prune", **FAST)
