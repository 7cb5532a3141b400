"""The CUDA paths: training, bf16 autocast, fused groups, real out-of-memory errors, memory given back.

Skipped without a GPU (CI has none); run on a GPU machine with ``pytest tests/torch_layer/test_cuda.py``.
The OOM tests allocate real device memory until CUDA refuses, so what is tested is the error torch raises,
the engine's reading of it and the memory left afterwards, not an imitation of them.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import nbautoml as na
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.torch import models
from nbautoml.torch.fused import batch_objective, structural, train_fused
from nbautoml.torch.train import BEST, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

X, Y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
HOLDOUT = ((X[:1400], Y[:1400]), (X[1400:], Y[1400:]))
SPACE = na.Space(lr=na.Real(1e-3, 1e-2, log=True), weight_decay=na.Real(1e-6, 1e-3, log=True),
                 units=na.Choice([32, 64]), dropout=na.Real(0.0, 0.3))


def allocated() -> int:
    """Device memory held by tensors. cuBLAS(Lt) allocates a workspace through torch's allocator for each
    thread (handle) and stream on first use and keeps it (32-64 MiB on an H100, bench/results/gpu.md): those
    are dropped first, so what is left is what a trial failed to give back."""
    gc.collect()
    torch.cuda.synchronize()
    torch._C._cuda_clearCublasWorkspaces()
    return torch.cuda.memory_allocated()


def test_what_stays_allocated_between_trials_is_cublas_workspace():
    before = allocated()
    torch.manual_seed(0)
    train(models.build("mlp", {"layers": 1, "units": 32}, (64,), 10), HOLDOUT, epochs=1, seed=0)
    gc.collect()
    assert torch.cuda.memory_allocated() > before  # the workspaces (the model itself has left the GPU) ...
    assert allocated() == before  # ... and nothing else


def test_train_on_cuda_with_bf16_learns_and_saves_a_cpu_loadable_checkpoint(tmp_path):
    before = allocated()
    torch.manual_seed(0)
    model = models.build("mlp", {"layers": 2, "units": 128}, (64,), 10)
    trial = Trial(0, {}, checkpoint_dir=tmp_path / "t0", metric="val_acc", mode="max")
    result = train(model, HOLDOUT, epochs=15, lr=3e-3, seed=0, trial=trial, metric="val_acc")
    assert result["val_acc"] > 0.9
    assert [r.step for r in trial.reports] == list(range(15))
    assert trial.reports[-1].metrics["peak_memory_mb"] > 0
    state = torch.load(tmp_path / "t0" / BEST, map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["model"].values())
    assert next(result.model.parameters()).device.type == "cpu"  # the returned model leaves the GPU
    del model, result, state
    assert allocated() == before


def test_fused_on_cuda_agrees_with_one_by_one_in_float32():
    """Without autocast and dropout, fused and one-by-one runs on the GPU differ by reduction order only."""
    cfgs = [{"lr": lr, "weight_decay": 1e-4, "seed": s, "layers": 2, "units": 64}
            for s, lr in enumerate((1e-3, 3e-3, 1e-2))]
    kw = {"epochs": 4, "batch_size": 64, "device": "cuda", "amp": False}
    fused = train_fused(cfgs, HOLDOUT, n_outputs=10, **kw)
    for cfg, got in zip(cfgs, fused, strict=True):
        torch.manual_seed(cfg["seed"])
        model = models.build("mlp", cfg, (64,), 10)
        single = train(model, HOLDOUT, seed=cfg["seed"], lr=cfg["lr"], weight_decay=cfg["weight_decay"], **kw)
        assert got["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4)
        assert got["val_acc"] == pytest.approx(single["val_acc"], abs=2 / 397)


def test_a_real_cuda_oom_fails_that_trial_and_the_study_goes_on():
    before = allocated()
    free, _ = torch.cuda.mem_get_info()

    def objective(trial: Trial) -> float:
        if trial.number == 1:
            hog = torch.empty(int(free * 2), dtype=torch.uint8, device="cuda")  # more than the card has
            return float(hog.numel())
        x = torch.randn(256, 256, device="cuda")
        return float((x @ x).abs().mean())

    study = na.Study("oom", na.Space(a=na.Real(0, 1)), sampler="random", seed=0, storage=":memory:")
    study.optimize(objective, trials=4, show=False)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAILED) == 1 and states.count(TrialState.COMPLETE) == 3
    failed = next(t for t in study.trials if t.state is TrialState.FAILED)
    assert failed.reason == "oom" and "out of memory" in (failed.traceback or "").lower()
    assert allocated() == before


def test_a_fused_group_that_runs_out_of_memory_is_halved_on_the_gpu():
    """Each trial of a group pins 40 % of the free memory: 3 or more together cannot fit. (Whether 2 fit depends
    on the allocator's fragmentation: a chunk that does not is halved again, which is the behaviour under test.)"""
    before = allocated()
    sizes: list[int] = []
    inner = batch_objective(HOLDOUT, n_outputs=10, epochs=1, batch_size=64, device="cuda")
    share = torch.cuda.mem_get_info()[0] * 2 // 5  # 2 fit, 3 do not (a third each could fit exactly)

    def objective(trials: list[Trial]) -> list[object]:
        sizes.append(len(trials))
        pinned = [torch.empty(share, dtype=torch.uint8, device="cuda") for _ in trials]
        del pinned
        return inner(trials)

    study = na.Study("oom-fused", SPACE, metric="val_acc", sampler="random", seed=1, storage=":memory:")
    study.optimize(objective, trials=8, batch=8, group_by=["units"], show=False)
    assert all(t.state is TrialState.COMPLETE for t in study.trials) and study.n_finished == 8
    assert max(sizes) > 2 and min(sizes) <= 2, sizes  # halved until the chunks fit
    assert all(len(t.reports) == 1 for t in study.trials)  # a retried trial does not report its epoch twice
    assert allocated() == before


def test_a_fused_search_on_cuda_gives_memory_back():
    before = allocated()
    study = na.Study("fused-cuda", SPACE, metric="val_acc", sampler="random", seed=3, storage=":memory:")
    study.optimize(batch_objective(HOLDOUT, n_outputs=10, epochs=3, batch_size=64, group_size=4, device="cuda"),
                   trials=12, batch=8, group_by=structural(SPACE.names), show=False)
    assert study.n_finished == 12 and study.best_value > 0.85
    assert allocated() == before


def test_fit_on_cuda_predicts_on_the_cpu(tmp_path):
    data = load_digits()
    result = na.fit((data.data.astype(np.float32), data.target), trials=4, epochs=4, seed=0, show=False,
                    storage=":memory:")
    assert result.score(data.data[:200], data.target[:200]) > 0.8
    assert np.asarray(result.predict(data.data[:5])).shape == (5,)


def test_fused_cnn_on_cuda_agrees_with_one_by_one_in_float32(monkeypatch):
    """Grouped convolutions on the GPU: cuDNN may pick other algorithms than for one model, so only the
    reduction order differs (TF32 off, no autocast, no dropout). Layer norm: with batch norm under Adam, the
    conv bias before the norm has a true gradient of zero whose rounding noise Adam scales up, on CPU too
    (fused.py's docstring); measured here, that moved val_loss by 1-2 % in 3 epochs."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    images = (X[:600].reshape(-1, 1, 8, 8), Y[:600])
    cfgs = [{"lr": lr, "seed": s, "blocks": 2, "channels": 8, "norm": "layer"}
            for s, lr in enumerate((1e-3, 3e-3))]
    kw = {"epochs": 3, "batch_size": 32, "device": "cuda", "amp": False}
    fused = train_fused(cfgs, images, kind="cnn2d", n_outputs=10, **kw)
    for cfg, got in zip(cfgs, fused, strict=True):
        torch.manual_seed(cfg["seed"])
        model = models.build("cnn2d", cfg, (1, 8, 8), 10)
        single = train(model, images, seed=cfg["seed"], lr=cfg["lr"], **kw)
        assert got["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4)
