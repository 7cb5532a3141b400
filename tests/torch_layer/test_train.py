"""nbautoml.torch.train: learning, reports to a trial, cooperative stop, checkpoints, exact resume, schedules."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from nbautoml.engine.trial import Trial, using_trial
from nbautoml.torch import TrainResult, cnn, gru, mlp, train
from nbautoml.torch._optim import OPTIMIZERS, SCHEDULES, LRSchedule
from nbautoml.torch.train import BEST, CHECKPOINT

CLS_NAMES = {"val_loss", "train_loss", "epoch_seconds", "peak_memory_mb", "val_acc"}
REG_NAMES = {"val_loss", "train_loss", "epoch_seconds", "peak_memory_mb", "val_r2", "val_mae"}


def blobs(n: int = 240, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.normal(0, 4, (classes, 5))
    return centers[y] + rng.normal(0, 0.5, (n, 5)), y


def linear(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return x, x @ np.array([1.5, -2.0, 0.5, 1.0]) + 0.05 * rng.normal(size=n)


def small_mlp(out: int = 3, inputs: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(inputs, out, layers=1, units=16)


class Host:
    """A TrialHost (the real protocol): records reports, stops after N stop checks or prunes at a step."""

    def __init__(self, stop_after_checks: int | None = None, stop_after_step: int | None = None,
                 prune_at: int | None = None) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []
        self.checks = 0
        self.stop_after_checks = stop_after_checks
        self.stop_after_step = stop_after_step
        self.prune_at = prune_at

    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None:
        self.reports.append((step, metrics))
        if step == self.prune_at:
            trial.pruned = True

    def stop_requested(self, trial: Trial) -> bool:
        self.checks += 1
        if self.stop_after_checks is not None and self.checks > self.stop_after_checks:
            return True
        return self.stop_after_step is not None and any(s >= self.stop_after_step for s, _ in self.reports)


def make_trial(folder: Path, host: Host, resume_step: int = 0, metric: str = "value", mode: str = "min") -> Trial:
    return Trial(0, {}, checkpoint_dir=folder, host=host, resume_step=resume_step, metric=metric, mode=mode)


# ---- learning ----------------------------------------------------------------------------------------------
def test_learns_a_separable_problem() -> None:
    x, y = blobs()
    result = train(small_mlp(), (x, y), epochs=15, lr=0.01, seed=0)
    assert result.task == "classification"
    assert result["val_acc"] > 0.9
    assert set(result) == CLS_NAMES | {"epoch"}


def test_learns_a_linear_regression() -> None:
    x, y = linear()
    result = train(small_mlp(1, 4), (x, y), epochs=30, lr=0.02, seed=0)
    assert result.task == "regression"
    assert result["val_r2"] > 0.9
    assert set(result) == REG_NAMES | {"epoch"}
    assert all(set(h) == REG_NAMES | {"epoch"} for h in result.history)


def test_binary_with_one_output_uses_bce() -> None:
    x, y = blobs(classes=2)
    result = train(small_mlp(1), (torch.tensor(x), torch.tensor(y)), epochs=10, lr=0.01, seed=0)
    assert result.task == "binary" and result["val_acc"] > 0.9


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_runs(name: str) -> None:
    x, y = blobs(120)
    result = train(small_mlp(), (x, y), epochs=2, optimizer=name, lr=0.01, weight_decay=1e-4, seed=0)
    assert math.isfinite(result["val_loss"]) and len(result.history) == 2


def test_every_schedule_drives_the_optimizer_lr() -> None:
    """The lr each optimizer step actually used follows LRSchedule (warm-up included) for all schedules."""
    x, y = blobs(64)
    seen: list[float] = []
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    try:
        for name in SCHEDULES:
            seen.clear()
            train(small_mlp(), ((x[:48], y[:48]), (x[48:], y[48:])), epochs=5, batch_size=16, lr=0.1,
                  optimizer="sgd", schedule=name, warmup_epochs=1, seed=0)
            sched = LRSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), name, epochs=5,
                               steps_per_epoch=3, warmup_epochs=1)
            want = [sched.lr(e, b) for e in range(5) for b in range(3)]
            if name != "plateau":  # plateau depends on the metric; its curve is tested on its own below
                assert seen == pytest.approx(want), name
            assert seen[:3] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1]), name  # linear warm-up per batch
    finally:
        hook.remove()


def lrs(name: str, epochs: int, **kw: Any) -> list[float]:
    sched = LRSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), name, epochs=epochs, **kw)
    return [sched.lr(e) for e in range(epochs)]


def test_schedule_curves() -> None:
    assert lrs("none", 4) == [1.0] * 4
    assert lrs("step", 9) == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert lrs("step", 6, options={"step_size": 2, "gamma": 0.5}) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    exp = lrs("exponential", 5)
    assert exp[0] == 1 and exp[-1] == pytest.approx(0.01) and exp[2] == pytest.approx(0.1)
    assert lrs("time_decay", 4, options={"decay": 1.0}) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])
    assert lrs("time_decay", 10)[-1] == pytest.approx(0.1)
    cos = lrs("cosine", 4)
    assert cos == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2])
    warm = lrs("cosine", 6, warmup_epochs=2, steps_per_epoch=1)
    assert warm[:3] == pytest.approx([0.5, 1.0, 1.0]) and warm[3] < 1.0


def test_plateau_halves_after_patience() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LRSchedule(opt, "plateau", epochs=20, options={"patience": 1})
    factors = []
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.6, 0.4, 0.7, 0.7, 0.7, 0.7]):
        sched.epoch_end(epoch, loss)
        sched.set(epoch + 1)
        factors.append(opt.param_groups[0]["lr"])
    assert factors == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]
    restored = LRSchedule(opt, "plateau", epochs=20)
    restored.load_state_dict(sched.state_dict())
    assert restored.factor(9) == 0.125


def test_bad_names_list_the_choices() -> None:
    x, y = blobs(40)
    with pytest.raises(ValueError, match="adamw"):
        train(small_mlp(), (x, y), epochs=1, optimizer="adagrad")
    with pytest.raises(ValueError, match="time_decay"):
        train(small_mlp(), (x, y), epochs=1, schedule="linear")
    with pytest.raises(ValueError, match="regression"):
        train(small_mlp(), (x, y), epochs=1, task="ranking")
    with pytest.raises(ValueError, match="step_size"):
        train(small_mlp(), (x, y), epochs=1, schedule="step", schedule_options={"gama": 0.5})
    with pytest.raises(ValueError, match="val_acc"):
        train(small_mlp(), (x, y), epochs=1, metric="val_r2")


def test_shape_mismatches_are_clear() -> None:
    x, y = blobs(40)
    with pytest.raises(ValueError, match="40 samples but y has 39"):
        train(small_mlp(), (x, y[:-1]), epochs=1)
    with pytest.raises(ValueError, match=r"per-sample shape \(4,\)"):
        train(small_mlp(), (x[:, :4], y), epochs=1)
    with pytest.raises(ValueError, match=r"labels 0\.\.2 but the model has 2 output"):
        train(small_mlp(2), (x, y), epochs=1)
    with pytest.raises(ValueError, match="continuous"):
        train(small_mlp(), (x, y + 0.5), epochs=1)
    with pytest.raises(ValueError, match="2 value"):
        train(small_mlp(1), (x, np.stack([y, y], 1).astype(float)), epochs=1)
    with pytest.raises(ValueError, match="X_val"):
        train(small_mlp(), ((x, y), (x[:, :4], y)), epochs=1)


def test_sequences_and_images_train() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 48)
    seq = rng.normal(size=(48, 2, 10)) + y[:, None, None]
    img = rng.normal(size=(48, 1, 6, 6)) + y[:, None, None, None]
    for model, x in ((cnn(2, 2, dims=1, channels=4), seq), (gru(2, 2, hidden=8), seq),
                     (cnn(1, 2, dims=2, channels=4), img)):
        result = train(model, (x.astype(np.float32), y), epochs=2, seed=0)
        assert set(result) == CLS_NAMES | {"epoch"}


# ---- trials: reports, stop, checkpoints, resume --------------------------------------------------------------
def test_one_report_per_epoch_with_zero_based_steps(tmp_path: Path) -> None:
    host = Host()
    trial = make_trial(tmp_path, host)
    x, y = blobs(80)
    with using_trial(trial):  # found through current_trial(), as inside %%automl
        result = train(small_mlp(), (x, y), epochs=4, seed=0)
    assert [s for s, _ in host.reports] == [0, 1, 2, 3]
    assert all(set(m) == CLS_NAMES for _, m in host.reports)
    assert [h["val_loss"] for h in result.history] == [m["val_loss"] for _, m in host.reports]
    assert result.stopped is None


def test_trial_without_checkpoint_dir_reports_only() -> None:
    host = Host()
    x, y = blobs(60)
    result = train(small_mlp(), (x, y), epochs=2, seed=0, trial=Trial(0, {}, host=host, resume_step=1))
    assert [s for s, _ in host.reports] == [0, 1] and result.best_path is None


def test_stop_mid_epoch_ends_promptly_without_reporting_it(tmp_path: Path) -> None:
    x, y = blobs(200)
    steps = 160 // 16
    host = Host(stop_after_checks=2 * (steps + 1) + 3)  # epochs 0 and 1 run, then 3 batches of epoch 2
    data = ((x[:160], y[:160]), (x[160:], y[160:]))
    result = train(small_mlp(), data, epochs=50, batch_size=16, seed=0, trial=make_trial(tmp_path, host))
    assert result.stopped == "stopped"
    assert [s for s, _ in host.reports] == [0, 1]
    assert len(result.history) == 2 and result.best_epoch in (0, 1)
    assert host.checks == 2 * (steps + 1) + 4  # nothing ran after the check that said stop
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["epoch"] == 1


def test_pruned_trial_stops_after_the_report(tmp_path: Path) -> None:
    host = Host(prune_at=1)
    x, y = blobs(80)
    result = train(small_mlp(), (x, y), epochs=10, seed=0, trial=make_trial(tmp_path, host))
    assert result.stopped == "pruned" and len(host.reports) == 2


def test_checkpoints_are_atomic_and_load_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moves: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        assert Path(src).parent == Path(dst).parent and Path(src).exists()
        moves.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    x, y = blobs(80)
    model = build_arch_model()
    result = train(model, (x, y), epochs=3, seed=0, trial=make_trial(tmp_path, Host()))
    assert [dst for _, dst in moves].count(CHECKPOINT) == 3
    assert all(src.endswith(".tmp") for src, _ in moves)
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST, CHECKPOINT]  # no temp files left behind
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert ckpt["epoch"] == 2 and {"model", "optimizer", "schedule", "rng", "history"} <= set(ckpt)
    best = torch.load(tmp_path / BEST, weights_only=True)
    assert best["epoch"] == result.best_epoch and best["metric"] == "val_loss" and best["task"] == "classification"
    assert best["arch"]["kind"] == "mlp"
    assert result.best_path == tmp_path / BEST
    for key, value in result.model.state_dict().items():  # the returned model holds the best weights
        assert torch.equal(value, best["model"][key])


def build_arch_model() -> nn.Module:
    from nbautoml.torch.models import build

    torch.manual_seed(0)
    return build("mlp", {"layers": 1, "units": 16, "dropout": 0.2}, (5,), 3)


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_interrupt_and_resume_equals_an_uninterrupted_run(tmp_path: Path, schedule: str) -> None:
    x, y = blobs(160)
    kw: dict[str, Any] = {"epochs": 6, "batch_size": 16, "seed": 3, "schedule": schedule, "optimizer": "adamw",
                          "lr": 0.01}

    def model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return mlp(5, 3, layers=2, units=16, dropout=0.3, norm="batch")

    whole = train(model(0), (x, y), trial=make_trial(tmp_path / "whole", Host()), **kw)

    first_host = Host(stop_after_step=2)  # the user stops after epoch 2 is reported
    first = train(model(0), (x, y), trial=make_trial(tmp_path / "run", first_host), **kw)
    assert first.stopped == "stopped" and [s for s, _ in first_host.reports] == [0, 1, 2]

    # the re-run: a fresh model (other init) and another seed (a new trial number) continue from epoch 3
    host = Host()
    resumed = train(model(99), (x, y), trial=make_trial(tmp_path / "run", host, resume_step=3),
                    **{**kw, "seed": 1234})
    assert [s for s, _ in host.reports] == [3, 4, 5]
    assert resumed.best_epoch == whole.best_epoch and resumed.stopped is None
    for key in ("val_loss", "val_acc", "train_loss", "epoch"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-7)
    assert [h["val_loss"] for h in resumed.history] == pytest.approx([h["val_loss"] for h in whole.history])
    for key, value in whole.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[key].float(), value.float(), atol=1e-6)


def test_checkpoint_ahead_of_the_journal_is_reported_on_resume(tmp_path: Path) -> None:
    x, y = blobs(80)
    train(small_mlp(), (x, y), epochs=3, seed=0, trial=make_trial(tmp_path, Host(stop_after_step=1)))
    host = Host()  # the journal lost step 1's report: resume_step=1, but the checkpoint already has epoch 1
    result = train(small_mlp(), (x, y), epochs=3, seed=0, trial=make_trial(tmp_path, host, resume_step=1))
    assert [s for s, _ in host.reports] == [1, 2] and len(result.history) == 3


def test_early_stopping() -> None:
    x, y = blobs(80)
    result = train(small_mlp(), (x, y), epochs=30, lr=1e-7, metric="val_acc", early_stopping=2, seed=0)
    assert result.stopped == "early_stopping"
    assert len(result.history) == 3 and result.best_epoch == 0


def test_result_value_contract(tmp_path: Path) -> None:
    """A dict of the best epoch's metrics + "epoch": the study picks its metric from it."""
    x, y = blobs(120)
    trial = make_trial(tmp_path, Host(), metric="val_acc", mode="max")
    result = train(small_mlp(), (x, y), epochs=5, lr=0.003, seed=0, trial=trial)
    assert isinstance(result, TrainResult) and isinstance(result, dict)
    best = max(h["val_acc"] for h in result.history)
    assert result["val_acc"] == best  # best by the trial's metric and mode, not by val_loss
    assert result["epoch"] == result.best_epoch
    assert result.history[result.best_epoch] == dict(result)
    assert all(isinstance(v, (int, float)) for v in result.values())


def test_explicit_validation_set_and_tensor_inputs() -> None:
    x, y = linear(120)
    xt, yt = torch.tensor(x), torch.tensor(y)
    result = train(small_mlp(1, 4), ((xt[:90], yt[:90]), (xt[90:], yt[90:])), epochs=2, seed=0, verbose=True)
    assert result.task == "regression" and len(result.history) == 2


def test_split_is_stratified_and_seeded() -> None:
    from nbautoml.torch._fitdata import split

    y = torch.tensor([0] * 50 + [1] * 10)
    tr, va = split(y, 0.2, seed=1, stratify=True)
    assert sorted(y[va].tolist()) == [0] * 10 + [1] * 2
    assert len(set(tr.tolist()) | set(va.tolist())) == 60
    assert torch.equal(split(y, 0.2, seed=1, stratify=True)[1], va)
    assert not torch.equal(split(y, 0.2, seed=2, stratify=True)[1], va)
