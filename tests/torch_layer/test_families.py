"""nbautoml.torch.families: the registry, and a family of one's own going through all of ``fit``.

The toy family below lives in this test module only. ``fit`` with it must search it, train it one by one and
fused, rank it on the leaderboard with its own label and columns, predict, export and load it back: if any
place still dispatched on the built-in names (an if-chain ending in ``else: gru``), the toy would get another
family's model, label or KeyError here. A static check makes sure no such chain is left in the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from torch import nn

import nbautoml
import nbautoml.torch.families as registry
from nbautoml.space import Choice, Space
from nbautoml.torch import FamilyBase, Fusion, family_names, get_family, register_family
from nbautoml.torch.export import load_model
from nbautoml.torch.families import auto_families

PACKAGE = Path(nbautoml.__file__).resolve().parent
BUILT_IN = ("mlp", "cnn1d", "cnn2d", "gru")


class Linear(FamilyBase):
    """A linear model over flattened inputs: one searched param, ``bias``."""

    name = "linear"
    layouts = ("tabular", "image")
    defaults: Mapping[str, Any] = {"bias": True}
    fusion = Fusion(pays_on=("cpu", "cuda"), varying=())

    def space(self, input_shape: tuple[int, ...], n_outputs: int) -> Space:
        return Space(bias=Choice([True, False]))

    def build(self, arch: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), n_outputs, bias=arch["bias"]))

    def describe(self, arch: Mapping[str, Any]) -> str:
        return f"linear bias={arch['bias']}"

    def columns(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return {"bias": arch["bias"]}


@pytest.fixture
def linear(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The toy family registered for one test; the registry is restored afterwards."""
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    register_family("linear", Linear())
    yield "linear"


def digits(n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x[:n] / 16.0).astype("float32"), y[:n]


def test_built_ins_are_registered_in_order() -> None:
    assert family_names()[:4] == list(BUILT_IN)
    assert auto_families("tabular") == ("mlp",) and auto_families("sequence") == ("cnn1d", "gru")
    assert auto_families("image") == ("cnn2d",)
    assert get_family("gru").fusion is None and get_family("mlp").fusion is not None


def test_registering_checks_name_members_and_clashes(linear: str) -> None:
    assert family_names()[-1] == "linear" and isinstance(get_family("linear"), Linear)
    with pytest.raises(ValueError, match="already registered"):
        register_family("linear", Linear())
    register_family("linear", Linear(), replace=True)
    for bad in ("Linear", "2layer", "my-net", ""):
        with pytest.raises(ValueError, match="lower-case"):
            register_family(bad, Linear())
    with pytest.raises(TypeError, match="lacks"):
        register_family("broken", object())  # type: ignore[arg-type]
    odd = Linear()
    odd.layouts = ("graph",)
    with pytest.raises(ValueError, match="layouts"):
        register_family("graphy", odd)
    with pytest.raises(ValueError, match=r"unknown model family 'transformer'; registered: \['mlp'.*'linear'\]"):
        get_family("transformer")


def test_unknown_family_in_fit_names_the_registered_ones(linear: str) -> None:
    x, y = digits(40)
    with pytest.raises(ValueError, match=r"unknown model 'transformer'.*'gru', 'linear'\]"):
        nbautoml.fit(x, target=y, model="transformer", trials=1, storage=":memory:", show=False)
    seq = np.zeros((40, 2, 6), dtype="float32")
    with pytest.raises(ValueError, match=r"'linear' does not take sequence data"):
        nbautoml.fit(seq, target=y, model="linear", trials=1, storage=":memory:", show=False)


@pytest.mark.parametrize("fused", [False, True])
def test_fit_searches_trains_ranks_exports_and_loads_a_family_of_ones_own(linear: str, fused: bool,
                                                                             tmp_path: Path) -> None:
    x, y = digits()
    result = nbautoml.fit(x, target=y, model="linear", fused=fused, group_size=2, trials=4, epochs=3,
                          sampler="random", ensemble=2, storage=":memory:", show=False)
    space = result.study.space
    assert space is not None and space.names[:2] == ["scaler", "select"] and "bias" in space
    assert "family" not in space and "layers" not in space
    assert result.study.trials[0].params["bias"] is True  # the family's start point is tried first
    board = result.leaderboard
    assert len(board) == 4 and board["model"].str.startswith("linear bias=").all()
    assert set(board["bias"]) <= {True, False} and "dropout" not in board.columns
    for module in result.best_model.modules:
        assert [type(m) for m in module] == [nn.Flatten, nn.Linear]  # the toy's network, nobody else's
    assert result.predict_proba(x[:5]).shape == (5, 10)
    saved = result.export(tmp_path / "linear-model")
    loaded = load_model(saved)
    np.testing.assert_allclose(loaded.predict_proba(x[:20]), result.predict_proba(x[:20]), rtol=1e-5)
    del registry._FAMILIES["linear"]  # another process, one that never registered the family
    with pytest.raises(ValueError, match=r"'linear' model.*register it with nbautoml\.torch\.register_family"):
        load_model(saved)


def test_a_family_of_ones_own_beside_a_built_in(linear: str) -> None:
    x, y = digits()
    result = nbautoml.fit(x, target=y, model=["linear", "mlp"], fused=True, group_size=2, trials=4, epochs=3,
                          sampler="random", storage=":memory:", show=False)
    space = result.study.space
    assert space is not None and {"family", "linear_bias", "mlp_units"} <= set(space)
    board = result.leaderboard
    labels = {row["model"].split()[0] for _, row in board.iterrows()}
    assert labels == {"linear", "mlp"}  # the warm starts: one point per family, each with its own label
    assert result.predict(x[:3]).shape == (3,)


def _literals(path: Path) -> list[tuple[int, str]]:
    """String constants of a module, without its docstrings, ``__all__`` and function defaults (an API's
    default family is not a dispatch on it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip.update(id(d) for d in [*node.args.defaults, *node.args.kw_defaults] if d is not None)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip.update(id(n) for n in ast.walk(node.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip]


def test_no_module_outside_the_families_names_a_built_in_family() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "torch" / "families") in path.parents:
            continue
        for line, text in _literals(path):
            if text in BUILT_IN or text.startswith(tuple(f"{name}_" for name in BUILT_IN)):
                found.append(f"{path.relative_to(PACKAGE)}:{line}: {text!r}")
    assert not found, "ask nbautoml.torch.families instead of naming a family:\n" + "\n".join(found)
