"""Trial seeds, the generators set before the objective runs, and the demo's cell repeated bitwise."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

import nbautoml as na
from nbautoml.engine.seeding import trial_seed
from nbautoml.engine.trial import TrialState


def test_trial_seeds_are_derived_from_the_study_seed_and_the_number():
    assert trial_seed(None, 3) is None
    assert trial_seed(0, 3) == trial_seed(0, 3)
    assert len({trial_seed(0, n) for n in range(50)} | {trial_seed(1, n) for n in range(50)}) == 100


def draws(trial):
    return {"random": random.random(), "numpy": float(np.random.random())}


def test_the_objective_starts_from_the_trials_seed_in_every_study():
    space = na.Space(x=na.Real(0.0, 1.0))
    runs = []
    for attempt in range(2):
        random.seed(attempt)  # whatever ran before must not matter
        np.random.seed(attempt + 7)
        study = na.Study(f"seeded-{attempt}", space, sampler="random", storage=":memory:", seed=5)
        study.optimize(lambda t: draws(t)["random"] + draws(t)["numpy"], trials=3, show=False)
        runs.append([(t.params, t.value, t.seed) for t in study.trials])
    assert runs[0] == runs[1]
    assert len({value for _, value, _ in runs[0]}) == 3  # each trial has its own seed


def test_an_unseeded_study_seeds_nothing():
    study = na.Study("unseeded", na.Space(x=na.Real(0.0, 1.0)), sampler="random", storage=":memory:")
    random.seed(11)
    expected = random.random()
    random.seed(11)
    study.optimize(lambda t: random.random(), trials=1, show=False)
    assert study.trials[0].seed is None and study.trials[0].value == expected


def test_a_rerun_keeps_the_seed_of_the_trial_it_continues():
    study = na.Study("rerun", na.Space(x=na.Real(0.0, 1.0)), sampler="random", seed=3)
    stops = iter([True, False])

    def objective(trial):
        trial.report(0, value=1.0)
        if next(stops):
            study.stop()
            trial.should_stop()
        return random.random()

    study.optimize(objective, trials=1, show=False)
    study.optimize(objective, trials=1, show=False)
    first, rerun = study.trials
    assert first.state is TrialState.INTERRUPTED and rerun.resumed_from == first.number
    assert rerun.seed == first.seed == trial_seed(3, 0)


def run_demo(folder: Path, trials: int) -> list[tuple[dict, float | None, list]]:
    """``python -m nbautoml demo`` in a fresh process (torch first imported inside trial 0, one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NBAUTOML_QUIET": "1"}
    subprocess.run([sys.executable, "-m", "nbautoml", "demo", "--trials", str(trials), "--report", "",
                    "--storage", str(folder / "demo.jsonl")], cwd=folder, env=env, check=True,
                   capture_output=True, timeout=600)
    study = na.load_study(folder / "demo.jsonl")
    return [(t.params, t.value, [dict(r.metrics, epoch_seconds=0, peak_memory_mb=0) for r in t.reports])
            for t in study.trials]


def test_the_demo_cell_gives_the_same_params_and_values_in_two_fresh_processes(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    assert run_demo(first, 3) == run_demo(second, 3)  # bitwise: every epoch's metrics, not only the values
