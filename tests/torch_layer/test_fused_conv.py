"""Fused CNNs (cnn1d, cnn2d): equal to one-by-one training, per-member stops, export, resume, batch objectives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import nbautoml as na
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.torch import _fitdata as fd
from nbautoml.torch import _fused_conv as fc
from nbautoml.torch import _fused_train, models
from nbautoml.torch._fused_layers import FusedNet, FusedOptimizer, member_losses
from nbautoml.torch.fused import batch_objective, structural, train_fused
from nbautoml.torch.train import BEST, CHECKPOINT, train

TOL = 1e-4
_X, Y = load_digits(return_X_y=True)
_X = (_X[:300] / 16.0).astype(np.float32)
Y = Y[:300]
IMG = _X.reshape(-1, 1, 8, 8)  # cnn2d: (N, 1, 8, 8)
ODD_IMG = np.ascontiguousarray(IMG[:, :, :7, :7])  # 7x7: ceil_mode pooling gives 4x4, 2x2, 1x1
SEQ = np.ascontiguousarray(_X.reshape(-1, 8, 8)[:, :, :7])  # cnn1d: 8 channels, odd length 7


def holdout(x: np.ndarray) -> tuple:
    return (x[:200], Y[:200]), (x[200:], Y[200:])


def members(arch: dict[str, Any]) -> list[dict[str, Any]]:
    """Three configurations of one architecture: other lrs, weight decays, seeds and dropout rates (one without
    a Dropout module at all)."""
    return [{**arch, "lr": 3e-3, "seed": 1, "dropout": 0.0},
            {**arch, "lr": 1e-2, "seed": 2, "dropout": 0.3, "weight_decay": 1e-3, "momentum": 0.8},
            {**arch, "lr": 5e-3, "seed": 3, "dropout": 0.1}]


def one_by_one(kind: str, cfg: dict[str, Any], data: Any, shape: tuple[int, ...], trial: Trial | None = None,
               **kw: Any):
    torch.manual_seed(cfg["seed"])
    model = models.build(kind, cfg, shape, 10)
    hyper = {k: cfg[k] for k in ("lr", "weight_decay", "momentum") if k in cfg}
    return train(model, data, seed=cfg["seed"], trial=trial, **hyper, **kw)


def assert_same(fused, single) -> None:
    """Same final weights and buffers, and the same metrics at every epoch."""
    a, b = fused.model.state_dict(), single.model.state_dict()
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < TOL
    assert fused.best_epoch == single.best_epoch and fused.stopped == single.stopped
    assert len(fused.history) == len(single.history)
    for mine, theirs in zip(fused.history, single.history, strict=True):
        for key in ("val_loss", "train_loss", "val_acc"):
            assert mine[key] == pytest.approx(theirs[key], abs=TOL), (mine["epoch"], key)


# Batch norm cases use SGD-type optimizers: a conv bias right before batch norm has a true gradient of zero,
# and Adam / RMSprop would scale its rounding noise (the grouped conv sums in another order than K single
# convs, ~1e-7) up to lr-sized steps, so that bias would drift apart from its twin's (fused.py's docstring).
CASES = [
    ("cnn2d", IMG, {"norm": "batch", "pool": "max"}, "momentum", None),
    ("cnn2d", IMG, {"norm": "batch", "residual": True, "pool": "avg"}, "nesterov", 1.0),  # 1x1-conv projections
    ("cnn2d", ODD_IMG, {"norm": "layer", "residual": True, "pool": "avg", "growth": 1.0, "blocks": 3}, "adam", None),
    ("cnn2d", ODD_IMG, {"norm": "none", "pool": "max"}, "adamw", None),
    # identity skips, the first one around the very first conv (input still in the (K, B, C, L) layout)
    ("cnn1d", SEQ, {"norm": "batch", "residual": True, "channels": 8, "growth": 1.0, "pool": "max"}, "momentum",
     None),
    ("cnn1d", SEQ, {"norm": "layer", "residual": True, "pool": "avg", "kernel": 5}, "adam", 0.5),
    ("cnn1d", SEQ, {"norm": "none", "pool": "max"}, "adam", None),
]


@pytest.mark.parametrize(("kind", "x", "arch", "optimizer", "clip"), CASES)
def test_fused_cnn_equals_one_by_one(kind: str, x: np.ndarray, arch: dict[str, Any], optimizer: str,
                                     clip: float | None):
    cfgs = members({"blocks": 2, "channels": 4, **arch})
    kw = {"epochs": 3, "batch_size": 32, "optimizer": optimizer, "grad_clip": clip}
    fused = train_fused(cfgs, holdout(x), kind=kind, n_outputs=10, **kw)
    for cfg, result in zip(cfgs, fused, strict=True):
        assert_same(result, one_by_one(kind, cfg, holdout(x), x.shape[1:], **kw))


class PruneAt:
    """A trial host that prunes its trial once it reports ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None:
        if step == self.step:
            trial.pruned = True

    def stop_requested(self, trial: Trial) -> bool:
        return False


@pytest.mark.parametrize(("norm", "optimizer"), [("batch", "momentum"), ("layer", "adam")])
def test_members_stopped_midway_leave_and_the_rest_train_on_unchanged(norm: str, optimizer: str):
    cfgs = members({"blocks": 2, "channels": 4, "norm": norm, "residual": True})
    cfgs.append({**cfgs[1], "seed": 4, "lr": 2e-3})
    stops = [None, 1, None, 0]  # members 1 and 3 are pruned after epochs 1 and 0: the others must not notice
    kw = {"epochs": 4, "batch_size": 32, "optimizer": optimizer}

    def trials() -> list[Trial]:
        return [Trial(i, c, host=PruneAt(s) if s is not None else None) for i, (c, s) in
                enumerate(zip(cfgs, stops, strict=True))]

    fused = train_fused(trials(), holdout(IMG), kind="cnn2d", n_outputs=10, **kw)
    assert [r.stopped for r in fused] == [None, "pruned", None, "pruned"]
    assert [len(r.history) for r in fused] == [4, 2, 4, 1]
    for cfg, trial, result in zip(cfgs, trials(), fused, strict=True):
        assert_same(result, one_by_one("cnn2d", cfg, holdout(IMG), (1, 8, 8), trial=trial, **kw))


@pytest.mark.parametrize(("kind", "x", "norm"), [("cnn2d", ODD_IMG, "batch"), ("cnn1d", SEQ, "layer")])
def test_steps_match_the_members_own_and_export_loads_into_a_fresh_model(kind: str, x: np.ndarray, norm: str):
    """FusedNet directly: each step's losses and gradients are the member's own (dropout masks from its own
    generator), and after select() an exported member loads into a freshly built model and predicts alike."""
    arch = {"blocks": 2, "channels": 4, "norm": norm, "residual": True, "pool": "max"}
    cfgs = members(arch)
    shape = x.shape[1:]
    refs, twins = [], []
    for c in cfgs:
        torch.manual_seed(c["seed"])
        refs.append(models.build(kind, c, shape, 10))
        twins.append(models.build(kind, c, shape, 10))
        twins[-1].load_state_dict(refs[-1].state_dict())
    gens = [torch.Generator().manual_seed(c["seed"]) for c in cfgs]
    net = FusedNet(refs, torch.device("cpu"), "exact", gens)
    lrs = [c["lr"] for c in cfgs]
    fopt = FusedOptimizer("momentum", net.params, lr=lrs, weight_decay=[0.0] * 3, momentum=[0.9] * 3)
    opts = [torch.optim.SGD(t.parameters(), lr=lr, momentum=0.9) for t, lr in zip(twins, lrs, strict=True)]
    xt, yt = torch.from_numpy(x), torch.from_numpy(Y)
    rng_states = [torch.Generator().manual_seed(c["seed"]).get_state() for c in cfgs]  # the twins' dropout RNG
    for step in range(3):
        rows = torch.stack([torch.randperm(200, generator=torch.Generator().manual_seed(10 * step + k))[:32]
                            for k in range(3)])
        per = member_losses(fd.loss_fn("classification"), net(xt[rows], training=True), yt[rows])
        net.zero_grad()
        per.sum().backward()
        fopt.step(net.params)
        for k, (twin, opt) in enumerate(zip(twins, opts, strict=True)):
            torch.set_rng_state(rng_states[k])
            twin.train()
            loss = F.cross_entropy(twin(xt[rows[k]]), yt[rows[k]])
            rng_states[k] = torch.get_rng_state()
            opt.zero_grad()
            loss.backward()
            assert per[k].item() == pytest.approx(loss.item(), abs=1e-5)
            for j, p in enumerate(twin.parameters()):
                grad = net.layout(j, net.params[j].grad[k])
                assert (grad - p.grad).abs().max().item() < 1e-5, (step, k, j)
            opt.step()
    net.select([2, 0])  # member 1 stops
    xv = torch.from_numpy(x[200:])
    with torch.no_grad():
        out = net(xv.unsqueeze(0).expand(2, *xv.shape), training=False)
    host = net.host_copy()
    for pos, orig in enumerate([2, 0]):
        net.export(host, pos, refs[orig])
        fresh = models.build(kind, cfgs[orig], shape, 10)
        fresh.load_state_dict(refs[orig].state_dict())
        fresh.eval()
        twins[orig].eval()
        with torch.no_grad():
            mine, theirs = fresh(xv), twins[orig](xv)
        assert (mine - out[pos]).abs().max().item() < 1e-5
        assert (mine - theirs).abs().max().item() < 1e-4
        state, twin_state = fresh.state_dict(), twins[orig].state_dict()
        assert max((state[n].float() - twin_state[n].float()).abs().max().item() for n in state) < 1e-5


def test_packed_dropout_draws_each_members_masks_as_its_own_f_dropout():
    """Packed (B, K·C, H, W) maps: "exact" gives member k the mask F.dropout draws on its own (B, C, H, W)
    tensor from its seed; "fast" drops member k at its own rate (rate 0: untouched) in one draw."""
    torch.manual_seed(0)
    maps = [torch.randn(5, 3, 4, 4) for _ in range(3)]
    packed = torch.cat(maps, dim=1)
    rates, seeds = [0.3, 0.0, 0.5], [7, 8, 9]
    keep = [1.0 - r for r in rates]
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    out = fc.dropout(packed, True, keep, torch.tensor(keep), "exact", gens)
    for k, (m, rate, seed) in enumerate(zip(maps, rates, seeds, strict=True)):
        torch.manual_seed(seed)
        assert torch.equal(out[:, 3 * k:3 * (k + 1)], F.dropout(m, rate, training=True))
    ones = torch.ones(64, 3 * 4, 6, 6)
    fast = fc.dropout(ones, True, keep, torch.tensor(keep), "fast", [None] * 3).reshape(64, 3, 4, 6, 6)
    for k, rate in enumerate(rates):
        values = fast[:, k]
        assert bool(((values == 0) | torch.isclose(values, torch.tensor(1.0 / keep[k]))).all())
        assert float((values == 0).float().mean()) == pytest.approx(rate, abs=0.03)


def test_gru_stays_unfused():
    with pytest.raises(ValueError, match="covers"):
        train_fused([{}], holdout(SEQ), kind="gru", n_outputs=10, epochs=1)
    with pytest.raises(TypeError, match="cannot fuse"):
        FusedNet([models.build("gru", {}, (8, 7), 10)], torch.device("cpu"))


def test_fused_cnn_checkpoints_resume_in_train_and_back(tmp_path: Path):
    cfg = {"blocks": 2, "channels": 4, "norm": "layer", "residual": True, "lr": 3e-3, "seed": 4, "dropout": 0.2}
    kw = {"batch_size": 32}
    train_fused([Trial(0, cfg, checkpoint_dir=tmp_path / "t"), {**cfg, "seed": 9}], holdout(IMG), kind="cnn2d",
                n_outputs=10, epochs=2, **kw)
    assert (tmp_path / "t" / CHECKPOINT).exists() and (tmp_path / "t" / BEST).exists()
    resumed = one_by_one("cnn2d", cfg, holdout(IMG), (1, 8, 8), epochs=4,
                         trial=Trial(1, cfg, checkpoint_dir=tmp_path / "t", resume_step=2), **kw)
    assert_same(resumed, one_by_one("cnn2d", cfg, holdout(IMG), (1, 8, 8), epochs=4, **kw))
    one_by_one("cnn2d", cfg, holdout(IMG), (1, 8, 8), epochs=2, trial=Trial(2, cfg, checkpoint_dir=tmp_path / "u"),
               **kw)
    fresh = {**cfg, "seed": 11}
    out = train_fused([Trial(3, cfg, checkpoint_dir=tmp_path / "u", resume_step=2), fresh], holdout(IMG),
                      kind="cnn2d", n_outputs=10, epochs=4, **kw)
    assert_same(out[0], one_by_one("cnn2d", cfg, holdout(IMG), (1, 8, 8), epochs=4, **kw))
    assert_same(out[1], one_by_one("cnn2d", fresh, holdout(IMG), (1, 8, 8), epochs=4, **kw))


def test_a_study_with_a_cnn_batch_objective_trains_fused_groups(monkeypatch: pytest.MonkeyPatch):
    built: list[int] = []

    class Counting(FusedNet):
        def __init__(self, refs: Any, *args: Any, **kw: Any) -> None:
            built.append(len(refs))
            super().__init__(refs, *args, **kw)

    monkeypatch.setattr(_fused_train, "FusedNet", Counting)
    space = na.Space(lr=na.Real(1e-3, 3e-2, log=True), dropout=na.Real(0.0, 0.3), channels=na.Choice([4, 6]))
    defaults = {"blocks": 2, "norm": "layer", "residual": True}
    study = na.Study("fused-cnn", space, metric="val_acc", sampler="random", seed=0, storage=":memory:")
    objective = batch_objective(holdout(IMG), n_outputs=10, kind="cnn2d", epochs=2, batch_size=32,
                                defaults=defaults, group_size=4)
    study.optimize(objective, trials=8, batch=8, group_by=structural(space.names), show=False)
    assert study.n_finished == 8 and all(t.state is TrialState.COMPLETE for t in study.trials)
    assert sum(built) == 8 and max(built) >= 4  # every trial trained inside a fused group of >= 4
    alone = batch_objective(holdout(IMG), n_outputs=10, kind="cnn2d", epochs=2, batch_size=32, defaults=defaults,
                            min_group=99)
    twins = [Trial(t.number, t.params, metric="val_acc", mode="max") for t in study.trials]
    for trial, twin, result in zip(study.trials, twins, alone(twins), strict=True):
        assert [r.step for r in trial.reports] == [0, 1]
        for mine, theirs in zip(trial.reports, twin.reports, strict=True):
            assert mine.metrics["val_loss"] == pytest.approx(theirs.metrics["val_loss"], abs=TOL)
        assert trial.value == pytest.approx(result["val_acc"], abs=TOL)
