# %% [markdown]
# # Stop, restart the kernel, continue
#
# A search can be stopped at any moment — the panel's **Stop** button, `%automl stop`, `study.stop()`, or the
# kernel's interrupt ■ for a blocking cell — and nothing is lost: every trial start, epoch report and result is
# appended to a journal (`.nbautoml/<name>.jsonl`, one JSON object a line, flushed to disk), and
# `nbautoml.torch.train` checkpoints each epoch. The trial that was running ends `INTERRUPTED`; when the search
# continues it is re-run from its last checkpoint, not from scratch.
#
# Continuing needs no special command: running the same cell again continues the same study from its journal
# — in this kernel, after a kernel restart, or on another machine with the same folder.
#
# **Try it:** run the whole notebook (it stops its own search part-way, as if you had pressed Stop), then
# *Kernel → Restart Kernel and Run All Cells*. The second run finds the journal and continues.

# %% tags=["parameters"]
# Parameters. The test suite runs this notebook twice with NBAUTOML_BUDGET=ci, in two fresh kernels.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 20 if BUDGET == "ci" else 40  # the study's total: more than one run of this notebook does
STOP_AFTER = 2 if BUDGET == "ci" else 5  # each run "presses Stop" after this many more finished trials
EPOCHS = 25 if BUDGET == "ci" else 40

# %%
# %load_ext nbautoml
import time
from pathlib import Path

from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")

# %% [markdown]
# ## Has this notebook run before?
#
# The journal is the study. `nbautoml.load_study(name)` replays it: the finished trials, and the interrupted
# ones that are waiting to be re-run.

# %%
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

# %% [markdown]
# ## The search
#
# `--background` returns at once while the search goes on in a thread — the panel stays live and the next
# cells can run. (A blocking cell works the same; stop it with the kernel's interrupt ■.)

# %%
# %%automl --name resume-demo --trials $TRIALS --metric val_acc --seed 0 --background
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [64, 128, 256]))
nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0,
                     lr=hp.float("lr", 1e-4, 3e-2, log=True), batch_size=hp.choice("batch_size", [32, 64]))

# %% [markdown]
# ## Press Stop
#
# This cell stands in for you: it waits until `STOP_AFTER` more trials have finished and the next one is a few
# epochs in, then stops the search the way the **Stop** button does. Stopping is cooperative: `train` sees
# `trial.should_stop()` after its epoch, saves its checkpoint and returns.

# %%
target = study.n_finished + STOP_AFTER


def mid_trial():
    return any(t.state == "RUNNING" and len(t.reports) >= 3 for t in study.trials)


while study.state == "RUNNING" and not (study.n_finished >= target and mid_trial()):
    time.sleep(0.05)
# %automl stop resume-demo
study.wait()
print(f"{study.name}: {study.state} with {study.n_finished} finished trials")

# %% [markdown]
# ## What was saved
#
# Every trial is in the journal, the interrupted one with the epochs it completed; its checkpoint lies in
# `.nbautoml/resume-demo/trial-<n>/`.

# %%
# %automl status resume-demo

# %%
rerun = {t.resumed_from for t in study.trials}
for t in study.trials:
    if t.state == "INTERRUPTED" and t.number not in rerun:
        files = sorted(p.name for p in t.checkpoint_dir.glob("*"))
        print(f"trial {t.number}: INTERRUPTED after {len(t.reports)} epochs; {t.checkpoint_dir} holds {files}")
print(f"journal: {journal} ({journal.stat().st_size} bytes, {len(journal.read_text().splitlines())} records)")

# %% [markdown]
# ## The re-runs
#
# An interrupted trial is re-run as a new trial with the same params, `resumed_from` naming the old one, and
# `resume_step` the epoch it starts at. After the first run of this notebook there are none yet: restart the
# kernel and run all cells.

# %%
reruns = [t for t in study.trials if t.resumed_from is not None]
for t in reruns:
    print(f"trial {t.number} re-ran trial {t.resumed_from} from epoch {t.resume_step}: "
          f"{t.state.value}, val_acc {t.value if t.value is None else round(t.value, 3)}")
if not reruns:
    print("no re-runs yet: restart the kernel and run all cells to continue this study")

# %% [markdown]
# ## In the same kernel
#
# Without a restart, `%automl resume resume-demo` (or the panel's **Resume** button) continues the last search
# of this kernel; `--trials N` raises its budget. Re-running the search cell does the same.
