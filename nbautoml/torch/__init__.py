"""PyTorch layer: model builders (the NAS space) and the training loop that reports to the current trial.

Imports torch and the engine only — never IPython, ipywidgets or bokeh (DESIGN.md's import rule).
"""

from __future__ import annotations

from nbautoml.engine.trial import current_trial as _current_trial
from nbautoml.torch import models
from nbautoml.torch.models import cnn, gru, mlp
from nbautoml.torch.train import TrainResult, train

__all__ = ["TrainResult", "cnn", "gru", "mlp", "models", "train"]


def _seed_current_trial() -> None:
    """Imported for the first time inside a seeded trial (a cell's ``nbautoml.torch.mlp``): torch was not there
    when the trial's generators were seeded (nbautoml.engine.seeding), so seed torch's now, before the model."""
    import torch

    trial = _current_trial()
    if trial is not None and trial.seed is not None:
        torch.manual_seed(trial.seed)


_seed_current_trial()
