"""scikit-learn estimators around ``nbautoml.fit``, so a search drops into ``Pipeline``, ``cross_val_score``
and ``clone`` the way auto-sklearn's and TPOT's estimators do.

The constructor takes ``fit``'s options and stores them unchanged (scikit-learn's rule: ``get_params`` /
``set_params`` / ``clone`` read them back); ``fit(X, y)`` runs the search, keeping the study in memory
(``storage=":memory:"``) unless ``storage`` says otherwise, and predicts with the result's chosen model.
sklearn's ``check_estimator`` suite has not been run against these yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

__all__ = ["AutoMLClassifier", "AutoMLRegressor"]


class _AutoML(BaseEstimator):
    _task = "auto"

    def __init__(self, trials: int = 20, timeout: float | None = None, metric: str | None = None,
                 cv: int | None = None, model: str = "auto", ensemble: int = 5, epochs: int | None = None,
                 sampler: str = "bayes", fused: bool | str = "auto", storage: str = ":memory:",
                 seed: int = 0) -> None:
        self.trials, self.timeout, self.metric, self.cv, self.model = trials, timeout, metric, cv, model
        self.ensemble, self.epochs, self.sampler, self.fused = ensemble, epochs, sampler, fused
        self.storage, self.seed = storage, seed

    def fit(self, X: Any, y: Any) -> _AutoML:
        from nbautoml.torch.automl import fit

        self.result_ = fit(X, target=np.asarray(y), task=self._task, show=False, **self.get_params())
        self.n_features_in_ = int(np.asarray(X).shape[1]) if np.ndim(X) > 1 else 1
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.result_.predict(X)


class AutoMLClassifier(ClassifierMixin, _AutoML):
    """``nbautoml.fit`` for classification, as a scikit-learn classifier (``score`` is accuracy)."""

    _task = "classification"

    def fit(self, X: Any, y: Any) -> AutoMLClassifier:
        super().fit(X, y)
        self.classes_ = self.result_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.result_.predict_proba(X)


class AutoMLRegressor(RegressorMixin, _AutoML):
    """``nbautoml.fit`` for regression, as a scikit-learn regressor (``score`` is R²)."""

    _task = "regression"
