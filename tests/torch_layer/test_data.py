"""nbautoml.torch.data / preprocess: column handling, task detection, JSON state, errors, splits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbautoml.torch.data import (
    SCALERS,
    Preprocessor,
    TargetEncoder,
    detect_task,
    holdout,
    kfold,
    layout_of,
    split_xy,
    to_tensors,
)


def messy_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "row_id": np.arange(n),
            "uuid": [f"id-{i:05d}" for i in rng.permutation(n)],
            "age": np.where(rng.random(n) < 0.15, np.nan, rng.normal(40, 12, n)),
            "city": rng.choice(np.array(["paris", "rome", "oslo", None], dtype=object), n),
            "product": rng.choice([f"sku{i}" for i in range(40)], n),
            "member": rng.random(n) < 0.4,
            "joined": pd.Timestamp("2021-03-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
            "constant": 7,
            "score_text": [str(v) for v in rng.integers(0, 9, n)],
        }
    )


def test_column_treatments_and_dropped_columns() -> None:
    df = messy_frame()
    pre = Preprocessor().fit(df)
    out = pre.transform(df)
    assert out.dtype == np.float32 and out.shape == (len(df), *pre.input_shape)
    assert np.isfinite(out).all()
    assert pre.tabular is not None
    assert pre.tabular.dropped == {"row_id": "id-like", "uuid": "id-like", "constant": "constant"}
    names = pre.tabular.feature_names
    assert {"age", "age__missing", "member", "score_text"} <= set(names)
    assert {"city=paris", "city=missing"} <= set(names)  # low cardinality → one-hot, NaN → "missing"
    assert {"product__code", "product__log_freq"} <= set(names)  # high cardinality → codes
    assert {"joined__year", "joined__month", "joined__dayofweek", "joined__ordinal"} <= set(names)
    assert "joined__hour" not in names  # constant part of the datetime


def test_unseen_category_and_nan_at_predict() -> None:
    df = messy_frame()
    pre = Preprocessor().fit(df)
    new = df.head(3).copy()
    new["city"] = ["tokyo", None, "rome"]
    new["age"] = [np.nan, 30.0, 50.0]
    out = pre.transform(new)
    assert np.isfinite(out).all()
    names = pre.tabular.feature_names  # type: ignore[union-attr]
    city = [names.index(f"city={c}") for c in ("oslo", "paris", "rome")]
    assert out[0, city].sum() == 0  # unseen level: all zeros


@pytest.mark.parametrize("scaler", SCALERS)
def test_json_round_trip_gives_identical_transforms(scaler: str) -> None:
    df = messy_frame()
    y = TargetEncoder().fit(df["member"]).transform(df["member"])
    pre = Preprocessor(scaler=scaler, select=0.6).fit(df.drop(columns=["member"]), y, "binary")
    state = json.loads(json.dumps(pre.to_json()))  # plain JSON, nothing else
    again = Preprocessor.from_json(state)
    x = df.drop(columns=["member"])
    np.testing.assert_array_equal(pre.transform(x), again.transform(x))
    assert again.input_shape == pre.input_shape


def test_feature_selection_keeps_informative_features() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 10))
    y = (x[:, 3] + 0.1 * rng.normal(size=300) > 0).astype(int)
    pre = Preprocessor(select=0.2).fit(x, y, "binary")
    assert pre.input_shape == (2,)
    assert "x3" in pre.tabular.feature_names  # type: ignore[union-attr]


def test_missing_column_and_wrong_dtype_name_the_column() -> None:
    df = messy_frame()
    pre = Preprocessor().fit(df)
    with pytest.raises(KeyError, match="age"):
        pre.transform(df.drop(columns=["age"]))
    bad = df.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[2, "age"] = "forty"
    with pytest.raises(ValueError, match=r"'age'.*forty"):
        pre.transform(bad)
    with pytest.raises(ValueError, match="'joined'"):
        pre.transform(df.assign(joined="not a date"))
    with pytest.raises(TypeError, match="DataFrame"):
        pre.transform(np.zeros((3, 9)))
    extra = df.assign(unused=1)
    np.testing.assert_array_equal(pre.transform(extra), pre.transform(df))  # extra columns are ignored


def test_arrays_2d_3d_4d_and_shape_errors() -> None:
    rng = np.random.default_rng(0)
    tab = rng.normal(size=(40, 5))
    seq = rng.normal(3.0, 2.0, size=(40, 2, 16))
    img = rng.normal(size=(40, 3, 8, 8))
    img[0, 1, 2, 3] = np.nan
    assert [layout_of(a) for a in (tab, seq, img)] == ["tabular", "sequence", "image"]
    assert Preprocessor().fit(tab).transform(tab).shape == (40, 5)
    pre = Preprocessor().fit(seq)
    out = pre.transform(seq)
    assert pre.input_shape == (2, 16)
    np.testing.assert_allclose(out.mean(axis=(0, 2)), 0.0, atol=1e-5)  # scaled per channel
    np.testing.assert_allclose(out.std(axis=(0, 2)), 1.0, atol=1e-4)
    pre4 = Preprocessor("minmax").fit(img)
    assert np.isfinite(pre4.transform(img)).all() and pre4.input_shape == (3, 8, 8)
    with pytest.raises(ValueError, match=r"\(N, 3, 8, 8\)"):
        pre4.transform(img[:, :2])
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        Preprocessor().fit(tab).transform(tab[:, :4])
    with pytest.raises(ValueError, match="dims"):
        layout_of(np.zeros(5))
    state = json.loads(json.dumps(pre4.to_json()))
    np.testing.assert_array_equal(Preprocessor.from_json(state).transform(img), pre4.transform(img))


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (np.array([0, 1] * 20), "binary"),
        (np.array([True, False] * 20), "binary"),
        (np.array(["yes", "no"] * 20), "binary"),
        (np.arange(40) % 10, "multiclass"),
        (np.array(["a", "b", "c"] * 10), "multiclass"),
        (pd.Series(pd.Categorical(["x", "y", "z"] * 10)), "multiclass"),
        (np.linspace(0, 1, 40), "regression"),
        (np.arange(100, dtype=float), "regression"),  # integers, too many distinct values
    ],
)
def test_task_detection(y: np.ndarray, task: str) -> None:
    assert detect_task(y) == task
    assert TargetEncoder().fit(y).task == task


def test_task_override_and_errors() -> None:
    y = np.arange(40) % 4
    assert TargetEncoder("regression").fit(y).task == "regression"
    assert TargetEncoder("classification").fit(np.arange(60) % 40).task == "multiclass"
    with pytest.raises(ValueError, match="distinct"):
        detect_task(np.ones(10))
    with pytest.raises(ValueError, match="binary"):
        TargetEncoder("binary").fit(y)


def test_string_targets_decode_back_and_regression_scaling() -> None:
    y = np.array(["setosa", "virginica", "versicolor"] * 5, dtype=object)
    enc = TargetEncoder().fit(y)
    codes = enc.transform(y)
    assert codes.dtype == np.int64 and set(codes) == {0, 1, 2}
    assert list(enc.inverse_transform(codes)) == list(y)
    again = TargetEncoder.from_json(json.loads(json.dumps(enc.to_json())))
    assert list(again.inverse_transform(codes)) == list(y)
    ints = TargetEncoder().fit(np.array([3, 5, 7] * 4))
    assert ints.inverse_transform(np.array([2])).tolist() == [7]
    with pytest.raises(ValueError, match="unknown class"):
        enc.transform(["rose"])
    reg = TargetEncoder().fit(np.linspace(100, 200, 50))
    scaled = reg.transform(np.linspace(100, 200, 50))
    assert abs(float(scaled.mean())) < 1e-5
    np.testing.assert_allclose(reg.inverse_transform(scaled), np.linspace(100, 200, 50), rtol=1e-5)


def test_split_xy_forms() -> None:
    df = messy_frame(30)
    x, y, name = split_xy(df, "member")
    assert name == "member" and "member" not in x.columns and len(y) == 30
    x2, y2, _ = split_xy((np.zeros((5, 2)), [0, 1, 0, 1, 0]))
    assert isinstance(x2, np.ndarray) and np.asarray(y2).shape == (5,)
    _, y3, _ = split_xy(np.zeros((5, 2)), target=np.zeros((5, 1)))
    assert np.asarray(y3).shape == (5,)
    with pytest.raises(KeyError, match="nope"):
        split_xy(df, "nope")
    with pytest.raises(ValueError, match="target"):
        split_xy(np.zeros((5, 2)))
    xt, yt = to_tensors(np.zeros((2, 3)), np.array([0, 1]))
    assert str(xt.dtype) == "torch.float32" and str(yt.dtype) == "torch.int64"


def test_stratified_holdout_and_kfold() -> None:
    y = np.array([0] * 80 + [1] * 20)
    train, val = holdout(y, val_size=0.2, task="binary", seed=3)
    assert len(val) == 20 and set(train).isdisjoint(val) and len(train) + len(val) == 100
    assert (y[val] == 1).sum() == 4  # stratified: the class ratio is kept
    folds = kfold(y, 5, task="binary", seed=0)
    assert len(folds) == 5
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(100))
    assert all((y[va] == 1).sum() == 4 for _, va in folds)
    reg = kfold(np.linspace(0, 1, 23), 4)
    assert sum(len(va) for _, va in reg) == 23
    with pytest.raises(ValueError, match="cv"):
        kfold(y, 1)


def test_nullable_dtypes_categorical_numbers_and_integer_column_names() -> None:
    n = 60
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "count": pd.array([None if i % 7 == 0 else int(v) for i, v in enumerate(rng.integers(0, 9, n))],
                              dtype="Int64"),
            "flag": pd.array([None if i % 5 == 0 else bool(i % 2) for i in range(n)], dtype="boolean"),
            "name": pd.array([None if i % 6 == 0 else f"n{i % 3}" for i in range(n)], dtype="string"),
            "grade": pd.Categorical(rng.choice([1, 2, 3], n)),
        }
    )
    pre = Preprocessor().fit(df)
    out = pre.transform(df)
    assert np.isfinite(out).all()
    names = pre.tabular.feature_names  # type: ignore[union-attr]
    assert {"count", "count__missing", "flag", "name=n0", "name=missing", "grade=1", "grade=3"} <= set(names)
    numbered = pd.DataFrame(rng.normal(size=(30, 3)))  # integer column names
    pre2 = Preprocessor().fit(numbered)
    np.testing.assert_array_equal(pre2.transform(numbered), Preprocessor.from_json(
        json.loads(json.dumps(pre2.to_json()))).transform(numbered))
    with pytest.raises(KeyError, match="'2'"):
        pre2.transform(numbered.drop(columns=[2]))
