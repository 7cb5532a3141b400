"""Fused training: equal to one-by-one training, per-trial reports / checkpoints / stops, OOM halving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import nbautoml as na
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.events import TrialReported
from nbautoml.torch import models
from nbautoml.torch._fused_layers import FusedOptimizer
from nbautoml.torch._optim import make_optimizer
from nbautoml.torch.fused import batch_objective, structural, train_fused, trial_seed
from nbautoml.torch.train import BEST, CHECKPOINT, train

TOL = 1e-4
X, Y = load_digits(return_X_y=True)
X = (X[:480] / 16.0).astype(np.float32)
Y = Y[:480]
HOLDOUT = ((X[:360], Y[:360]), (X[360:], Y[360:]))


def one_by_one(cfg: dict, data, **kw):
    torch.manual_seed(cfg["seed"])
    model = models.build("mlp", cfg, (64,), 10)
    hyper = {k: cfg[k] for k in ("lr", "weight_decay", "momentum", "schedule", "warmup_epochs") if k in cfg}
    return train(model, data, seed=cfg["seed"], **hyper, **kw)


def assert_same(fused, single) -> None:
    a, b = fused.model.state_dict(), single.model.state_dict()
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < TOL
    assert fused.best_epoch == single.best_epoch and fused.stopped == single.stopped
    for key in ("val_loss", "train_loss", "val_acc", "val_r2", "val_mae"):
        if key in single:
            assert fused[key] == pytest.approx(single[key], abs=TOL)


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "adamw", "nesterov"])
def test_fused_equals_one_by_one(optimizer: str):
    cfgs = [{"lr": 1e-3, "weight_decay": 0.0, "seed": 1, "dropout": 0.0},
            {"lr": 3e-3, "weight_decay": 1e-3, "seed": 2, "dropout": 0.3, "momentum": 0.8},
            {"lr": 1e-2, "weight_decay": 1e-4, "seed": 3, "dropout": 0.1}]
    cfgs = [{**c, "layers": 2, "units": 48} for c in cfgs]
    kw = {"epochs": 3, "batch_size": 32, "optimizer": optimizer}
    fused = train_fused(cfgs, HOLDOUT, n_outputs=10, **kw)
    for cfg, result in zip(cfgs, fused, strict=True):
        assert_same(result, one_by_one(cfg, HOLDOUT, **kw))


@pytest.mark.parametrize("name", ["adam", "adamw", "momentum", "rmsprop"])
@pytest.mark.parametrize("per_member", [False, True])
def test_the_optimizer_steps_like_torch_and_round_trips_its_state(name: str, per_member: bool):
    """Both Adam forms (batched: the GPU path; per-member fused kernel: the CPU path), with members whose step
    counts differ (one resumed from a torch optimizer's state)."""
    torch.manual_seed(0)
    shapes = [(5, 3), (3,)]
    lrs, wds = [1e-2, 3e-3], [0.0, 1e-2]
    refs = [[torch.nn.Parameter(torch.randn(s)) for s in shapes] for _ in lrs]
    opts = [make_optimizer(name, r, lr=lr, weight_decay=wd, momentum=0.8)
            for r, lr, wd in zip(refs, lrs, wds, strict=True)]
    for _ in range(2):  # member 1 starts two steps ahead
        for p in refs[1]:
            p.grad = torch.randn_like(p)
        opts[1].step()
    params = [torch.stack([r[j].detach() for r in refs]).requires_grad_() for j in range(len(shapes))]
    fopt = FusedOptimizer(name, params, lr=lrs, weight_decay=wds, momentum=[0.8, 0.8], per_member=per_member)
    fopt.load(1, opts[1], lambda j, t: t)
    for _ in range(3):
        grads = [torch.randn(len(lrs), *s) for s in shapes]
        for k, (r, opt) in enumerate(zip(refs, opts, strict=True)):
            for p, g in zip(r, grads, strict=True):
                p.grad = g[k].clone()
            opt.step()
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        fopt.step(params)
    for k, r in enumerate(refs):
        assert max((p[k] - q).abs().max().item() for p, q in zip(params, r, strict=True)) < 1e-6
    host = fopt.host_state()
    fopt.export(host, 1, opts[0], lambda j, t: t)  # member 1's state, written in torch's format
    assert opts[0].state_dict()["state"].keys() == opts[1].state_dict()["state"].keys()


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_own_splits_norms_residuals_schedules_clipping_and_early_stopping(norm: str):
    arch = {"layers": 3, "units": 32, "shape": "funnel", "norm": norm, "residual": True, "activation": "gelu"}
    cfgs = [{**arch, "lr": 0.05, "seed": 5, "schedule": "cosine", "warmup_epochs": 1},
            {**arch, "lr": 0.02, "seed": 6, "schedule": "none", "dropout": 0.2},
            {**arch, "lr": 0.5, "seed": 7, "schedule": "plateau"}]
    kw = {"epochs": 4, "batch_size": 40, "optimizer": "momentum", "grad_clip": 1.0, "early_stopping": 1,
          "metric": "val_acc"}
    fused = train_fused(cfgs, (X, Y), n_outputs=10, **kw)  # (X, y): each member splits by its own seed
    for cfg, result in zip(cfgs, fused, strict=True):
        assert_same(result, one_by_one(cfg, (X, Y), **kw))


def test_regression_and_binary_tasks():
    rng = np.random.default_rng(0)
    xr = rng.normal(size=(300, 5)).astype(np.float32)
    yr = np.stack([xr[:, 0] - xr[:, 1], xr[:, 2] * 0.5], axis=1).astype(np.float32)
    yb = (xr[:, 0] > 0).astype(np.int64)
    for y, n_out in ((yr, 2), (yb, 1)):
        cfgs = [{"lr": 1e-2, "seed": s, "layers": 1, "units": 16} for s in (0, 1)]
        fused = train_fused(cfgs, (xr, y), n_outputs=n_out, epochs=2, batch_size=32)
        for cfg, result in zip(cfgs, fused, strict=True):
            torch.manual_seed(cfg["seed"])
            single = train(models.build("mlp", cfg, (5,), n_out), (xr, y), epochs=2, batch_size=32, lr=1e-2,
                           seed=cfg["seed"])
            assert result.task == single.task
            assert_same(result, single)


def test_group_must_share_structure():
    with pytest.raises(TypeError, match="defaults="):
        batch_objective(HOLDOUT, n_outputs=10, layers=2)
    with pytest.raises(ValueError, match="architectures differ"):
        train_fused([{"units": 8}, {"units": 16}], HOLDOUT, n_outputs=10, epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        train_fused([{"batch_size": 8}, {"batch_size": 16}], HOLDOUT, n_outputs=10, epochs=1)
    with pytest.raises(ValueError, match="covers"):
        train_fused([{}], HOLDOUT, kind="gru", n_outputs=10, epochs=1)


def test_a_fused_checkpoint_resumes_in_train(tmp_path: Path):
    cfg = {"lr": 3e-3, "seed": 4, "layers": 1, "units": 32, "dropout": 0.2}
    first = Trial(0, cfg, checkpoint_dir=tmp_path / "t")
    train_fused([first, {**cfg, "seed": 9}], HOLDOUT, n_outputs=10, epochs=2, batch_size=32)
    assert (tmp_path / "t" / CHECKPOINT).exists() and (tmp_path / "t" / BEST).exists()
    again = Trial(1, cfg, checkpoint_dir=tmp_path / "t", resume_step=2)
    torch.manual_seed(cfg["seed"])
    resumed = train(models.build("mlp", cfg, (64,), 10), HOLDOUT, epochs=4, batch_size=32, lr=3e-3, seed=4,
                    trial=again)
    assert_same(resumed, one_by_one(cfg, HOLDOUT, epochs=4, batch_size=32))
    # and the other way: train's checkpoint continued by the fused trainer
    torch.manual_seed(cfg["seed"])
    train(models.build("mlp", cfg, (64,), 10), HOLDOUT, epochs=2, batch_size=32, lr=3e-3, seed=4,
          trial=Trial(2, cfg, checkpoint_dir=tmp_path / "u"))
    fresh = {**cfg, "seed": 11}
    out = train_fused([Trial(3, cfg, checkpoint_dir=tmp_path / "u", resume_step=2), fresh], HOLDOUT,
                      n_outputs=10, epochs=4, batch_size=32)
    assert_same(out[0], one_by_one(cfg, HOLDOUT, epochs=4, batch_size=32))
    assert_same(out[1], one_by_one(fresh, HOLDOUT, epochs=4, batch_size=32))


SPACE = na.Space(lr=na.Real(1e-3, 3e-2, log=True), weight_decay=na.Real(1e-6, 1e-2, log=True),
                 dropout=na.Real(0.0, 0.3), units=na.Choice([16, 32]))


def test_study_with_batches_reports_prunes_and_keeps_loadable_best_checkpoints():
    study = na.Study("fused", SPACE, metric="val_acc", sampler="random", seed=0, keep_checkpoints=None,
                     scheduler={"name": "asha", "min_steps": 1, "reduction_factor": 2, "max_steps": 4})
    objective = batch_objective(HOLDOUT, n_outputs=10, epochs=4, batch_size=32, defaults={"layers": 1},
                                group_size=4)
    study.optimize(objective, trials=8, batch=8, group_by=structural(SPACE.names), show=False)
    units = [t.params["units"] for t in study.trials]
    assert len(set(units[:4])) == 1 and len(set(units[4:])) == 1  # blocks of 4 share the architecture
    states = [t.state for t in study.trials]
    assert study.n_finished == 8 and TrialState.FAILED not in states and TrialState.PRUNED in states
    names = {"val_loss", "train_loss", "epoch_seconds", "peak_memory_mb", "val_acc"}
    for trial in study.trials:
        assert trial.reports and all(set(r.metrics) == names for r in trial.reports)
        assert [r.step for r in trial.reports] == list(range(len(trial.reports)))
        if trial.state is TrialState.PRUNED:
            assert len(trial.reports) < 4
        ckpt = torch.load(trial.checkpoint_dir / BEST, map_location="cpu", weights_only=True)
        model = models.build(ckpt["arch"]["kind"], ckpt["arch"]["params"], ckpt["arch"]["input_shape"],
                             ckpt["arch"]["n_outputs"])
        model.load_state_dict(ckpt["model"])
        assert ckpt["metrics"]["val_acc"] == trial.best_reported("val_acc", "max")
        if trial.state is TrialState.COMPLETE:
            assert trial.value == trial.best_reported("val_acc", "max")


def test_the_objective_falls_back_to_train_with_the_same_seeds():
    trials = [Trial(n, {"lr": 5e-3, "weight_decay": 1e-4, "dropout": 0.1, "units": 16}) for n in (3, 4)]
    fused = batch_objective(HOLDOUT, n_outputs=10, epochs=2, batch_size=32, seed=7)(trials)
    alone = batch_objective(lambda params: HOLDOUT, n_outputs=10, epochs=2, batch_size=32, seed=7, min_group=3)(trials)
    for a, b in zip(fused, alone, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=TOL)
    assert trial_seed(7, trials[0]) == 7 * 100003 + 3 * 101


def test_oom_groups_are_halved_and_other_groups_complete():
    sizes: list[int] = []
    inner = batch_objective(HOLDOUT, n_outputs=10, epochs=1, batch_size=64)

    def objective(trials: list[Trial]) -> list[object]:
        sizes.append(len(trials))
        if len(trials) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (test)")
        return inner(trials)

    study = na.Study("oom", SPACE, metric="val_acc", sampler="random", seed=1, storage=":memory:")
    study.optimize(objective, trials=8, batch=8, group_by=["units"], show=False)
    assert all(t.state is TrialState.COMPLETE for t in study.trials) and study.n_finished == 8
    assert any(s > 2 for s in sizes) and sum(s for s in sizes if s <= 2) == 8  # each trained once, in a half


def test_a_user_stop_mid_training_interrupts_the_group():
    study = na.Study("stop", SPACE, metric="val_acc", sampler="random", seed=2, storage=":memory:")

    def on_report(event: TrialReported) -> None:
        if event.step == 1:
            study.stop()

    study.events.subscribe(on_report, TrialReported)
    study.optimize(batch_objective(HOLDOUT, n_outputs=10, epochs=20, batch_size=32), trials=6, batch=6,
                   group_by=["units"], show=False)
    assert {t.state for t in study.trials} == {TrialState.INTERRUPTED}
    assert max(len(t.reports) for t in study.trials) <= 3
