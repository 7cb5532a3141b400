"""Export → load_model → the same predictions, for every format; no pickle; TorchScript needs trust."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_data import messy_frame

from nbautoml.torch import models
from nbautoml.torch.data import Preprocessor, TargetEncoder
from nbautoml.torch.export import Member, Predictor, load_model

HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
FORMATS = ["state_dict", "torchscript", pytest.param("onnx", marks=pytest.mark.skipif(
    not HAS_ONNX, reason="optional extra nbautoml[onnx] not installed"))]


def predictor(x: object, y: object, kinds: list[str], scalers: list[str], params: dict | None = None) -> Predictor:
    """Members with different preprocessing, random weights: export must not care how they were trained."""
    target = TargetEncoder().fit(y)
    pres = [Preprocessor(s).fit(x) for s in scalers]
    members = []
    for i, kind in enumerate(kinds):
        torch.manual_seed(i)
        pre = pres[i % len(pres)]
        module = models.build(kind, params or {}, pre.input_shape, target.n_outputs)
        arch = dict(getattr(module, "nbautoml_arch"))  # noqa: B009  (set by models.build; not typed)
        members.append(Member(arch, i % len(pres), module.eval(), info={"trial": i}))
    return Predictor(pres, members, target)


def frame_predictor() -> tuple[Predictor, pd.DataFrame]:
    df = messy_frame(80)
    y = np.where(df["member"], "yes", "no")
    x = df.drop(columns=["member"])
    return predictor(x, y, ["mlp", "mlp"], ["standard", "quantile"], {"norm": "batch", "dropout": 0.2}), x


@pytest.mark.parametrize("format", FORMATS)
def test_round_trip_gives_identical_predictions(format: str, tmp_path: Path) -> None:
    model, x = frame_predictor()
    folder = model.export(tmp_path / "model", format=format)
    loaded = load_model(folder, trust_code=format == "torchscript")
    assert loaded.format == format and len(loaded) == 2
    assert list(loaded.predict(x)) == list(model.predict(x))
    assert set(loaded.predict(x)) <= {"yes", "no"}
    tolerance = 0.0 if format == "state_dict" else 1e-5
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), rtol=0, atol=tolerance)
    with pytest.raises(KeyError, match="age"):
        loaded.predict(x.drop(columns=["age"]))  # the same preprocessing, with the same checks


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize(("kind", "shape"), [("cnn2d", (1, 8, 8)), ("gru", (2, 10)), ("cnn1d", (2, 10))])
def test_arrays_round_trip(kind: str, shape: tuple[int, ...], format: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, *shape)).astype(np.float32)
    y = rng.normal(size=30) * 5 + 10  # regression: predictions come back in the target's units
    model = predictor(x, y, [kind], ["minmax"])
    loaded = load_model(model.export(tmp_path / kind, format=format), trust_code=True)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expected an array of shape"):
        loaded.predict(x[:, :, :3])


def test_saved_folder_is_json_and_plain_tensors(tmp_path: Path) -> None:
    model, _ = frame_predictor()
    folder = model.export(tmp_path / "m")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "state_dict" and manifest["task"] == "binary"
    assert manifest["target"]["classes"] == ["no", "yes"]
    assert [m["file"] for m in manifest["members"]] == ["member-0.pt", "member-1.pt"]
    assert manifest["members"][1]["prep"] == 1 and manifest["members"][0]["trial"] == 0
    state = torch.load(folder / "member-0.pt", weights_only=True)  # no pickle beyond tensors
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model.export(folder)  # exporting again replaces the folder
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "member-0.pt", "member-1.pt"]


def test_torchscript_needs_trust(tmp_path: Path) -> None:
    model, _ = frame_predictor()
    folder = model.export(tmp_path / "ts", format="torchscript")
    with pytest.raises(PermissionError, match="trust"):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="format"):
        model.export(tmp_path / "x", format="pickle")


def test_missing_onnx_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = frame_predictor()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install nbautoml\[onnx\]"):
        model.export(tmp_path / "o", format="onnx")
