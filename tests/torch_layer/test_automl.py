"""nbautoml.fit end to end with tiny budgets: messy frames, arrays of 2/3/4 dims, k-fold, resume, errors."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_digits

sys.path.insert(0, str(Path(__file__).parent))
from test_data import messy_frame

from nbautoml.torch.automl import default_space, fit, start_points
from nbautoml.torch.export import Predictor

TINY = {"trials": 3, "epochs": 3, "storage": ":memory:", "show": False}


def labelled_frame(n: int = 160) -> pd.DataFrame:
    df = messy_frame(n)
    signal = (df["age"].fillna(40) > 40) ^ (df["city"] == "rome")
    df["label"] = np.where(signal, "high", "low")
    return df


def test_messy_dataframe_goes_through_fit_and_predict() -> None:
    df = labelled_frame()
    result = fit(df, "label", sampler="random", **TINY)  # type: ignore[arg-type]
    assert result.task == "binary"
    assert result.study.name.startswith("fit-binary-label-")
    board = result.leaderboard
    assert len(board) == 3
    space = result.study.space
    assert space is not None and result.study.trials[0].params == start_points(space, ("mlp",))[0]
    assert {"rank", "value", "model", "lr", "batch_size", "epochs", "seconds", "state"} <= set(board.columns)
    assert board["rank"].iloc[0] == 1 and board["state"].iloc[0] == "COMPLETE"
    new = df.drop(columns=["label"]).head(7)
    labels = result.predict(new)
    assert set(labels) <= {"high", "low"} and len(labels) == 7  # string labels decoded back
    proba = result.predict_proba(new)
    assert proba.shape == (7, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert list(result.classes_) == ["high", "low"]
    assert 0.0 <= result.score(df, df["label"]) <= 1.0
    assert isinstance(result.best_model, Predictor) and isinstance(result.ensemble, Predictor)
    assert result.selected in ("best_model", "ensemble")
    assert set(result.validation) == {"best_model", "ensemble"}
    with pytest.raises(KeyError, match="age"):
        result.predict(new.drop(columns=["age"]))
    with pytest.raises(ValueError, match="'joined'"):
        result.predict(new.assign(joined="soon"))


def test_regression_from_arrays() -> None:
    x, y = load_diabetes(return_X_y=True)
    result = fit(x[:200], target=y[:200], metric="val_r2", **TINY)  # type: ignore[arg-type]
    assert result.task == "regression" and result.study.mode == "max"
    predicted = result.predict(x[200:210])
    assert predicted.shape == (10,) and predicted.dtype == np.float64
    assert 25 < float(np.mean(predicted)) < 350  # back in the target's units, not standardised
    assert np.isfinite(result.score(x[200:260], y[200:260]))
    with pytest.raises(AttributeError, match="classification"):
        result.predict_proba(x[:3])
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        result.predict(x[:3, :5])
    with pytest.raises(ValueError, match="val_acc"):
        fit(x[:50], target=y[:50], metric="val_acc", **TINY)  # type: ignore[arg-type]


def test_kfold_value_is_the_mean_and_members_cover_every_fold() -> None:
    df = labelled_frame(120)
    result = fit(df, "label", cv=3, ensemble=2, sampler="random", **TINY)  # type: ignore[arg-type]
    board = result.leaderboard
    assert {"std", "value ± std"} <= set(board.columns)
    complete = [t for t in result.study.trials if t.state.value == "COMPLETE"]
    assert complete
    for trial in complete:
        assert trial.metrics["folds"] == 3 and "val_loss_std" in trial.metrics
    folds = sorted(m.info["fold"] for m in result.best_model.members)
    assert folds == [0, 1, 2]  # best_model = the best trial's three fold models
    assert len(result.ensemble.members) == 3 * min(2, len(complete))
    assert result.predict(df.head(4)).shape == (4,)


def test_images_and_sequences() -> None:
    digits = load_digits()
    images = digits.images[:240, None] / 16.0  # (N, 1, 8, 8)
    result = fit(images, target=digits.target[:240], **TINY)  # type: ignore[arg-type]
    assert result.task == "multiclass" and result.study.space is not None
    assert "channels" in result.study.space and "family" not in result.study.space
    assert result.leaderboard["model"].str.startswith("cnn2d").all()
    assert result.predict_proba(images[:5]).shape == (5, 10)
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        result.predict(digits.data[:5])
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(90, 2, 12)).astype(np.float32)
    target = (seq[:, 0].mean(axis=1) > 0).astype(int)
    result = fit(seq, target=target, model="auto", sampler="random", **TINY)  # type: ignore[arg-type]
    space = result.study.space
    assert space is not None and {"family", "gru_hidden", "cnn1d_channels"} <= set(space)
    assert result.predict(seq[:3]).shape == (3,)


def test_rerun_continues_the_study_from_its_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    x, y = load_digits(return_X_y=True)
    first = fit(x[:200], target=y[:200], trials=2, epochs=3, ensemble=2, show=False)
    journal = tmp_path / ".nbautoml" / f"{first.study.name}.jsonl"
    assert journal.is_file()
    expected = first.predict_proba(x[200:220])
    again = fit(x[:200], target=y[:200], trials=2, epochs=3, ensemble=2, show=False)
    assert again.study.name == first.study.name and again.study.n_finished == 2
    assert "nothing to run" in again.study.message
    np.testing.assert_allclose(again.predict_proba(x[200:220]), expected, rtol=1e-6)  # no retraining


def test_background_fit_can_be_waited_for() -> None:
    x, y = load_digits(return_X_y=True)
    result = fit(x[:150], target=y[:150], background=True, **TINY)  # type: ignore[arg-type]
    assert result.wait(timeout=120)
    assert result.study.n_finished == 3
    assert result.predict(x[:2]).shape == (2,)


def test_default_space_joins_preprocessing_family_and_training() -> None:
    space = default_space("tabular", ("mlp",), (20,), 3, 1000)
    assert {"scaler", "select", "layers", "units", "optimizer", "lr", "weight_decay", "batch_size",
            "schedule"} <= set(space)
    assert "epochs" not in space  # ASHA's resource, not a searched parameter
    for kinds, layout, shape in [(("mlp",), "tabular", (20,)), (("cnn1d", "gru"), "sequence", (2, 12))]:
        space = default_space(layout, kinds, shape, 2, 40)
        starts = start_points(space, kinds)
        assert len(starts) == len(kinds) and all(space.contains(p) for p in starts)
    with pytest.raises(ValueError, match="cnn2d"):
        fit(np.zeros((20, 3)), target=np.arange(20) % 2, model="cnn2d", **TINY)  # type: ignore[arg-type]


def test_timeout_stops_a_trial_that_runs_past_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import nbautoml.torch.automl as automl

    monkeypatch.setattr(automl, "GRACE_MIN", 0.0)
    x, y = load_digits(return_X_y=True)
    began = time.time()
    result = fit(x[:400], target=y[:400], trials=5, epochs=500, timeout=1.5, storage=":memory:", show=False)
    assert time.time() - began < 60  # 500 epochs would take minutes
    states = [t.state.value for t in result.study.trials]
    assert states[-1] == "INTERRUPTED"  # re-running the same fit would resume it


def test_fused_fit_trials_equal_one_by_one_trials_and_groups_share_their_architecture() -> None:
    from nbautoml.torch.fused import structural

    x, y = load_digits(return_X_y=True)
    x, y = x[:300], y[:300]
    fused = fit(x, target=y, fused=True, group_size=3, sampler="random", trials=6, epochs=3, ensemble=2,
                storage=":memory:", show=False)
    alone = fit(x, target=y, fused=False, sampler="random", trials=1, epochs=3, storage=":memory:", show=False)
    trials = fused.study.trials
    space = fused.study.space
    assert space is not None and len(trials) == 6
    group_by = structural(space.names)
    assert {"units", "layers", "batch_size", "scaler", "optimizer"} <= set(group_by) and "lr" not in group_by
    for block in (trials[:3], trials[3:]):  # asked in blocks of 3 sharing every structural param
        assert len({tuple(str(t.params[k]) for k in group_by) for t in block}) == 1
    assert len({t.params["lr"] for t in trials[3:]}) == 3  # the sampler's own values for the rest
    # trial 0 (the warm start) trained inside a fused group equals its one-by-one twin: same seed, same data
    first, twin = trials[0], alone.study.trials[0]
    assert first.params == twin.params and first.state.value == twin.state.value == "COMPLETE"
    assert [r.step for r in first.reports] == [r.step for r in twin.reports]
    for a, b in zip(first.reports, twin.reports, strict=True):
        assert a.metrics["val_loss"] == pytest.approx(b.metrics["val_loss"], abs=1e-4)
    assert fused.predict_proba(x[:4]).shape == (4, 10)  # the ensemble loads the fused trials' best.pt


def test_fused_choice_and_its_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import nbautoml.torch.automl as automl

    assert automl._use_fused("auto", None, ("mlp",), "cpu")
    assert not automl._use_fused("auto", 3, ("mlp",), "cpu")  # folds train one by one
    assert not automl._use_fused(False, None, ("mlp",), "cuda")
    assert automl._use_fused("auto", None, ("cnn1d", "gru"), "cuda")
    assert not automl._use_fused("auto", None, ("gru",), "cuda")
    assert automl._use_fused("auto", None, ("cnn2d",), "cpu") and not automl._use_fused("auto", None, ("cnn1d",), "cpu")
    assert [automl.default_group_size(n, "cpu") for n in (4, 24, 40, 400, None)] == [2, 3, 4, 4, 4]
    assert [automl.default_group_size(n, "cuda") for n in (40, 400, None)] == [5, 32, 32]
    x, y = np.zeros((40, 3)), np.arange(40) % 2
    with pytest.raises(ValueError, match="cv folds train one by one"):
        fit(x, target=y, fused=True, cv=2, **TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fused must be"):
        fit(x, target=y, fused="yes", **TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group_size"):
        fit(x, target=y, group_size=0, **TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="none of \\['gru'\\] can be fused"):
        fit(np.zeros((40, 2, 6)), target=y, model="gru", fused=True, **TINY)  # type: ignore[arg-type]
