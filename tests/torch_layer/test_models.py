"""nbautoml.torch.models and the built-in families: each builds and runs for its layout, every space param is
honoured."""

from __future__ import annotations

from typing import Any, cast

import pytest
import torch
from torch import nn

from nbautoml.space import Space
from nbautoml.torch import cnn, get_family, gru, mlp, models
from nbautoml.torch.models import ACTIVATIONS, RecurrentNet, arch_params, build, space

SHAPES: dict[str, tuple[int, ...]] = {"mlp": (12,), "cnn1d": (3, 20), "cnn2d": (1, 8, 8), "gru": (3, 12)}
KINDS = tuple(SHAPES)  # the built-in families


def arch_of(model: nn.Module) -> dict[str, Any]:
    return cast(dict[str, Any], model.nbautoml_arch)


def run(model: nn.Module, shape: tuple[int, ...], n: int = 4) -> torch.Tensor:
    model.train()
    return model(torch.randn(n, *shape))


# ---- what a built model really is, read back from its modules ------------------------------------------------
def linear_widths(model: nn.Module) -> list[int]:
    """Output widths of the MLP's main path (projections excluded), the head last."""
    return [m.out_features for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and not name.endswith("skip")]


def convs(model: nn.Module) -> list[nn.Module]:
    return [m for name, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d)) and not name.endswith("skip")]


def has(model: nn.Module, cls: type[nn.Module] | tuple[type[nn.Module], ...]) -> bool:
    return any(isinstance(m, cls) for m in model.modules())


def dropout_rates(model: nn.Module) -> set[float]:
    return {m.p for m in model.modules() if isinstance(m, nn.Dropout)}


def check_common(model: nn.Module, p: dict[str, Any]) -> None:
    act = type(ACTIVATIONS[p["activation"]]())
    assert has(model, act), p
    if p["dropout"] > 0:
        assert dropout_rates(model) == {p["dropout"]}
    else:
        assert not dropout_rates(model)
    norms: dict[str, type[nn.Module] | tuple[type[nn.Module], ...]] = {
        "batch": nn.modules.batchnorm._BatchNorm, "layer": (nn.LayerNorm, nn.GroupNorm)}
    for name, cls in norms.items():
        assert has(model, cls) == (p["norm"] == name), p
    assert any(type(m).__name__ == "Residual" for m in model.modules()) == p["residual"]


def check_mlp(model: nn.Module, p: dict[str, Any], n_out: int) -> None:
    check_common(model, p)
    widths = [p["units"]] * p["layers"]
    if p["shape"] == "funnel":
        widths = [max(4, p["units"] >> i) for i in range(p["layers"])]
    elif p["shape"] == "diamond":
        widths = [p["units"] * 2 ** min(i, p["layers"] - 1 - i) for i in range(p["layers"])]
    assert linear_widths(model) == [*widths, n_out]


def check_cnn(model: nn.Module, p: dict[str, Any], dims: int) -> None:
    check_common(model, p)
    layers = convs(model)
    assert len(layers) == p["blocks"]
    assert all(c.kernel_size == (p["kernel"],) * dims for c in layers)
    want = [max(1, min(1024, round(p["channels"] * p["growth"] ** i))) for i in range(p["blocks"])]
    assert [c.out_channels for c in layers] == want
    pool = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}[p["pool"]]
    assert sum(isinstance(m, pool) for m in model.modules()) == p["blocks"]


def check_gru(model: nn.Module, p: dict[str, Any]) -> None:
    assert isinstance(model, RecurrentNet)
    rnn = model.rnn
    assert isinstance(rnn, nn.GRU if p["cell"] == "gru" else nn.LSTM)
    assert (rnn.num_layers, rnn.hidden_size, rnn.bidirectional) == (p["layers"], p["hidden"], p["bidirectional"])
    assert rnn.dropout == (p["dropout"] if p["layers"] > 1 else 0.0)
    assert model.dropout.p == p["dropout"]
    assert model.readout == p["readout"]


# ---- tests ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_space_names_are_the_family_params(kind: str) -> None:
    sp = space(kind, SHAPES[kind], 3)
    assert isinstance(sp, Space)
    defaults = get_family(kind).defaults
    assert set(sp.names) == set(defaults)
    assert all(sp[name].contains(defaults[name]) for name in sp.names)  # defaults lie inside
    assert all(sp[name].contains(value) for name, value in get_family(kind).start.items())  # so does the start


@pytest.mark.parametrize("kind", KINDS)
def test_every_sampled_point_builds_runs_and_is_honoured(kind: str) -> None:
    shape, n_out = SHAPES[kind], 3
    points = space(kind, shape, n_out).sample(7, n=20)
    for p in points:
        model = build(kind, {**p, "lr": 0.01, "optimizer": "adam"}, shape, n_out)
        assert run(model, shape).shape == (4, n_out)
        assert arch_of(model) == {"kind": kind, "params": p, "input_shape": list(shape), "n_outputs": n_out}
        if kind == "mlp":
            check_mlp(model, p, n_out)
        elif kind == "gru":
            check_gru(model, p)
        else:
            check_cnn(model, p, 1 if kind == "cnn1d" else 2)


def test_space_covers_each_choice() -> None:
    """20 points could miss an option; the space itself must offer every documented one."""
    sp = space("mlp", (12,), 2)
    assert set(sp["activation"].options) == set(ACTIVATIONS)  # type: ignore[attr-defined]
    assert set(sp["norm"].options) == {"none", "batch", "layer"}  # type: ignore[attr-defined]
    assert set(sp["shape"].options) == {"constant", "funnel", "diamond"}  # type: ignore[attr-defined]
    assert (sp["layers"].low, sp["layers"].high) == (1, 4)  # type: ignore[attr-defined]
    assert set(space("gru", (3, 12), 2)["cell"].options) == {"gru", "lstm"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("residual", [False, True])
def test_all_norms_and_residual_in_every_family(norm: str, residual: bool) -> None:
    for kind in ("mlp", "cnn1d", "cnn2d"):
        p = {"norm": norm, "residual": residual, "layers": 3, "blocks": 3, "shape": "funnel", "channels": 8}
        model = build(kind, p, SHAPES[kind], 2)
        assert run(model, SHAPES[kind]).shape == (4, 2)
        check_common(model, arch_params(kind, p))


def test_build_fills_defaults_and_ignores_other_keys() -> None:
    model = build("mlp", {"lr": 0.1, "batch_size": 32}, (5,), 2)
    assert arch_of(model)["params"] == get_family("mlp").defaults
    assert linear_widths(model) == [128, 128, 2]


def test_mlp_flattens_images_and_layers_zero_is_linear() -> None:
    model = build("mlp", {"layers": 0}, (1, 8, 8), 10)
    assert run(model, (1, 8, 8)).shape == (4, 10)
    assert linear_widths(model) == [10]


def test_residual_uses_identity_or_projection() -> None:
    same = mlp(8, 2, layers=2, units=8, residual=True)
    assert not any(n.endswith("skip") and isinstance(m, nn.Linear) for n, m in same.named_modules())
    grow = mlp(8, 2, layers=2, units=16, residual=True)
    projections = [m for n, m in grow.named_modules() if n.endswith("skip") and isinstance(m, nn.Linear)]
    assert len(projections) == 1 and projections[0].in_features == 8 and projections[0].out_features == 16
    model = cnn(3, 2, dims=1, blocks=2, channels=4, growth=1.0, residual=True)
    skips = [type(m) for n, m in model.named_modules() if n.endswith("skip")]
    assert skips == [nn.Conv1d, nn.Identity]


def test_helpers_cover_every_layout() -> None:
    assert run(mlp(6, 3), (6,)).shape == (4, 3)
    assert run(cnn(2, 3, dims=1), (2, 16)).shape == (4, 3)
    assert run(cnn(3, 3, dims=2, blocks=4), (3, 5, 7)).shape == (4, 3)  # odd sizes, more blocks than halvings
    for cell in ("gru", "lstm"):
        for bidirectional in (False, True):
            for readout in ("last", "mean"):
                model = gru(3, 2, hidden=8, layers=2, cell=cell, bidirectional=bidirectional, readout=readout)
                assert run(model, (3, 9)).shape == (4, 2)
    assert models.build is build


def test_gru_reads_the_cnn_layout() -> None:
    """(N, C, L): channels are the GRU's features, L its time steps."""
    model = gru(3, 1, hidden=4)
    assert model.rnn.input_size == 3
    x = torch.randn(2, 3, 7)
    y = model(x)
    model.readout = "mean"
    assert y.shape == model(x).shape == (2, 1)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 7, 3))


@pytest.mark.parametrize(
    ("kind", "params", "named"),
    [
        ("mlp", {"layers": -1}, "layers"),
        ("mlp", {"layers": 2.5}, "layers"),
        ("mlp", {"units": 0}, "units"),
        ("mlp", {"activation": "swish"}, "activation"),
        ("mlp", {"norm": "group"}, "norm"),
        ("mlp", {"dropout": 1.0}, "dropout"),
        ("mlp", {"shape": "pyramid"}, "shape"),
        ("mlp", {"residual": "yes"}, "residual"),
        ("cnn2d", {"kernel": 4}, "kernel"),
        ("cnn1d", {"pool": "sum"}, "pool"),
        ("cnn1d", {"blocks": 0}, "blocks"),
        ("cnn2d", {"growth": 0.0}, "growth"),
        ("gru", {"cell": "rnn"}, "cell"),
        ("gru", {"hidden": -4}, "hidden"),
        ("gru", {"bidirectional": 3}, "bidirectional"),
        ("gru", {"readout": "max"}, "readout"),
    ],
)
def test_bad_params_name_themselves(kind: str, params: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=repr(named)):
        build(kind, params, SHAPES[kind], 2)


def test_bad_kind_and_shapes() -> None:
    with pytest.raises(ValueError, match="'transformer'"):
        build("transformer", {}, (4,), 2)
    with pytest.raises(ValueError, match="'transformer'"):
        space("transformer", (4,), 2)
    with pytest.raises(ValueError, match=r"cnn2d needs input_shape \(C, H, W\)"):
        build("cnn2d", {}, (8, 8), 2)
    with pytest.raises(ValueError, match="gru needs"):
        space("gru", (12,), 2)
    with pytest.raises(ValueError, match="n_outputs"):
        build("mlp", {}, (4,), 0)
    with pytest.raises(ValueError, match="dims"):
        cnn(1, 2, dims=3)
