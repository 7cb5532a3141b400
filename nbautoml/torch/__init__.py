"""PyTorch layer: model builders (the NAS space) and the training loop that reports to the current trial.

Imports torch and the engine only — never IPython, ipywidgets or bokeh (DESIGN.md's import rule).
"""

from __future__ import annotations

from nbautoml.torch import models
from nbautoml.torch.models import cnn, gru, mlp
from nbautoml.torch.train import TrainResult, train

__all__ = ["TrainResult", "cnn", "gru", "mlp", "models", "train"]
