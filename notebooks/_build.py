"""Generate the demo notebooks from the readable cell sources below; ``--check`` verifies the committed files.

The notebooks are stored without outputs or execution counts. Edit this file, then run
``python notebooks/_build.py`` and commit both (``tests/notebooks/test_notebooks.py`` checks they agree).

Every notebook opens with a ``parameters`` cell (papermill's tag): ``NBAUTOML_BUDGET=ci`` in the environment
switches to the tiny budget that the test suite runs headless on 2 CPU cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3", "file_extension": ".py",
                 "mimetype": "text/x-python", "codemirror_mode": {"name": "ipython", "version": 3},
                 "nbconvert_exporter": "python"}


def md(text: str) -> tuple[str, str, tuple[str, ...]]:
    return ("markdown", text.strip("\n"), ())


def code(text: str, *tags: str) -> tuple[str, str, tuple[str, ...]]:
    return ("code", text.strip("\n"), tags)


def params(text: str) -> tuple[str, str, tuple[str, ...]]:
    return code(text, "parameters")


NOTEBOOKS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}

# ---------------------------------------------------------------------------------------------------------
NOTEBOOKS["01_quickstart"] = [
    md("""
# Quickstart: search an MLP on the digits with `%%automl`

You write ordinary PyTorch code in a cell and mark the choices you are unsure of with `hp.*`. Under
`%%automl` the cell becomes a *trial*: it runs again and again, each time with other values, picked by a
Bayesian optimiser that learns from the trials before. Weak trials are stopped early (ASHA), a live panel
shows what happens, and everything is written to `.nbautoml/` next to this notebook, so a search survives a
stop, a crash or a kernel restart.

This notebook searches a small multilayer perceptron on scikit-learn's handwritten digits (1797 images of
8×8 pixels, 10 classes) — a data set that ships with scikit-learn, so nothing is downloaded.
"""),
    params("""
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 6 if BUDGET == "ci" else 40  # the study's total number of finished trials
EPOCHS = 8 if BUDGET == "ci" else 30  # the most epochs one trial trains
"""),
    md("""
`%load_ext nbautoml` registers the magics and puts `hp` and `nbautoml` into the notebook's namespace.
We keep a quarter of the images aside: the search never sees them, so they give an honest final score.
"""),
    code("""
%load_ext nbautoml
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")  # 64 pixel intensities in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
print(f"{len(X_train)} images to search on, {len(X_test)} kept aside for the end")
"""),
    md("""
## The search

The cell below is plain PyTorch plus four `hp.*` calls:

- `hp.int("layers", 1, 3)` — an integer, both ends included;
- `hp.choice("units", [...])` — one of a list;
- `hp.float("dropout", 0.0, 0.5)` and `hp.float("lr", ..., log=True)` — floats; `log=True` searches a learning
  rate on a log scale.

`nbautoml.torch.train` trains on 80% of the rows it is given and validates on the rest. Every epoch it
reports `val_loss`, `val_acc`, … to the running trial (that feeds the panel, the early stopping and the
journal), and it keeps the weights of the best epoch. The flags say what to optimise: `--metric val_acc`
(maximised, because the name contains *acc*), `--scheduler asha` stops weak trials after a few epochs,
`--trials` is the study's total. `$TRIALS` is the variable from the parameters cell.

While it runs, the panel shows the progress, the best trial so far, a leaderboard and plots; its **Stop**
button (or the kernel's interrupt ■) stops the search without losing anything.
"""),
    code("""
%%automl --name quickstart --trials $TRIALS --metric val_acc --scheduler asha --seed 0
model = nbautoml.torch.mlp(64, 10,
                           layers=hp.int("layers", 1, 3),
                           units=hp.choice("units", [32, 64, 128, 256]),
                           dropout=hp.float("dropout", 0.0, 0.5))
nbautoml.torch.train(model, (X_train, y_train), epochs=EPOCHS, seed=0,
                     lr=hp.float("lr", 1e-4, 3e-2, log=True),
                     batch_size=hp.choice("batch_size", [32, 64, 128]))
"""),
    md("""
## What you get

After the search, `study` is the [Study](../docs/ENGINE_API.md) and `%automl status` prints its
leaderboard. `study.trials_dataframe()` has one row per trial (state, value, duration, params, final
metrics) for your own analysis. A trial that ASHA stopped early is `PRUNED`: it still counts, and it told the
optimiser something.
"""),
    code("""
%automl status quickstart
"""),
    code("""
frame = study.trials_dataframe()
print(frame["state"].value_counts().to_string())
frame.sort_values("value", ascending=False)[
    ["number", "state", "value", "steps", "duration", "params_layers", "params_units", "params_lr"]].head()
"""),
    md("""
`study_best` holds the variables that the best trial assigned — here its trained `model`. Score it on the
images the search never saw. (When the best trial ran in an earlier kernel session, `study_best` is `None`;
`with hp.using(study.best_params):` then re-runs the cell's code with the best values fixed.)
"""),
    code("""
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
"""),
    md("""
A `Study` as the last expression of a cell shows its panel again (live, if the search is still running).
"""),
    code("""
study
"""),
    md("""
## Next

- Re-run the search cell: the study continues from `.nbautoml/quickstart.jsonl` (`--trials` is the total, so
  raise it to search more); `--fresh` starts over; `--background` returns at once and the search goes on.
- `%automl?` lists every flag; each has a Python twin (`nbautoml.Study(...).optimize(...)`).
- The same search runs headless: `python -m nbautoml status quickstart`, or `python -m nbautoml run spec.py`
  for a file written like this cell.
- [02_custom_training](02_custom_training.ipynb): your own training loop ·
  [03_tabular_automl](03_tabular_automl.ipynb): `nbautoml.fit` on a DataFrame ·
  [04_interrupt_and_resume](04_interrupt_and_resume.ipynb) ·
  [05_live_space_editing](05_live_space_editing.ipynb) · [06_scale_out](06_scale_out.ipynb): Dask.
"""),
]

# ---------------------------------------------------------------------------------------------------------
NOTEBOOKS["02_custom_training"] = [
    md("""
# Your own training loop: a CNN on the digit images

`nbautoml.torch.train` is a convenience, not a requirement. Any loop works, as long as it tells the trial
how it is doing:

- `trial.report(epoch, val_acc=..., val_loss=...)` after each epoch: the panel draws the learning curves,
  the early-stopping scheduler compares trials at the same epoch, the journal records it;
- `trial.should_stop()` right after: `True` when the scheduler prunes this trial or you press Stop — then
  leave the loop.

Inside `%%automl`, `trial` is in the cell's namespace (`nbautoml.current_trial()` gives it to code
elsewhere). The cell's value is its last expression when that is a number or a dict; here the last statement
is the loop, so the trial's value is the best `val_acc` it reported.
"""),
    params("""
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 6 if BUDGET == "ci" else 30
EPOCHS = 6 if BUDGET == "ci" else 20
"""),
    md("""
The digits as images: tensors of shape (N, 1, 8, 8), split once into training and validation rows.
"""),
    code("""
%load_ext nbautoml
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

digits = load_digits()
images = (digits.images / 16.0).astype("float32")[:, None]  # (N, 1, 8, 8)
x_tr, x_val, y_tr, y_val = map(torch.from_numpy, train_test_split(
    images, digits.target, test_size=0.2, stratify=digits.target, random_state=0))
print("train", tuple(x_tr.shape), "validation", tuple(x_val.shape))
"""),
    md("""
## The search

Two convolutions, a pooling and a linear head, written by hand. The `hp.*` calls choose the width, the first
kernel's size, the dropout, the learning rate and the batch size. `--scheduler asha` (asynchronous
successive halving) compares trials at epochs 1, 3, 9, … and stops the ones in the bottom two thirds —
your loop only has to look at `trial.should_stop()`.
"""),
    code("""
%%automl --name custom-cnn --trials $TRIALS --metric val_acc --scheduler asha --seed 0
channels = hp.choice("channels", [8, 16, 32])
kernel = hp.choice("kernel", [3, 5])
batch_size = hp.choice("batch_size", [32, 64, 128])
torch.manual_seed(trial.number)
net = nn.Sequential(
    nn.Conv2d(1, channels, kernel, padding=kernel // 2), nn.ReLU(),
    nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
    nn.MaxPool2d(2),  # 8x8 -> 4x4
    nn.Flatten(), nn.Dropout(hp.float("dropout", 0.0, 0.5)),
    nn.Linear(2 * channels * 4 * 4, 10),
)
optimizer = torch.optim.Adam(net.parameters(), lr=hp.float("lr", 1e-4, 3e-2, log=True))

for epoch in range(EPOCHS):
    net.train()
    for batch in torch.randperm(len(x_tr)).split(batch_size):
        optimizer.zero_grad()
        F.cross_entropy(net(x_tr[batch]), y_tr[batch]).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        logits = net(x_val)
    trial.report(epoch, val_acc=(logits.argmax(1) == y_val).float().mean().item(),
                 val_loss=F.cross_entropy(logits, y_val).item())
    if trial.should_stop():  # pruned by ASHA, or stopped by you
        break
"""),
    md("""
## What happened

Each trial's reports are kept: `trial.history("val_acc")` is its learning curve. Pruned trials ran fewer
epochs — that is the time ASHA saved.
"""),
    code("""
for t in study.trials:
    curve = " ".join(f"{acc:.2f}" for _, acc in t.history("val_acc"))
    print(f"trial {t.number} {t.state.value:9} epochs={len(t.reports):2}  val_acc: {curve}")
epochs_run = sum(len(t.reports) for t in study.trials)
print(f"{epochs_run} epochs trained of {EPOCHS * len(study.trials)} without early stopping")
"""),
    md("""
`study_best.net` is the best trial's network, exactly as its loop left it (the last epoch, not the best
one: a loop of your own decides what to keep — `nbautoml.torch.train` keeps the best epoch for you).
"""),
    code("""
print(f"best trial {study.best_trial.number}: {study.best_params}")
if study_best is None:  # the best trial ran before a kernel restart: its variables are not in this kernel
    print("its network is not in this kernel; re-run the search with --fresh to train it here")
else:
    net = study_best.net.eval()
    with torch.no_grad():
        accuracy = (net(x_val).argmax(1) == y_val).float().mean().item()
    print(f"best reported val_acc {study.best_value:.3f}; the network as the loop left it: {accuracy:.3f}")
"""),
    md("""
## Making your loop resumable

A stopped trial ends `INTERRUPTED` and is re-run when the search continues, with `trial.resume_step` set to
the next epoch to run. To pick up where it left off, save a checkpoint into `trial.checkpoint_dir` each epoch
and start the loop at `range(trial.resume_step, EPOCHS)` after loading it. `nbautoml.torch.train` does all
of this for you (see [04_interrupt_and_resume](04_interrupt_and_resume.ipynb)).
"""),
]

# ---------------------------------------------------------------------------------------------------------
NOTEBOOKS["03_tabular_automl"] = [
    md("""
# AutoML on a messy table: `%automl fit`

`nbautoml.fit` (and its magic twin `%automl fit`) takes a DataFrame and a target column and searches
everything: the preprocessing (scaler, feature selection), the network (an MLP for tables: depth, width,
shape, activation, normalisation, dropout) and its training (optimiser, learning rate, weight decay, batch
size, schedule), with ASHA stopping weak trials. It returns a leaderboard and a model that predicts on raw
DataFrames — and that can be saved without pickle and loaded back.

Real tables are messy, so we make one: scikit-learn's breast-cancer data with missing values, text
categories, an ID column and a text target.
"""),
    params("""
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 6 if BUDGET == "ci" else 40
EPOCHS = 10 if BUDGET == "ci" else 40  # ASHA's longest training
"""),
    code("""
%load_ext nbautoml
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
"""),
    md("""
## Fit

One line. `fit` detects the task (binary classification: two text labels), imputes and scales numbers
(adding a *missing* indicator), one-hot encodes the text columns, and drops the ID column (a string unique per
row). It holds out a stratified 20% of `train_df` to validate each trial on, and optimises `val_loss`
(pass `--metric val_acc` for accuracy). `--name` names the study; re-running the cell continues it.
"""),
    code("""
%automl fit train_df --target diagnosis --name tabular-bc --trials $TRIALS --epochs $EPOCHS
"""),
    md("""
## The leaderboard

One row per trial: its validation loss, the network, the preprocessing and training it chose, how many
epochs it ran (ASHA pruned the short ones) and how long it took.
"""),
    code("""
fit_result.leaderboard.head(10)
"""),
    md("""
Nothing is retrained after the search: the best trial's network and an ensemble of the top trials are rebuilt
from their checkpoints and scored on the validation rows; `predict` uses whichever scored better. Their
preprocessing shows what became of the raw columns:
"""),
    code("""
tabular = fit_result.best_model.preprocessors[0].tabular  # building the models happens here, on first use
print(f"predict uses the {fit_result.selected}; validation {fit_result.study.metric}: "
      + ", ".join(f"{k} {v:.4f}" for k, v in fit_result.validation.items()))
features = tabular.feature_names
print("dropped:", tabular.dropped)
print(f"{train_df.shape[1] - 1} raw columns became {len(features)} network inputs:")
print("  one-hot:", [f for f in features if f.startswith(("clinic", "size_band"))])
print("  missing-value indicators:", sum(f.endswith("__missing") for f in features))
"""),
    md("""
## Export, reload, predict

`%automl export NAME PATH` (or `fit_result.export(PATH)`) writes the model that `predict` uses as a folder:
the networks' weights as tensors and the preprocessing as JSON — no pickle, so loading it runs no code.
`nbautoml.load_model` reads it back into a predictor with scikit-learn's `predict` / `predict_proba` /
`score`, taking the same raw DataFrame columns (the target column is not needed).
"""),
    code("""
%automl export tabular-bc bc_model
print(sorted(p.name for p in __import__("pathlib").Path("bc_model").iterdir()))
"""),
    code("""
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
"""),
    md("""
## In Python

The same without the magic, e.g. in a script:

```python
result = nbautoml.fit(train_df, "diagnosis", trials=40)   # cv=5 for k-fold, metric="val_acc", ...
result.leaderboard; result.predict(test_df); result.export("bc_model")
```

From a terminal: `python -m nbautoml fit data.csv --target diagnosis --export bc_model`.
"""),
]

# ---------------------------------------------------------------------------------------------------------
NOTEBOOKS["04_interrupt_and_resume"] = [
    md("""
# Stop, restart the kernel, continue

A search can be stopped at any moment — the panel's **Stop** button, `%automl stop`, `study.stop()`, or the
kernel's interrupt ■ for a blocking cell — and nothing is lost: every trial start, epoch report and result is
appended to a journal (`.nbautoml/<name>.jsonl`, one JSON object a line, flushed to disk), and
`nbautoml.torch.train` checkpoints each epoch. The trial that was running ends `INTERRUPTED`; when the search
continues it is re-run from its last checkpoint, not from scratch.

Continuing needs no special command: running the same cell again continues the same study from its journal
— in this kernel, after a kernel restart, or on another machine with the same folder.

**Try it:** run the whole notebook (it stops its own search part-way, as if you had pressed Stop), then
*Kernel → Restart Kernel and Run All Cells*. The second run finds the journal and continues.
"""),
    params("""
# Parameters. The test suite runs this notebook twice with NBAUTOML_BUDGET=ci, in two fresh kernels.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 20 if BUDGET == "ci" else 40  # the study's total: more than one run of this notebook does
STOP_AFTER = 2 if BUDGET == "ci" else 5  # each run "presses Stop" after this many more finished trials
EPOCHS = 25 if BUDGET == "ci" else 40
"""),
    code("""
%load_ext nbautoml
import time
from pathlib import Path

from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
"""),
    md("""
## Has this notebook run before?

The journal is the study. `nbautoml.load_study(name)` replays it: the finished trials, and the interrupted
ones that are waiting to be re-run.
"""),
    code("""
journal = Path(".nbautoml/resume-demo.jsonl")
if journal.exists():
    previous = nbautoml.load_study("resume-demo")
    rerun = {t.resumed_from for t in previous.trials}
    waiting = [t for t in previous.trials if t.state == "INTERRUPTED" and t.number not in rerun]
    print(f"found {journal}: continuing from {previous.n_finished} finished trials "
          f"(best val_acc {previous.best_value:.3f})")
    for t in waiting:
        print(f"  trial {t.number} was interrupted after {len(t.reports)} epochs: "
              f"it will be re-run from epoch {len(t.reports)}")
else:
    print(f"no journal at {journal} yet: this is the first run, the study starts from scratch")
"""),
    md("""
## The search

`--background` returns at once while the search goes on in a thread — the panel stays live and the next
cells can run. (A blocking cell works the same; stop it with the kernel's interrupt ■.)
"""),
    code("""
%%automl --name resume-demo --trials $TRIALS --metric val_acc --seed 0 --background
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [64, 128, 256]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0,
                     lr=hp.float("lr", 1e-4, 3e-2, log=True), batch_size=hp.choice("batch_size", [32, 64]))
"""),
    md("""
## Press Stop

This cell stands in for you: it waits until `STOP_AFTER` more trials have finished and the next one is a few
epochs in, then stops the search the way the **Stop** button does. Stopping is cooperative: `train` sees
`trial.should_stop()` after its epoch, saves its checkpoint and returns.
"""),
    code("""
target = study.n_finished + STOP_AFTER


def mid_trial():
    return any(t.state == "RUNNING" and len(t.reports) >= 3 for t in study.trials)


while study.state == "RUNNING" and not (study.n_finished >= target and mid_trial()):
    time.sleep(0.05)
%automl stop resume-demo
study.wait()
print(f"{study.name}: {study.state} with {study.n_finished} finished trials")
"""),
    md("""
## What was saved

Every trial is in the journal, the interrupted one with the epochs it completed; its checkpoint lies in
`.nbautoml/resume-demo/trial-<n>/`.
"""),
    code("""
%automl status resume-demo
"""),
    code("""
rerun = {t.resumed_from for t in study.trials}
for t in study.trials:
    if t.state == "INTERRUPTED" and t.number not in rerun:
        files = sorted(p.name for p in t.checkpoint_dir.glob("*"))
        print(f"trial {t.number}: INTERRUPTED after {len(t.reports)} epochs; {t.checkpoint_dir} holds {files}")
print(f"journal: {journal} ({journal.stat().st_size} bytes, {len(journal.read_text().splitlines())} records)")
"""),
    md("""
## The re-runs

An interrupted trial is re-run as a new trial with the same params, `resumed_from` naming the old one, and
`resume_step` the epoch it starts at. After the first run of this notebook there are none yet: restart the
kernel and run all cells.
"""),
    code("""
reruns = [t for t in study.trials if t.resumed_from is not None]
for t in reruns:
    print(f"trial {t.number} re-ran trial {t.resumed_from} from epoch {t.resume_step}: "
          f"{t.state.value}, val_acc {t.value if t.value is None else round(t.value, 3)}")
if not reruns:
    print("no re-runs yet: restart the kernel and run all cells to continue this study")
"""),
    md("""
## In the same kernel

Without a restart, `%automl resume resume-demo` (or the panel's **Resume** button) continues the last search
of this kernel; `--trials N` raises its budget. Re-running the search cell does the same.
"""),
]

# ---------------------------------------------------------------------------------------------------------
NOTEBOOKS["05_live_space_editing"] = [
    md("""
# Editing the search space while you search

You rarely get the ranges right the first time: the best learning rate sits at the edge of its range, or one
option never wins. Edit the `hp.*` arguments and re-run the cell: the study continues with a new **space
version**. Past trials stay in the study; those whose params lie inside the new space are told to the
optimiser again, so nothing is learned twice. The rest stay visible (leaderboard, plots) but do not guide the
search.

In your own notebook you edit the cell in place and re-run it. Here each version is its own cell, so that the
notebook runs top to bottom; `--name space-edit` keeps them one study. (Without `--name` a cell is named
from its code with the `hp.*` arguments left out: editing a range keeps the name, adding a line of code makes a
new study.) The panel's space editor does the same without touching the code.
"""),
    params("""
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
FIRST = 4 if BUDGET == "ci" else 15  # trials of the first space
MORE = 2 if BUDGET == "ci" else 10  # trials added after each edit
EPOCHS = 6 if BUDGET == "ci" else 20
"""),
    code("""
%load_ext nbautoml
import json
from pathlib import Path

from nbautoml.space import Dimension
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")


def show_space_change(study):
    \"\"\"The last space version as the journal recorded it (the SpaceChanged event's diff) and what it reuses.\"\"\"
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
"""),
    md("""
## Version 0: a first guess

A narrow learning-rate range and small networks. `--fresh` starts the study over each time this notebook is
run from the top (the old journal is kept aside), so the story below stays the same.
"""),
    code("""
%%automl --name space-edit --trials $FIRST --metric val_acc --seed 0 --fresh
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-3, 3e-3, log=True))
"""),
    code("""
show_space_change(study)
"""),
    md("""
## Version 1: widen

Widen the learning rate to 1e-4 … 3e-2 and offer 128 units. Every past trial lies inside the wider space,
so all of them are reused. `--trials` stays the study's total: we ask for `MORE` trials on top.
"""),
    code("""
%%automl --name space-edit --trials {FIRST + MORE} --metric val_acc --seed 0
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64, 128]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))
"""),
    code("""
show_space_change(study)
"""),
    md("""
## Version 2: narrow

Say one hidden layer never wins: search 2 or 3 only. Trials with one layer fall outside the new space and are
no longer told to the optimiser (they stay in the leaderboard).
"""),
    code("""
%%automl --name space-edit --trials {FIRST + 2 * MORE} --metric val_acc --seed 0
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 2, 3), units=hp.choice("units", [32, 64, 128]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))
"""),
    code("""
show_space_change(study)
"""),
    md("""
## Version 3: add a dimension

Add dropout. The earlier trials did not choose a dropout, so none of them lies inside the new space: the
optimiser starts learning this space afresh, while the old trials stay visible.
"""),
    code("""
%%automl --name space-edit --trials {FIRST + 3 * MORE} --metric val_acc --seed 0
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 2, 3), units=hp.choice("units", [32, 64, 128]),
                           dropout=hp.float("dropout", 0.0, 0.5))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))
"""),
    code("""
show_space_change(study)
"""),
    md("""
## The whole history

Each trial remembers the space version it was sampled in.
"""),
    code("""
frame = study.trials_dataframe()
print(frame.groupby("space_version")["value"].agg(["count", "max"]).rename(
    columns={"count": "trials", "max": "best val_acc"}).to_string())
frame[["number", "space_version", "state", "value", "params_layers", "params_units", "params_lr"]]
"""),
    md("""
In Python the same is `study.set_space(new_space)`, which returns the diff; `Study(name, new_space)` on an
existing journal records the new version too.
"""),
]

# ---------------------------------------------------------------------------------------------------------
NOTEBOOKS["06_scale_out"] = [
    md("""
# Scale out with Dask

By default trials run one at a time in a thread of this kernel. `--parallel N` runs N at once; with
`--runner dask` they run in separate worker processes of a [Dask](https://distributed.dask.org) cluster, so
they use separate cores (or GPUs: one worker per GPU) and a crashing trial cannot take the kernel down.

The study itself stays here: workers send their epoch reports back, the kernel writes the journal, decides on
early stopping and draws the panel. Stopping, resuming and the leaderboard work exactly as with threads.
"""),
    params("""
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 4 if BUDGET == "ci" else 40
MORE = 2 if BUDGET == "ci" else 20
EPOCHS = 6 if BUDGET == "ci" else 30
PARALLEL = 2  # worker processes: one per core here
"""),
    code("""
%load_ext nbautoml
import os

from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
print(f"this machine has {os.cpu_count()} cores; the kernel's process id is {os.getpid()}")
"""),
    md("""
## An embedded cluster: `--runner dask`

`--runner dask --parallel 2` starts a `LocalCluster` with two single-threaded worker processes, listening on
127.0.0.1 only, for the duration of the search. The cell travels to the workers together with the data it
reads (`X`, `y`: sent once per worker, not once per trial).

The cell's last expression is a dict: its `val_acc` entry is the trial's value, and the other entries are
kept as the trial's metrics — here the process id of the worker that ran it (`--fresh`: each run of this
notebook starts the study over). The first trial on each worker
also pays for starting a Python process and importing torch (seconds); later ones start at once.
"""),
    code("""
%%automl --name dask-digits --runner dask --parallel $PARALLEL --trials $TRIALS --metric val_acc --seed 0 --fresh
import os
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64, 128]))
result = nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))
{**result, "worker_pid": os.getpid()}
"""),
    code("""
frame = study.trials_dataframe()
pids = sorted({int(p) for p in frame["metrics_worker_pid"].dropna()})
print(f"{study.n_finished} trials finished in {study.elapsed:.1f} s, run by {len(pids)} worker processes "
      f"{pids} (the kernel is {os.getpid()})")
frame[["number", "state", "value", "duration", "metrics_worker_pid"]]
"""),
    md("""
## An existing cluster: `--cluster tcp://host:port`

For more machines, start a Dask scheduler and workers yourself, e.g. in terminals:

```bash
dask scheduler --host 0.0.0.0                  # prints tcp://<host>:8786
dask worker tcp://<host>:8786 --nthreads 1     # on each machine, one per core or GPU
```

then point the search at it: `%%automl --cluster tcp://<host>:8786 ...` (or
`study.optimize(objective, runner=distributed.Client("tcp://<host>:8786"), parallel=N)` in Python).
Workers need nbautoml and whatever the cell imports, and the study's checkpoint folder
(`.nbautoml/<name>/`) must be on storage that every worker sees at the same path (a shared file system).

Here the "existing" cluster is one we start ourselves on this machine, and the same study continues on it.
The cell's namespace travels to the workers; what cannot be pickled (the `cluster` object below) stays here,
and a warning names it.
"""),
    code("""
from distributed import LocalCluster

cluster = LocalCluster(n_workers=PARALLEL, threads_per_worker=1, processes=True,
                       host="127.0.0.1", dashboard_address=None)
address = cluster.scheduler_address
print("scheduler at", address)
"""),
    code("""
%%automl --name dask-digits --cluster $address --parallel $PARALLEL --trials {TRIALS + MORE} --metric val_acc --seed 0
import os
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64, 128]))
result = nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))
{**result, "worker_pid": os.getpid()}
"""),
    code("""
frame = study.trials_dataframe()
later = frame[frame["number"] >= TRIALS]
print(f"{len(later)} more trials ran on {address}; the study now has {study.n_finished} finished trials, "
      f"best val_acc {study.best_value:.3f}")
cluster.close()
"""),
    md("""
On a GPU machine the embedded cluster starts one worker per GPU, each seeing only its device. For many small
models on one GPU, `nbautoml.fit` trains compatible configurations as one fused model instead.
"""),
]


# ---------------------------------------------------------------------------------------------------------
def build(name: str) -> nbformat.NotebookNode:
    cells = []
    for i, (kind, source, tags) in enumerate(NOTEBOOKS[name]):
        cell_id = f"{name[:2]}-{i:02d}"
        if kind == "markdown":
            cell = new_markdown_cell(source, id=cell_id)
        else:
            cell = new_code_cell(source, id=cell_id)
            cell.pop("outputs", None)
            cell["outputs"] = []
            cell["execution_count"] = None
        if tags:
            cell.metadata["tags"] = list(tags)
        cells.append(cell)
    nb = new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO})
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = render(name)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date (run python notebooks/_build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
