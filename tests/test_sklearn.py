"""The scikit-learn estimators inside clone, Pipeline and cross_val_score, with tiny budgets."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nbautoml.sklearn import AutoMLClassifier, AutoMLRegressor

TINY = {"trials": 2, "epochs": 2, "sampler": "random", "ensemble": 1}


def test_classifier_in_a_pipeline_and_cross_val_score() -> None:
    x, y = load_iris(return_X_y=True)
    estimator = AutoMLClassifier(**TINY)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params() and copy.storage == ":memory:"
    copy.set_params(trials=3)
    assert copy.trials == 3 and estimator.trials == 2
    scores = cross_val_score(make_pipeline(StandardScaler(), AutoMLClassifier(**TINY)), x, y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    fitted = estimator.fit(x, y)
    assert list(fitted.classes_) == [0, 1, 2]
    assert fitted.predict_proba(x[:5]).shape == (5, 3) and fitted.predict(x[:5]).shape == (5,)
    assert fitted.result_.study.n_finished == 2


def test_regressor_scores_r2() -> None:
    x, y = load_diabetes(return_X_y=True)
    model = AutoMLRegressor(**TINY).fit(x[:150], y[:150])
    assert model.predict(x[:4]).shape == (4,)
    assert model.score(x[150:200], y[150:200]) <= 1.0
