# %% [markdown]
# # Quickstart: search an MLP on the digits with `%%automl`
#
# You write ordinary PyTorch code in a cell and mark the choices you are unsure of with `hp.*`. Under
# `%%automl` the cell becomes a *trial*: it runs again and again, each time with other values, picked by a
# Bayesian optimiser that learns from the trials before. Weak trials are stopped early (ASHA), a live panel
# shows what happens, and everything is written to `.nbautoml/` next to this notebook, so a search survives a
# stop, a crash or a kernel restart.
#
# This notebook searches a small multilayer perceptron on scikit-learn's handwritten digits (1797 images of
# 8×8 pixels, 10 classes) — a data set that ships with scikit-learn, so nothing is downloaded.

# %% tags=["parameters"]
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 6 if BUDGET == "ci" else 40  # the study's total number of finished trials
EPOCHS = 8 if BUDGET == "ci" else 30  # the most epochs one trial trains

# %% [markdown]
# `%load_ext nbautoml` registers the magics and puts `hp` and `nbautoml` into the notebook's namespace.
# We keep a quarter of the images aside: the search never sees them, so they give an honest final score.

# %%
# %load_ext nbautoml
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")  # 64 pixel intensities in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
print(f"{len(X_train)} images to search on, {len(X_test)} kept aside for the end")

# %% [markdown]
# ## The search
#
# The cell below is plain PyTorch plus four `hp.*` calls:
#
# - `hp.int("layers", 1, 3)` — an integer, both ends included;
# - `hp.choice("units", [...])` — one of a list;
# - `hp.float("dropout", 0.0, 0.5)` and `hp.float("lr", ..., log=True)` — floats; `log=True` searches a learning
#   rate on a log scale.
#
# `nbautoml.torch.train` trains on 80% of the rows it is given and validates on the rest. Every epoch it
# reports `val_loss`, `val_acc`, … to the running trial (that feeds the panel, the early stopping and the
# journal), and it keeps the weights of the best epoch. The flags say what to optimise: `--metric val_acc`
# (maximised, because the name contains *acc*), `--scheduler asha` stops weak trials after a few epochs,
# `--trials` is the study's total. `$TRIALS` is the variable from the parameters cell.
#
# While it runs, the panel shows the progress, the best trial so far, a leaderboard and plots; its **Stop**
# button (or the kernel's interrupt ■) stops the search without losing anything.

# %%
# %%automl --name quickstart --trials $TRIALS --metric val_acc --scheduler asha --seed 0
model = nbautoml.torch.mlp(64, 10,
                           layers=hp.int("layers", 1, 3),
                           units=hp.choice("units", [32, 64, 128, 256]),
                           dropout=hp.float("dropout", 0.0, 0.5))
nbautoml.torch.train(model, (X_train, y_train), epochs=EPOCHS, seed=0,
                     lr=hp.float("lr", 1e-4, 3e-2, log=True),
                     batch_size=hp.choice("batch_size", [32, 64, 128]))

# %% [markdown]
# ## What you get
#
# After the search, `study` is the [Study](../docs/ENGINE_API.md) and `%automl status` prints its
# leaderboard. `study.trials_dataframe()` has one row per trial (state, value, duration, params, final
# metrics) for your own analysis. A trial that ASHA stopped early is `PRUNED`: it still counts, and it told the
# optimiser something.

# %%
# %automl status quickstart

# %%
frame = study.trials_dataframe()
print(frame["state"].value_counts().to_string())
frame.sort_values("value", ascending=False)[
    ["number", "state", "value", "steps", "duration", "params_layers", "params_units", "params_lr"]].head()

# %% [markdown]
# `study_best` holds the variables that the best trial assigned — here its trained `model`. Score it on the
# images the search never saw. (When the best trial ran in an earlier kernel session, `study_best` is `None`;
# `with hp.using(study.best_params):` then re-runs the cell's code with the best values fixed.)

# %%
if study_best is not None:
    best_model = study_best.model
else:  # the best trial ran before a kernel restart: train its configuration again
    with hp.using(study.best_params):
        best_model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3),
                                        units=hp.choice("units", [32, 64, 128, 256]),
                                        dropout=hp.float("dropout", 0.0, 0.5))
        nbautoml.torch.train(best_model, (X_train, y_train), epochs=EPOCHS, seed=0,
                             lr=hp.float("lr", 1e-4, 3e-2, log=True),
                             batch_size=hp.choice("batch_size", [32, 64, 128]))
best_model.eval()
with torch.no_grad():
    predicted = best_model(torch.from_numpy(X_test)).argmax(dim=1).numpy()
print(f"best trial {study.best_trial.number}: validation accuracy {study.best_value:.3f}, "
      f"test accuracy {(predicted == y_test).mean():.3f} on {len(y_test)} unseen images")
print("its params:", study.best_params)

# %% [markdown]
# A `Study` as the last expression of a cell shows its panel again (live, if the search is still running).

# %%
study

# %% [markdown]
# ## Next
#
# - Re-run the search cell: the study continues from `.nbautoml/quickstart.jsonl` (`--trials` is the total, so
#   raise it to search more); `--fresh` starts over; `--background` returns at once and the search goes on.
# - `%automl?` lists every flag; each has a Python twin (`nbautoml.Study(...).optimize(...)`).
# - The same search runs headless: `python -m nbautoml status quickstart`, or `python -m nbautoml run spec.py`
#   for a file written like this cell.
# - [02_custom_training](02_custom_training.ipynb): your own training loop ·
#   [03_tabular_automl](03_tabular_automl.ipynb): `nbautoml.fit` on a DataFrame ·
#   [04_interrupt_and_resume](04_interrupt_and_resume.ipynb) ·
#   [05_live_space_editing](05_live_space_editing.ipynb) · [06_scale_out](06_scale_out.ipynb): Dask.
