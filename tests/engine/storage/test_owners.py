"""Owner files and the heartbeat: one thread per process, gone when no trial runs; files removed when done."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import nbautoml as na
from nbautoml.engine.storage import default_journal_path, owners
from nbautoml.engine.trial import TrialState

SPACE = na.Space(x=na.Real(0, 1))


def heartbeats() -> int:
    return sum(t.name == "nbautoml-heartbeat" for t in threading.enumerate())


def settle(predicate, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end and not predicate():
        time.sleep(0.01)
    return predicate()


def test_rerunning_a_cell_sixty_times_keeps_at_most_one_heartbeat_and_no_owner_file(tmp_path):
    seen = []

    def objective(trial):
        seen.append(heartbeats())
        return trial.params["x"]

    for run in range(60):  # each re-run of a cell makes a new Study on the same journal
        study = na.Study("cell", SPACE, sampler="random", seed=run)
        study.optimize(objective, trials=run + 1, show=False)
    assert max(seen) == 1 and len(seen) == 60
    assert settle(lambda: heartbeats() == 0 and not owners.heartbeat_alive())
    assert not list(tmp_path.glob(".nbautoml/*.owners/*"))


def test_parallel_trials_of_two_journals_share_one_heartbeat(tmp_path):
    counts = []
    gate = threading.Barrier(4, timeout=30)

    def objective(trial):
        gate.wait()  # four trials (two per study) run at once
        counts.append(heartbeats())
        return trial.params["x"]

    studies = [na.Study(name, SPACE, sampler="random") for name in ("one", "two")]
    for study in studies:
        study.optimize(objective, trials=2, parallel=2, background=True, show=False)
    for study in studies:
        assert study.wait(60)
    assert counts == [1, 1, 1, 1]
    assert settle(lambda: heartbeats() == 0)
    assert not list(tmp_path.glob(".nbautoml/*.owners/*"))


CLEAN_EXIT = """
import sys, nbautoml as na
from nbautoml.engine.storage.owners import owner
from nbautoml.engine.storage.records import make_record
study = na.Study("exit", na.Space(x=na.Real(0, 1)), sampler="random")
study.storage.append_trial(lambda n: make_record("trial", number=n, params={"x": 0.5}, owner=owner()))
print(len(list(study.storage.path.parent.glob("*.owners/*"))), flush=True)
sys.exit(0)  # a clean exit while the trial is RUNNING
"""


def test_a_clean_exit_removes_the_owner_file_and_the_trial_is_interrupted_on_reopen(tmp_path):
    env = {**os.environ, "NBAUTOML_QUIET": "1"}
    done = subprocess.run([sys.executable, "-c", CLEAN_EXIT], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"  # the owner file existed while the trial ran
    assert not list(tmp_path.glob(".nbautoml/*.owners/*"))
    study = na.load_study(default_journal_path("exit", root=tmp_path))
    assert study.trials[0].state is TrialState.INTERRUPTED and "its process died" in study.trials[0].reason
