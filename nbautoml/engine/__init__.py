"""The UI-free search engine: studies, trials, samplers, schedulers, storage, runners.

Imports nothing from torch, IPython, ipywidgets or bokeh (checked by tests/test_import_rule.py).
"""

from nbautoml.engine.schedulers import ASHA, MedianStopping
from nbautoml.engine.study import Study, StudyState, set_frontend
from nbautoml.engine.trial import Trial, TrialState, current_trial

__all__ = ["ASHA", "MedianStopping", "Study", "StudyState", "Trial", "TrialState", "current_trial", "set_frontend"]
