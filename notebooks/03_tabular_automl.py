# %% [markdown]
# # AutoML on a messy table: `%automl fit`
#
# `nbautoml.fit` (and its magic twin `%automl fit`) takes a DataFrame and a target column and searches
# everything: the preprocessing (scaler, feature selection), the network (an MLP for tables: depth, width,
# shape, activation, normalisation, dropout) and its training (optimiser, learning rate, weight decay, batch
# size, schedule), with ASHA stopping weak trials. It returns a leaderboard and a model that predicts on raw
# DataFrames — and that can be saved without pickle and loaded back.
#
# Real tables are messy, so we make one: scikit-learn's breast-cancer data with missing values, text
# categories, an ID column and a text target.

# %% tags=["parameters"]
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 6 if BUDGET == "ci" else 40
EPOCHS = 10 if BUDGET == "ci" else 40  # ASHA's longest training

# %%
# %load_ext nbautoml
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

raw = load_breast_cancer(as_frame=True)
rng = np.random.default_rng(0)
df = raw.data.copy()
measured = list(df.columns)
df[measured] = df[measured].mask(rng.random(df.shape) < 0.05)  # 5% of the measurements missing
df.insert(0, "patient_id", [f"P{n:05d}" for n in rng.permutation(len(df))])  # unique per row: no signal
df["clinic"] = rng.choice(["north", "south", "east", "west"], size=len(df))  # text category (noise)
df.loc[rng.random(len(df)) < 0.03, "clinic"] = None
df["size_band"] = pd.cut(raw.data["mean radius"], [0, 12, 16, 100],
                         labels=["small", "medium", "large"]).astype(str)  # text category (signal)
df["diagnosis"] = np.where(raw.target == 1, "benign", "malignant")  # a text target

train_df, test_df = train_test_split(df, test_size=0.2, stratify=df["diagnosis"], random_state=0)
print(f"{df.shape[0]} rows, {df.shape[1]} columns, {int(df.isna().sum().sum())} missing cells; "
      f"{len(train_df)} rows to fit on, {len(test_df)} kept aside")
df[["patient_id", "mean radius", "mean texture", "clinic", "size_band", "diagnosis"]].head()

# %% [markdown]
# ## Fit
#
# One line. `fit` detects the task (binary classification: two text labels), imputes and scales numbers
# (adding a *missing* indicator), one-hot encodes the text columns, and drops the ID column (a string unique per
# row). It holds out a stratified 20% of `train_df` to validate each trial on, and optimises `val_loss`
# (pass `--metric val_acc` for accuracy). `--name` names the study; re-running the cell continues it.

# %%
# %automl fit train_df --target diagnosis --name tabular-bc --trials $TRIALS --epochs $EPOCHS

# %% [markdown]
# ## The leaderboard
#
# One row per trial: its validation loss, the network, the preprocessing and training it chose, how many
# epochs it ran (ASHA pruned the short ones) and how long it took.

# %%
fit_result.leaderboard.head(10)

# %% [markdown]
# Nothing is retrained after the search: the best trial's network and an ensemble of the top trials are rebuilt
# from their checkpoints and scored on the validation rows; `predict` uses whichever scored better. Their
# preprocessing shows what became of the raw columns:

# %%
tabular = fit_result.best_model.preprocessors[0].tabular  # building the models happens here, on first use
print(f"predict uses the {fit_result.selected}; validation {fit_result.study.metric}: "
      + ", ".join(f"{k} {v:.4f}" for k, v in fit_result.validation.items()))
features = tabular.feature_names
print("dropped:", tabular.dropped)
print(f"{train_df.shape[1] - 1} raw columns became {len(features)} network inputs:")
print("  one-hot:", [f for f in features if f.startswith(("clinic", "size_band"))])
print("  missing-value indicators:", sum(f.endswith("__missing") for f in features))

# %% [markdown]
# ## Export, reload, predict
#
# `%automl export NAME PATH` (or `fit_result.export(PATH)`) writes the model that `predict` uses as a folder:
# the networks' weights as tensors and the preprocessing as JSON — no pickle, so loading it runs no code.
# `nbautoml.load_model` reads it back into a predictor with scikit-learn's `predict` / `predict_proba` /
# `score`, taking the same raw DataFrame columns (the target column is not needed).

# %%
# %automl export tabular-bc bc_model
print(sorted(p.name for p in __import__("pathlib").Path("bc_model").iterdir()))

# %%
model = nbautoml.load_model("bc_model")
X_test = test_df.drop(columns="diagnosis")
reloaded = model.predict(X_test)
in_memory = fit_result.predict(X_test)
same = bool((reloaded == in_memory).all()) and np.allclose(model.predict_proba(X_test),
                                                          fit_result.predict_proba(X_test))
print(model)
print("reloaded predictions equal the in-memory ones:", same)
print(f"test accuracy on {len(X_test)} unseen rows: {(reloaded == test_df['diagnosis']).mean():.3f}")
print("first predictions:", list(reloaded[:5]), "classes:", list(model.classes_))

# %% [markdown]
# ## In Python
#
# The same without the magic, e.g. in a script:
#
# ```python
# result = nbautoml.fit(train_df, "diagnosis", trials=40)   # cv=5 for k-fold, metric="val_acc", ...
# result.leaderboard; result.predict(test_df); result.export("bc_model")
# ```
#
# From a terminal: `python -m nbautoml fit data.csv --target diagnosis --export bc_model`.
