"""Per-member bookkeeping of fused training: best weights kept on the device, exported when a member leaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nbautoml.engine.trial import Trial
from nbautoml.torch import models
from nbautoml.torch._fused_layers import FusedNet
from nbautoml.torch._fused_members import BestWeights
from nbautoml.torch.fused import train_fused
from nbautoml.torch.train import BEST, train

X, Y = load_digits(return_X_y=True)
X = (X[:400] / 16.0).astype(np.float32)
HOLDOUT = ((X[:300], Y[:300]), (X[300:], Y[400 - 100:400]))


def test_best_weights_copy_only_the_improving_members_slices():
    torch.manual_seed(0)
    net = FusedNet([models.build("mlp", {"layers": 1, "units": 8}, (4,), 2) for _ in range(3)], torch.device("cpu"))
    best = BestWeights()
    best.update(net, [True, True, True])
    first = [p.detach().clone() for p in net.params]
    with torch.no_grad():
        for p in net.params:
            p.add_(1.0)
    best.update(net, [False, True, False])
    for kept, before, now in zip(best.params, first, net.params, strict=True):
        assert torch.equal(kept[0], before[0]) and torch.equal(kept[2], before[2])
        assert torch.equal(kept[1], now[1].detach())
    best.select([2, 1])
    assert torch.equal(best.params[0][0], first[0][2]) and best.params[0].shape[0] == 2
    host_params, _ = best.host()
    assert all(t.device.type == "cpu" for t in host_params)


def test_a_member_past_its_best_epoch_returns_and_saves_the_best_epochs_weights(tmp_path):
    """lr 0.3 with SGD overshoots: the best epoch comes before the last, as a fused member and alone."""
    cfg = {"lr": 0.3, "weight_decay": 0.0, "seed": 5, "layers": 2, "units": 32}
    trial = Trial(0, cfg, checkpoint_dir=tmp_path / "t0", metric="val_loss", mode="min")
    kw = {"epochs": 8, "batch_size": 16, "optimizer": "momentum", "device": "cpu"}
    fused = train_fused([trial, {**cfg, "seed": 6}], HOLDOUT, n_outputs=10, checkpoint_every=None, **kw)[0]
    torch.manual_seed(5)
    alone = train(models.build("mlp", cfg, (64,), 10), HOLDOUT, seed=5, lr=0.3, **kw)
    assert fused.best_epoch == alone.best_epoch
    assert fused.best_epoch is not None and fused.best_epoch < len(fused.history) - 1  # the case under test
    a, b = fused.model.state_dict(), alone.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 2e-3  # lr 0.3 amplifies rounding over epochs
    fused.model.eval()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(fused.model(torch.as_tensor(HOLDOUT[1][0])),
                                                 torch.as_tensor(HOLDOUT[1][1])).item()
    assert loss == pytest.approx(fused["val_loss"], abs=1e-5)  # the returned weights are the best epoch's
    assert abs(loss - fused.history[-1]["val_loss"]) > 1e-3  # ... not the last epoch's
    saved = torch.load(tmp_path / "t0" / BEST, weights_only=True)
    assert saved["epoch"] == fused.best_epoch
    assert all(torch.equal(saved["model"][k], a[k]) for k in a)
