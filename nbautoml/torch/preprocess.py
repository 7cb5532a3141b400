"""Column transformers for tabular data whose fitted state is plain JSON.

Why not a scikit-learn ColumnTransformer: its fitted state can only be saved with pickle (or skops), and a
saved nbautoml model must hold no pickle. Every statistic here (medians, scales, quantile grids, category
levels, the kept features) is a JSON number or string, so the preprocessing travels inside a model's
manifest and :meth:`TabularPreprocessor.from_json` rebuilds a transform that gives identical output.

What happens to a column, decided at fit from its dtype and values:

- numeric: median imputation (+ a ``<col>__missing`` indicator when training had NaNs), then the scaler:
  ``standard`` (mean/std), ``robust`` (median/IQR), ``minmax`` (to [-1, 1]), ``quantile`` (to a normal through
  a 65-point quantile grid, ties handled like scikit-learn's QuantileTransformer) or ``none``;
- bool: 0/1 (missing → the training mode);
- datetime: expanded to year / month / day / dayofweek / hour / ordinal (days since 1970), each a numeric
  feature (parts constant in training are left out);
- string / categorical / object: missing → ``"missing"``; one-hot when it has at most ``onehot_max`` levels
  (unseen levels → all zeros), otherwise a frequency-ranked code in [0, 1] and the level's log-frequency
  (the codes are embedding-ready: ``levels`` in the state gives their order);
- dropped: constant or empty columns, and ID-like ones (strings unique per row; integers unique per row that
  are monotone or a permutation of a contiguous range).

Optional feature selection keeps the top ``select`` fraction of output features by a univariate F-score.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

__all__ = ["SCALERS", "TabularPreprocessor"]

SCALERS = ("standard", "robust", "minmax", "quantile", "none")
DATE_PARTS = ("year", "month", "day", "dayofweek", "hour", "ordinal")
_N_QUANTILES = 65
_MAX_LEVELS = 256  # high-cardinality columns keep their most frequent levels; the rest share one code


def _date_parts(values: pd.Series) -> dict[str, np.ndarray]:
    dt = pd.to_datetime(values, errors="coerce")
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    ordinal = (dt - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    parts: dict[str, pd.Series] = {
        "year": dt.dt.year,
        "month": dt.dt.month,
        "day": dt.dt.day,
        "dayofweek": dt.dt.day_of_week,
        "hour": dt.dt.hour,
        "ordinal": ordinal,
    }
    return {name: part.to_numpy(dtype=np.float64, na_value=np.nan) for name, part in parts.items()}


def _fit_scale(values: np.ndarray, scaler: str) -> dict[str, Any]:
    """Scaler parameters from the non-missing training values of one feature."""
    if scaler == "quantile":
        grid = np.quantile(values, np.linspace(0.0, 1.0, _N_QUANTILES))
        return {"quantiles": [float(v) for v in grid]}
    if scaler == "standard":
        center, scale = float(values.mean()), float(values.std())
    elif scaler == "robust":
        q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
        center, scale = float(q50), float(q75 - q25) or float(values.std())
    elif scaler == "minmax":
        low, high = float(values.min()), float(values.max())
        center, scale = (low + high) / 2.0, (high - low) / 2.0
    elif scaler == "none":
        center, scale = 0.0, 1.0
    else:
        raise ValueError(f"unknown scaler {scaler!r}; expected one of {SCALERS}")
    if not math.isfinite(scale) or scale <= 1e-12:
        scale = 1.0
    return {"center": center, "scale": scale}


def _apply_scale(values: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    if "quantiles" in params:
        grid = np.asarray(params["quantiles"], dtype=np.float64)
        ranks = np.linspace(0.0, 1.0, len(grid))
        # the mean of forward and backward interpolation spreads tied quantiles (many zeros) evenly
        u = 0.5 * (np.interp(values, grid, ranks) - np.interp(-values, -grid[::-1], -ranks[::-1]))
        return np.asarray(ndtri(np.clip(u, 1e-3, 1 - 1e-3)), dtype=np.float64)
    return (values - params["center"]) / params["scale"]


def _numeric_feature(name: str, values: np.ndarray, scaler: str) -> dict[str, Any] | None:
    """State of one numeric feature, or None when it carries nothing (empty or constant)."""
    present = values[np.isfinite(values)]
    if present.size == 0 or np.all(present == present[0]):
        return None
    return {
        "name": name,
        "fill": float(np.median(present)),
        "indicator": bool(present.size < values.size),
        "scale": _fit_scale(present, scaler),
    }


def _numeric_out(feature: dict[str, Any], values: np.ndarray) -> list[np.ndarray]:
    missing = ~np.isfinite(values)
    filled = np.where(missing, feature["fill"], values)
    out = [_apply_scale(filled, feature["scale"])]
    if feature["indicator"]:
        out.append(missing.astype(np.float64))
    return out


def _numeric_names(feature: dict[str, Any]) -> list[str]:
    return [feature["name"], f"{feature['name']}__missing"] if feature["indicator"] else [feature["name"]]


def _is_id_like(series: pd.Series, kind: str) -> bool:
    present = series.dropna()
    n = len(series)
    if n < 20 or len(present) < n or present.nunique() < n:
        return False
    if kind == "categorical":
        return True
    if kind != "numeric" or not pd.api.types.is_integer_dtype(present.dtype):
        return False
    values = present.to_numpy(dtype=np.int64)
    monotone = bool(np.all(np.diff(values) > 0) or np.all(np.diff(values) < 0))
    contiguous = int(values.max() - values.min()) + 1 == n
    return monotone or contiguous


def _column_kind(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"  # even with numeric categories: the user said these are labels
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    present = series.dropna()
    if len(present) and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "bool"
    if len(present) and pd.to_numeric(present, errors="coerce").notna().all():
        return "numeric"  # numbers stored as strings
    return "categorical"


def _as_numbers(series: pd.Series, column: str, what: str = "numbers") -> np.ndarray:
    """Numeric values of a column; a ValueError naming the column when a value is not a number."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if bad.any():
        example = series[bad].iloc[0]
        raise ValueError(f"column {column!r} expects {what}, got {example!r} ({series.dtype} dtype)")
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _as_dates(series: pd.Series, column: str) -> dict[str, np.ndarray]:
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": the bad value is reported
            converted = pd.to_datetime(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            example = series[bad].iloc[0]
            raise ValueError(f"column {column!r} expects datetimes, got {example!r} ({series.dtype} dtype)")
        series = converted
    return _date_parts(series)


def _as_strings(series: pd.Series) -> np.ndarray:
    return np.asarray([("missing" if pd.isna(v) else str(v)) for v in series.tolist()], dtype=object)


class TabularPreprocessor:
    """DataFrame (or 2-D array) → float32 matrix; fit on training rows, state in :meth:`to_json`."""

    def __init__(self, scaler: str = "standard", select: float = 1.0, onehot_max: int = 15) -> None:
        if scaler not in SCALERS:
            raise ValueError(f"unknown scaler {scaler!r}; expected one of {SCALERS}")
        if not 0.0 < float(select) <= 1.0:
            raise ValueError(f"select must be a fraction in (0, 1], got {select!r}")
        self.scaler = scaler
        self.select = float(select)
        self.onehot_max = int(onehot_max)
        self.columns: list[dict[str, Any]] = []
        self.selected: list[int] | None = None
        self.fitted = False

    # ---- fitting ------------------------------------------------------------------------------------------
    def fit(
        self, frame: pd.DataFrame, y: np.ndarray | None = None, task: str | None = None
    ) -> TabularPreprocessor:
        """Learn every column's treatment; ``y`` and ``task`` are needed only for feature selection."""
        self.columns = [self._fit_column(str(name), frame[name]) for name in frame.columns]
        self.fitted = True
        self.selected = None
        if self.select < 1.0 and y is not None:
            matrix = self._transform_all(frame)
            self.selected = self._fit_selection(matrix, np.asarray(y), task or "regression")
        if not self.feature_names:
            raise ValueError("no usable feature: every column is constant, empty or ID-like")
        return self

    def _fit_column(self, name: str, series: pd.Series) -> dict[str, Any]:
        kind = _column_kind(series)
        base: dict[str, Any] = {"name": name, "kind": kind, "dtype": str(series.dtype)}
        present = series.dropna()
        if present.empty or present.nunique() <= 1:
            return {**base, "kind": "dropped", "reason": "empty" if present.empty else "constant"}
        if _is_id_like(series, kind):
            return {**base, "kind": "dropped", "reason": "id-like"}
        if kind == "numeric":
            feature = _numeric_feature(name, _as_numbers(series, name), self.scaler)
            if feature is None:
                return {**base, "kind": "dropped", "reason": "constant"}
            return {**base, "feature": feature}
        if kind == "bool":
            values = present.astype(bool)
            return {**base, "fill": float(values.mean() >= 0.5)}
        if kind == "datetime":
            parts = _as_dates(series, name)
            features = [_numeric_feature(f"{name}__{p}", parts[p], self.scaler) for p in DATE_PARTS]
            pairs = [(p, f) for p, f in zip(DATE_PARTS, features, strict=True) if f is not None]
            return {**base, "parts": [p for p, _ in pairs], "features": [f for _, f in pairs]}
        strings = pd.Series(_as_strings(series))
        counts = strings.value_counts(sort=True)
        levels = [str(v) for v in counts.index]
        if len(levels) <= self.onehot_max:
            return {**base, "kind": "onehot", "levels": sorted(levels)}
        kept = levels[:_MAX_LEVELS]
        freq = [float(math.log(counts[v] / len(strings))) for v in kept]
        return {**base, "kind": "ordinal", "levels": kept, "log_freq": freq, "other_log_freq": min(freq)}

    def _fit_selection(self, matrix: np.ndarray, y: np.ndarray, task: str) -> list[int]:
        from sklearn.feature_selection import f_classif, f_regression

        score_fn = f_regression if task == "regression" else f_classif
        with np.errstate(all="ignore"):
            scores, _ = score_fn(matrix, y)
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=1e12)
        k = max(1, round(self.select * matrix.shape[1]))
        return sorted(int(i) for i in np.argsort(-scores, kind="stable")[:k])

    # ---- transforming -------------------------------------------------------------------------------------
    @property
    def input_columns(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def all_feature_names(self) -> list[str]:
        names: list[str] = []
        for col in self.columns:
            kind = col["kind"]
            if kind == "numeric":
                names += _numeric_names(col["feature"])
            elif kind == "bool":
                names.append(col["name"])
            elif kind == "datetime":
                for feature in col["features"]:
                    names += _numeric_names(feature)
            elif kind == "onehot":
                names += [f"{col['name']}={level}" for level in col["levels"]]
            elif kind == "ordinal":
                names += [f"{col['name']}__code", f"{col['name']}__log_freq"]
        return names

    @property
    def feature_names(self) -> list[str]:
        names = self.all_feature_names
        return names if self.selected is None else [names[i] for i in self.selected]

    @property
    def dropped(self) -> dict[str, str]:
        """Columns left out at fit, with why (constant, empty, id-like)."""
        return {c["name"]: c["reason"] for c in self.columns if c["kind"] == "dropped"}

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("TabularPreprocessor is not fitted")
        needed = [c["name"] for c in self.columns if c["kind"] != "dropped"]
        missing = [name for name in needed if name not in frame.columns]
        if missing:
            raise KeyError(
                f"missing column(s) {missing}; the model was fitted on {needed} "
                f"(got {[str(c) for c in frame.columns]})"
            )
        matrix = self._transform_all(frame)
        if self.selected is not None:
            matrix = matrix[:, self.selected]
        return np.ascontiguousarray(matrix, dtype=np.float32)

    def _transform_all(self, frame: pd.DataFrame) -> np.ndarray:
        blocks: list[np.ndarray] = []
        for col in self.columns:
            kind, name = col["kind"], col["name"]
            if kind == "dropped":
                continue
            series = frame[name]
            if kind == "numeric":
                blocks += _numeric_out(col["feature"], _as_numbers(series, name))
            elif kind == "bool":
                values = _as_numbers(series, name, what="booleans")
                if np.any(np.isfinite(values) & (values != 0) & (values != 1)):
                    raise ValueError(f"column {name!r} expects booleans, got values other than 0/1")
                blocks.append(np.where(np.isfinite(values), values, col["fill"]))
            elif kind == "datetime":
                parts = _as_dates(series, name)
                for part, feature in zip(col["parts"], col["features"], strict=True):
                    blocks += _numeric_out(feature, parts[part])
            elif kind == "onehot":
                strings = _as_strings(series)
                blocks += [(strings == level).astype(np.float64) for level in col["levels"]]
            elif kind == "ordinal":
                strings = _as_strings(series)
                index = {level: i for i, level in enumerate(col["levels"])}
                codes = np.asarray([index.get(s, len(index)) for s in strings], dtype=np.float64)
                freq = np.asarray(col["log_freq"] + [col["other_log_freq"]])
                blocks.append(codes / max(1, len(index)))
                blocks.append(freq[codes.astype(np.int64)])
        n = len(frame)
        return np.stack(blocks, axis=1) if blocks else np.zeros((n, 0))

    def fit_transform(
        self, frame: pd.DataFrame, y: np.ndarray | None = None, task: str | None = None
    ) -> np.ndarray:
        return self.fit(frame, y, task).transform(frame)

    # ---- JSON ---------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "type": "tabular",
            "scaler": self.scaler,
            "select": self.select,
            "onehot_max": self.onehot_max,
            "columns": self.columns,
            "selected": self.selected,
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> TabularPreprocessor:
        pre = cls(state["scaler"], state["select"], state["onehot_max"])
        pre.columns = [dict(c) for c in state["columns"]]
        selected: Sequence[int] | None = state.get("selected")
        pre.selected = None if selected is None else [int(i) for i in selected]
        pre.fitted = True
        return pre
