# %% [markdown]
# # Editing the search space while you search
#
# You rarely get the ranges right the first time: the best learning rate sits at the edge of its range, or one
# option never wins. Edit the `hp.*` arguments and re-run the cell: the study continues with a new **space
# version**. Past trials stay in the study; those whose params lie inside the new space are told to the
# optimiser again, so nothing is learned twice. The rest stay visible (leaderboard, plots) but do not guide the
# search.
#
# In your own notebook you edit the cell in place and re-run it. Here each version is its own cell, so that the
# notebook runs top to bottom; `--name space-edit` keeps them one study. (Without `--name` a cell is named
# from its code with the `hp.*` arguments left out: editing a range keeps the name, adding a line of code makes a
# new study.) The panel's space editor does the same without touching the code.

# %% tags=["parameters"]
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
FIRST = 4 if BUDGET == "ci" else 15  # trials of the first space
MORE = 2 if BUDGET == "ci" else 10  # trials added after each edit
EPOCHS = 6 if BUDGET == "ci" else 20

# %%
# %load_ext nbautoml
import json
from pathlib import Path

from nbautoml.space import Dimension
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")


def show_space_change(study):
    """The last space version as the journal recorded it (the SpaceChanged event's diff) and what it reuses."""
    records = [json.loads(line) for line in Path(f".nbautoml/{study.name}.jsonl").read_text().splitlines()]
    diff = [r for r in records if r.get("type") == "space"][-1]["diff"]
    print(f"space_version {study.space_version}")
    for name in diff["added"]:
        print(f"  + {name}: {study.space[name]}")
    for name in diff["removed"]:
        print(f"  - {name}")
    for name, change in diff["changed"].items():
        print(f"  ~ {name}: {Dimension.from_json(change['old'])} -> {Dimension.from_json(change['new'])}")
    version = study.space_version
    earlier = [t for t in study.trials if t.state.finished and t.space_version < version]
    reused = [t for t in study.history_in_space() if t.space_version < version]
    ran = [t for t in study.trials if t.state.finished and t.space_version == version]
    if earlier:
        print(f"{len(reused)} of the {len(earlier)} trials of earlier versions lie inside it and are reused")
    print(f"{len(ran)} trials ran in version {version}; best val_acc so far {study.best_value:.3f}")


# %% [markdown]
# ## Version 0: a first guess
#
# A narrow learning-rate range and small networks. `--fresh` starts the study over each time this notebook is
# run from the top (the old journal is kept aside), so the story below stays the same.

# %%
# %%automl --name space-edit --trials $FIRST --metric val_acc --seed 0 --fresh
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-3, 3e-3, log=True))

# %%
show_space_change(study)

# %% [markdown]
# ## Version 1: widen
#
# Widen the learning rate to 1e-4 … 3e-2 and offer 128 units. Every past trial lies inside the wider space,
# so all of them are reused. `--trials` stays the study's total: we ask for `MORE` trials on top.

# %%
# %%automl --name space-edit --trials {FIRST + MORE} --metric val_acc --seed 0
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64, 128]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))

# %%
show_space_change(study)

# %% [markdown]
# ## Version 2: narrow
#
# Say one hidden layer never wins: search 2 or 3 only. Trials with one layer fall outside the new space and are
# no longer told to the optimiser (they stay in the leaderboard).

# %%
# %%automl --name space-edit --trials {FIRST + 2 * MORE} --metric val_acc --seed 0
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 2, 3), units=hp.choice("units", [32, 64, 128]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))

# %%
show_space_change(study)

# %% [markdown]
# ## Version 3: add a dimension
#
# Add dropout. The earlier trials did not choose a dropout, so none of them lies inside the new space: the
# optimiser starts learning this space afresh, while the old trials stay visible.

# %%
# %%automl --name space-edit --trials {FIRST + 3 * MORE} --metric val_acc --seed 0
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 2, 3), units=hp.choice("units", [32, 64, 128]),
                           dropout=hp.float("dropout", 0.0, 0.5))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))

# %%
show_space_change(study)

# %% [markdown]
# ## The whole history
#
# Each trial remembers the space version it was sampled in.

# %%
frame = study.trials_dataframe()
print(frame.groupby("space_version")["value"].agg(["count", "max"]).rename(
    columns={"count": "trials", "max": "best val_acc"}).to_string())
frame[["number", "space_version", "state", "value", "params_layers", "params_units", "params_lr"]]

# %% [markdown]
# In Python the same is `study.set_space(new_space)`, which returns the diff; `Study(name, new_space)` on an
# existing journal records the new version too.
