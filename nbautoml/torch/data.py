"""User data → float32 arrays/tensors, with a fitted state that is plain JSON.

:class:`Preprocessor` takes a DataFrame or a 2-D array (tabular: :mod:`nbautoml.torch.preprocess` does the
columns), a 3-D array ``(N, C, L)`` (sequences) or a 4-D array ``(N, C, H, W)`` (images; both imputed and
scaled per channel). :class:`TargetEncoder` detects the task, encodes string / categorical / bool labels to
class indices and decodes them back, and standardises regression targets (training is easier on unit scale;
predictions come back in the original units). ``holdout`` and ``kfold`` split stratified for classification.

Every fitted object round-trips through ``to_json`` / ``from_json`` with identical output: a saved model
carries its preprocessing as JSON, never as pickle. Inputs that do not match the fit (a missing column, a
column of the wrong dtype, an array of another shape) raise an error that names the column or the shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from nbautoml.torch.preprocess import SCALERS, TabularPreprocessor, _apply_scale, _fit_scale

__all__ = [
    "SCALERS",
    "TASKS",
    "Preprocessor",
    "TargetEncoder",
    "detect_task",
    "holdout",
    "kfold",
    "layout_of",
    "split_xy",
    "to_tensors",
]

TASKS = ("binary", "multiclass", "regression")
_MAX_INT_CLASSES = 30  # integer targets with at most this many distinct values are classes


def split_xy(data: Any, target: Any = None) -> tuple[Any, np.ndarray | pd.Series, str | None]:
    """(X, y, target name) from a DataFrame + column name, an (X, y) pair, or X with ``target=y``."""
    if isinstance(data, pd.DataFrame) and isinstance(target, str):
        if target not in data.columns:
            columns = [str(c) for c in data.columns]
            raise KeyError(f"target column {target!r} is not in the DataFrame (columns: {columns})")
        return data.drop(columns=[target]), data[target], target
    if isinstance(data, tuple) and len(data) == 2 and target is None:
        x, y = data
        return _as_input(x), _as_target(y), getattr(y, "name", None)
    if target is None:
        raise ValueError("no target: pass fit(df, 'column'), fit((X, y)) or fit(X, target=y)")
    return _as_input(data), _as_target(target), getattr(target, "name", None)


def _as_input(x: Any) -> pd.DataFrame | np.ndarray:
    if isinstance(x, pd.DataFrame):
        return x
    if isinstance(x, pd.Series):
        return x.to_frame()
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_target(y: Any) -> np.ndarray | pd.Series:
    if isinstance(y, pd.Series):
        return y
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(f"the target must be one column, got {y.shape[1]}")
        return y.iloc[:, 0]
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    array = np.asarray(y)
    if array.ndim != 1:
        array = array.reshape(len(array), -1)
        if array.shape[1] != 1:
            raise ValueError(f"the target must be 1-D, got shape {np.shape(y)}")
        array = array[:, 0]
    return array


def layout_of(x: Any) -> str:
    """"tabular" (DataFrame or 2-D), "sequence" (N, C, L) or "image" (N, C, H, W)."""
    if isinstance(x, pd.DataFrame):
        return "tabular"
    ndim = np.ndim(x)
    layouts = {2: "tabular", 3: "sequence", 4: "image"}
    if ndim not in layouts:
        raise ValueError(
            f"expected a DataFrame or an array of 2 (N, F), 3 (N, C, L) or 4 (N, C, H, W) dims, got shape "
            f"{np.shape(x)}"
        )
    return layouts[ndim]


def detect_task(y: Any) -> str:
    """binary / multiclass / regression from the target's dtype and values (see the module docstring)."""
    series = pd.Series(np.asarray(y) if not isinstance(y, pd.Series) else y).dropna()
    n_unique = series.nunique()
    if n_unique < 2:
        raise ValueError(f"the target has {n_unique} distinct value(s); nothing to learn")
    dtype = series.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if not numeric:
        return "binary" if n_unique == 2 else "multiclass"
    values = series.to_numpy(dtype=np.float64)
    if n_unique == 2:
        return "binary"
    if np.all(values == np.round(values)) and n_unique <= _MAX_INT_CLASSES:
        return "multiclass"
    return "regression"


def _label_kind(values: pd.Series) -> str:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        floats = values.to_numpy(dtype=np.float64)
        return "int" if np.all(floats == np.round(floats)) else "float"
    return "str"


class TargetEncoder:
    """Task detection, label encoding (and decoding back to the user's labels), regression scaling."""

    def __init__(self, task: str = "auto") -> None:
        if task not in ("auto", "classification", *TASKS):
            raise ValueError(f"unknown task {task!r}; expected auto, classification or one of {TASKS}")
        self.requested = task
        self.task = ""
        self.classes: list[Any] = []
        self.label_kind = "float"
        self.mean, self.std = 0.0, 1.0
        self.name: str | None = None

    def fit(self, y: Any) -> TargetEncoder:
        series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
        self.name = None if series.name is None else str(series.name)
        series = series.dropna()
        task = self.requested
        if task == "auto":
            task = detect_task(series)
        elif task == "classification":
            task = "binary" if series.nunique() == 2 else "multiclass"
        if task == "regression":
            values = _numbers(series)
            self.mean, self.std = float(values.mean()), float(values.std()) or 1.0
        else:
            self.label_kind = _label_kind(series)
            labels = sorted({self._label(v) for v in series.tolist()})
            if task == "binary" and len(labels) != 2:
                raise ValueError(f"task 'binary' needs 2 classes, the target has {len(labels)}")
            self.classes = labels
        self.task = task
        return self

    def _label(self, value: Any) -> Any:
        if self.label_kind == "bool":
            return bool(value)
        if self.label_kind == "int":
            return int(value)
        if self.label_kind == "float":
            return float(value)
        return str(value)

    @property
    def n_outputs(self) -> int:
        return 1 if self.task == "regression" else len(self.classes)

    def transform(self, y: Any) -> np.ndarray:
        """Class indices (int64) or standardised float32 values."""
        series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
        if series.isna().any():
            raise ValueError(f"the target has {int(series.isna().sum())} missing value(s)")
        if self.task == "regression":
            return ((_numbers(series) - self.mean) / self.std).astype(np.float32)
        index = {label: i for i, label in enumerate(self.classes)}
        codes = []
        for value in series.tolist():
            label = self._label(value)
            if label not in index:
                raise ValueError(f"unknown class {value!r}; the classes are {self.classes}")
            codes.append(index[label])
        return np.asarray(codes, dtype=np.int64)

    def inverse_transform(self, encoded: np.ndarray) -> np.ndarray:
        """User-facing predictions from class indices or standardised values."""
        encoded = np.asarray(encoded)
        if self.task == "regression":
            return encoded.astype(np.float64) * self.std + self.mean
        labels = np.asarray(self.classes, dtype=object)[encoded.astype(np.int64)]
        dtype = {"bool": bool, "int": np.int64, "float": np.float64}.get(self.label_kind)
        return labels.astype(dtype) if dtype is not None else labels

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "requested": self.requested,
            "classes": self.classes,
            "label_kind": self.label_kind,
            "mean": self.mean,
            "std": self.std,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> TargetEncoder:
        enc = cls(state.get("requested", "auto"))
        enc.task, enc.label_kind = state["task"], state["label_kind"]
        enc.classes = [enc._label(v) for v in state["classes"]]
        enc.mean, enc.std, enc.name = float(state["mean"]), float(state["std"]), state.get("name")
        return enc


def _numbers(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce")
    if values.isna().any():
        raise ValueError(f"a regression target must be numeric, got {series[values.isna()].iloc[0]!r}")
    return values.to_numpy(dtype=np.float64)


class Preprocessor:
    """Fitted inputs → float32 array for any layout; ``scaler`` / ``select`` are the searchable choices."""

    def __init__(self, scaler: str = "standard", select: float = 1.0, onehot_max: int = 15) -> None:
        if scaler not in SCALERS:
            raise ValueError(f"unknown scaler {scaler!r}; expected one of {SCALERS}")
        self.scaler, self.select, self.onehot_max = scaler, float(select), int(onehot_max)
        self.layout = ""
        self.source = ""  # "frame" or "array": what fit saw, so predict can check it gets the same
        self.array_columns: list[str] = []
        self.tabular: TabularPreprocessor | None = None
        self.shape: tuple[int, ...] = ()  # (C, L) / (C, H, W) of sequences and images
        self.channels: list[dict[str, Any]] = []

    def fit(self, x: Any, y: Any = None, task: str | None = None) -> Preprocessor:
        x = _as_input(x)
        self.layout = layout_of(x)
        self.source = "frame" if isinstance(x, pd.DataFrame) else "array"
        if self.layout == "tabular":
            frame = self._frame(x, fitting=True)
            self.tabular = TabularPreprocessor(self.scaler, self.select, self.onehot_max)
            self.tabular.fit(frame, y, task)
            return self
        array = np.asarray(x, dtype=np.float64)
        self.shape = tuple(int(d) for d in array.shape[1:])
        self.channels = []
        for c in range(self.shape[0]):
            values = array[:, c].ravel()
            present = values[np.isfinite(values)]
            if present.size == 0:
                present = np.zeros(1)
            scale = _fit_scale(present, self.scaler)
            self.channels.append({"fill": float(np.median(present)), "scale": scale})
        return self

    def _frame(self, x: pd.DataFrame | np.ndarray, fitting: bool = False) -> pd.DataFrame:
        if isinstance(x, pd.DataFrame):
            if not fitting and self.source == "array":
                if x.shape[1] != len(self.array_columns):
                    raise ValueError(f"expected {len(self.array_columns)} columns (shape (N, "
                                     f"{len(self.array_columns)})), got shape {x.shape}")
                return pd.DataFrame(x.to_numpy(), columns=self.array_columns)
            if not all(isinstance(c, str) for c in x.columns):
                x = x.rename(columns=str)  # the state keys columns by name, as JSON strings
            return x
        if not fitting and self.source == "frame":
            raise TypeError(f"the model was fitted on a DataFrame; pass one with the columns "
                            f"{self.input_columns}, got an array of shape {np.shape(x)}")
        if fitting:
            self.array_columns = [f"x{i}" for i in range(x.shape[1])]
        elif x.ndim != 2 or x.shape[1] != len(self.array_columns):
            width = len(self.array_columns)
            raise ValueError(f"expected an array of shape (N, {width}), got shape {x.shape}")
        return pd.DataFrame(x, columns=self.array_columns)

    @property
    def input_columns(self) -> list[str]:
        return self.tabular.input_columns if self.tabular is not None else []

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one transformed sample: (F,), (C, L) or (C, H, W) — what a model is built for."""
        if self.tabular is not None:
            return (len(self.tabular.feature_names),)
        return self.shape

    def transform(self, x: Any) -> np.ndarray:
        if not self.layout:
            raise RuntimeError("Preprocessor is not fitted")
        x = _as_input(x)
        if self.layout == "tabular":
            if not isinstance(x, pd.DataFrame) and x.ndim != 2:
                raise ValueError(f"expected a DataFrame or an array of shape (N, {len(self.array_columns)}), "
                                 f"got shape {x.shape}")
            assert self.tabular is not None
            return self.tabular.transform(self._frame(x))
        if isinstance(x, pd.DataFrame) or tuple(x.shape[1:]) != self.shape:
            expected = ", ".join(str(d) for d in ("N", *self.shape))
            raise ValueError(f"expected an array of shape ({expected}), got shape {np.shape(x)}")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f"expected a numeric array, got dtype {x.dtype}")
        array = np.asarray(x, dtype=np.float64)
        out = np.empty_like(array)
        for c, channel in enumerate(self.channels):
            values = array[:, c]
            values = np.where(np.isfinite(values), values, channel["fill"])
            out[:, c] = _apply_scale(values, channel["scale"])
        return np.ascontiguousarray(out, dtype=np.float32)

    def fit_transform(self, x: Any, y: Any = None, task: str | None = None) -> np.ndarray:
        return self.fit(x, y, task).transform(x)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "scaler": self.scaler,
            "select": self.select,
            "onehot_max": self.onehot_max,
            "layout": self.layout,
            "source": self.source,
            "array_columns": self.array_columns,
            "tabular": self.tabular.to_json() if self.tabular is not None else None,
            "shape": list(self.shape),
            "channels": self.channels,
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Preprocessor:
        pre = cls(state["scaler"], state["select"], state["onehot_max"])
        pre.layout, pre.source = state["layout"], state["source"]
        pre.array_columns = list(state["array_columns"])
        pre.tabular = TabularPreprocessor.from_json(state["tabular"]) if state["tabular"] else None
        pre.shape = tuple(int(d) for d in state["shape"])
        pre.channels = [dict(c) for c in state["channels"]]
        return pre


def to_tensors(x: np.ndarray, y: np.ndarray | None = None) -> tuple[Any, ...]:
    """float32 inputs (and int64 classes / float32 targets) as torch tensors."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return (xt,) if y is None else (xt, torch.from_numpy(np.ascontiguousarray(y)))


def _stratify(y: np.ndarray, task: str, n_splits: int) -> np.ndarray | None:
    if task == "regression":
        return None
    _, counts = np.unique(y, return_counts=True)
    return y if counts.min() >= n_splits else None


def holdout(y: Sequence[Any] | np.ndarray, *, val_size: float = 0.2, task: str = "regression",
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices); stratified for classification when every class has 2 rows."""
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    n_val = max(1, math.ceil(val_size * len(y)))
    index = np.arange(len(y))
    train, val = train_test_split(index, test_size=n_val, random_state=seed, stratify=_stratify(y, task, 2))
    return np.sort(train), np.sort(val)


def kfold(y: Sequence[Any] | np.ndarray, k: int, *, task: str = "regression",
          seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) index pairs; stratified for classification when every class has k rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    if k < 2 or k > len(y):
        raise ValueError(f"cv needs 2 <= k <= {len(y)} (the number of rows), got {k}")
    strata = _stratify(y, task, k)
    if strata is not None:
        splits = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), strata)
    else:
        splits = KFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)))
    return [(np.sort(tr), np.sort(va)) for tr, va in splits]
