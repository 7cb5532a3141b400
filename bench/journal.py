"""Journal figures: appends per second, time to open (replay) a 1000-trial journal, bytes per trial.

Side by side in one run with Optuna's JournalStorage (file backend), the peer with the same append-only design.
Run: python bench/journal.py [--trials 1000] [--reports 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbautoml as na
from nbautoml.engine.storage.journal import JournalStorage
from nbautoml.engine.storage.records import make_record


def append_rate(path: Path, count: int) -> float:
    storage = JournalStorage(path)
    storage.append(make_record("run"))
    start = time.perf_counter()
    for i in range(count):
        storage.append(make_record("report", number=0, step=i, metrics={"val_loss": 0.5, "val_acc": 0.9}))
    return count / (time.perf_counter() - start)


def build(path: Path, trials: int, reports: int) -> None:
    """A real study written through Study (trial, report and finish records as a search writes them)."""
    space = na.Space(lr=na.Real(1e-4, 1e-1, log=True), layers=na.Int(1, 4), units=na.Int(16, 512, log=True),
                     act=na.Choice(["relu", "tanh", "gelu"]), drop=na.Real(0.0, 0.5))
    study = na.Study("bench", space, sampler="random", seed=0, storage=path, keep_checkpoints=None)

    def objective(trial):
        for step in range(reports):
            trial.report(step, val_loss=1.0 / (step + 1), val_acc=0.5 + step / (2 * reports), train_loss=0.1)
        return 0.1

    study.optimize(objective, trials=trials, show=False)


def open_time(path: Path, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        study = na.Study("bench", storage=path)
        assert study.n_finished > 0
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def optuna_figures(path: Path, trials: int, reports: int, count: int) -> tuple[float, float, float]:
    import optuna
    from optuna.storages import JournalStorage as OptunaJournal
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = OptunaJournal(JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="bench")

    def objective(trial):
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("layers", 1, 4)
        trial.suggest_int("units", 16, 512, log=True)
        trial.suggest_categorical("act", ["relu", "tanh", "gelu"])
        trial.suggest_float("drop", 0.0, 0.5)
        for step in range(reports):
            trial.report(1.0 / (step + 1), step)
        return 0.1

    study.optimize(objective, n_trials=trials)
    size = path.stat().st_size / trials
    times = []
    for _ in range(5):
        start = time.perf_counter()
        again = optuna.load_study(study_name="bench", storage=OptunaJournal(JournalFileBackend(str(path))))
        assert len(again.trials) == trials
        times.append(time.perf_counter() - start)
    # appends: intermediate values into one running trial
    trial = study.ask()
    start = time.perf_counter()
    for i in range(count):
        trial.report(0.5, i)
    rate = count / (time.perf_counter() - start)
    return rate, statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--appends", type=int, default=2000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ["NBAUTOML_QUIET"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rate = append_rate(root / "appends.jsonl", args.appends)
        path = root / "study.jsonl"
        build(path, args.trials, args.reports)
        opened = open_time(path)
        size = path.stat().st_size / args.trials
        try:
            o_rate, o_open, o_size = optuna_figures(root / "optuna.log", args.trials, args.reports, args.appends)
        except ImportError:
            o_rate = o_open = o_size = float("nan")
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")
    print(f"{args.trials} trials x {args.reports} reports each (5 params, 3 metrics a report)\n")
    print("| figure | nbautoml journal | Optuna JournalStorage (file) |")
    print("|---|---|---|")
    print(f"| appends / s (fsync each) | {rate:,.0f} | {o_rate:,.0f} |")
    print(f"| open (replay) {args.trials} trials, median of 5 | {opened:.3f} s | {o_open:.3f} s |")
    print(f"| bytes per trial | {size:,.0f} | {o_size:,.0f} |")


if __name__ == "__main__":
    main()
