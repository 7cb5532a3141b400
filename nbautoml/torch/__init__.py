"""PyTorch layer: model families (the NAS space), their registry, and the training loop that reports to the
current trial.

Imports torch and the engine only — never IPython, ipywidgets or bokeh (the import-rule test checks it).
"""

from __future__ import annotations

from nbautoml.engine.trial import current_trial as _current_trial
from nbautoml.torch import models
from nbautoml.torch.families import Family, FamilyBase, Fusion, family_names, get_family, register_family
from nbautoml.torch.models import cnn, gru, mlp
from nbautoml.torch.train import TrainResult, train

__all__ = ["Family", "FamilyBase", "Fusion", "TrainResult", "cnn", "family_names", "get_family", "gru", "mlp",
           "models", "register_family", "train"]


def _seed_current_trial() -> None:
    """Imported for the first time inside a seeded trial (a cell's ``nbautoml.torch.mlp``): torch was not there
    when the trial's generators were seeded (nbautoml.engine.seeding), so seed torch's now, before the model."""
    import torch

    trial = _current_trial()
    if trial is not None and trial.seed is not None:
        torch.manual_seed(trial.seed)


_seed_current_trial()
