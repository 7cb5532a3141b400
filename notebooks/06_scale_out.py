# %% [markdown]
# # Scale out with Dask
#
# By default trials run one at a time in a thread of this kernel. `--parallel N` runs N at once; with
# `--runner dask` they run in separate worker processes of a [Dask](https://distributed.dask.org) cluster, so
# they use separate cores (or GPUs: one worker per GPU) and a crashing trial cannot take the kernel down.
#
# The study itself stays here: workers send their epoch reports back, the kernel writes the journal, decides on
# early stopping and draws the panel. Stopping, resuming and the leaderboard work exactly as with threads.

# %% tags=["parameters"]
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 4 if BUDGET == "ci" else 40
MORE = 2 if BUDGET == "ci" else 20
EPOCHS = 6 if BUDGET == "ci" else 30
PARALLEL = 2  # worker processes: one per core here

# %%
# %load_ext nbautoml
import os

from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
print(f"this machine has {os.cpu_count()} cores; the kernel's process id is {os.getpid()}")

# %% [markdown]
# ## An embedded cluster: `--runner dask`
#
# `--runner dask --parallel 2` starts a `LocalCluster` with two single-threaded worker processes, listening on
# 127.0.0.1 only, for the duration of the search. The cell travels to the workers together with the data it
# reads (`X`, `y`: sent once per worker, not once per trial).
#
# The cell's last expression is a dict: its `val_acc` entry is the trial's value, and the other entries are
# kept as the trial's metrics — here the process id of the worker that ran it (`--fresh`: each run of this
# notebook starts the study over). The first trial on each worker
# also pays for starting a Python process and importing torch (seconds); later ones start at once.

# %%
# %%automl --name dask-digits --runner dask --parallel $PARALLEL --trials $TRIALS --metric val_acc --seed 0 --fresh
import os
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64, 128]))
result = nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))
{**result, "worker_pid": os.getpid()}

# %%
frame = study.trials_dataframe()
pids = sorted({int(p) for p in frame["metrics_worker_pid"].dropna()})
print(f"{study.n_finished} trials finished in {study.elapsed:.1f} s, run by {len(pids)} worker processes "
      f"{pids} (the kernel is {os.getpid()})")
frame[["number", "state", "value", "duration", "metrics_worker_pid"]]

# %% [markdown]
# ## An existing cluster: `--cluster tcp://host:port`
#
# For more machines, start a Dask scheduler and workers yourself, e.g. in terminals:
#
# ```bash
# dask scheduler --host 0.0.0.0                  # prints tcp://<host>:8786
# dask worker tcp://<host>:8786 --nthreads 1     # on each machine, one per core or GPU
# ```
#
# then point the search at it: `%%automl --cluster tcp://<host>:8786 ...` (or
# `study.optimize(objective, runner=distributed.Client("tcp://<host>:8786"), parallel=N)` in Python).
# Workers need nbautoml and whatever the cell imports, and the study's checkpoint folder
# (`.nbautoml/<name>/`) must be on storage that every worker sees at the same path (a shared file system).
#
# Here the "existing" cluster is one we start ourselves on this machine, and the same study continues on it.
# The cell's namespace travels to the workers; what cannot be pickled (the `cluster` object below) stays here,
# and a warning names it.

# %%
from distributed import LocalCluster

cluster = LocalCluster(n_workers=PARALLEL, threads_per_worker=1, processes=True,
                       host="127.0.0.1", dashboard_address=None)
address = cluster.scheduler_address
print("scheduler at", address)

# %%
# %%automl --name dask-digits --cluster $address --parallel $PARALLEL --trials {TRIALS + MORE} --metric val_acc --seed 0
import os
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 3), units=hp.choice("units", [32, 64, 128]))
result = nbautoml.torch.train(model, (X, y), epochs=EPOCHS, seed=0, lr=hp.float("lr", 1e-4, 3e-2, log=True))
{**result, "worker_pid": os.getpid()}

# %%
frame = study.trials_dataframe()
later = frame[frame["number"] >= TRIALS]
print(f"{len(later)} more trials ran on {address}; the study now has {study.n_finished} finished trials, "
      f"best val_acc {study.best_value:.3f}")
cluster.close()

# %% [markdown]
# On a GPU machine the embedded cluster starts one worker per GPU, each seeing only its device. For many small
# models on one GPU, `nbautoml.fit` trains compatible configurations as one fused model instead.
