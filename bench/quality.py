"""Search quality against peers: nbautoml (bayes, bayes + ASHA, random) vs Optuna TPE vs plain skopt gp_minimize.

Every method searches the same MLP space (lr, weight decay, layers, units, dropout) on sklearn's digits, wine
and breast_cancer with the same trial budget, 5 seeds each, and every trial is trained by the same code
(``nbautoml.torch.train``, Adam, fixed epochs per data set; trial i of seed s always trains with seed
s * 1000 + i, so methods differ only in the points they pick). The value is the best epoch's validation
accuracy on a fixed stratified 60/20/20 split; the test accuracy of each method's best trial is reported too.
Each library runs with its defaults (10 random initial points for all three model-based ones). nbautoml runs
the trials through a Study (in-memory journal, epoch checkpoints: the product's real per-trial cost); ASHA is
fit's setting (min_steps = epochs // 9, reduction factor 3); best-so-far counts COMPLETE trials only.

Outputs: a best-so-far curve per (data set, method, seed) as CSV, and a markdown report with the final scores
(mean ± std), the curves at a few budgets, and time-to-target of bayes with ASHA vs without (target: the median
final score of plain bayes on that data set), in wall seconds and in epochs trained.

Run: python bench/quality.py [--quick] [--trials 20] [--seeds 5] [--jobs 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import logging
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import nbautoml as na
from nbautoml.engine.schedulers import ASHA
from nbautoml.engine.trial import Trial
from nbautoml.torch import models
from nbautoml.torch.train import train

DATASETS: dict[str, tuple[Callable[..., Any], int, int]] = {  # loader, epochs, batch size
    "digits": (load_digits, 8, 64),
    "wine": (load_wine, 20, 32),
    "breast_cancer": (load_breast_cancer, 15, 32),
}
METHODS = ("nbautoml-bayes", "nbautoml-bayes+asha", "nbautoml-random", "optuna-tpe", "skopt-gp_minimize")
BOUNDS = {"lr": (1e-4, 1e-1), "weight_decay": (1e-6, 1e-2), "layers": (1, 3), "units": (16, 256),
          "dropout": (0.0, 0.5)}


def load(name: str) -> dict[str, Any]:
    loader, epochs, batch = DATASETS[name]
    x, y = loader(return_X_y=True)
    x_tr, x_rest, y_tr, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    x_va, x_te, y_va, y_te = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    scaler = StandardScaler().fit(x_tr)
    f32 = [scaler.transform(a).astype(np.float32) for a in (x_tr, x_va, x_te)]
    return {"train": (f32[0], y_tr), "val": (f32[1], y_va), "test": (f32[2], y_te), "epochs": epochs,
            "batch": batch, "features": x.shape[1], "classes": int(y.max()) + 1}


class Recorder:
    """One row per finished trial: its value, whether it completed, the clock and the epochs trained so far."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.epochs = 0

    def add(self, value: float, test: float, complete: bool, epochs: int) -> None:
        self.epochs += epochs
        self.rows.append({"value": value, "test": test, "complete": complete,
                          "elapsed_s": time.perf_counter() - self.start, "epochs_cum": self.epochs})


def evaluate(params: dict[str, Any], ds: dict[str, Any], seed: int, trial: Trial | None = None) -> Any:
    torch.manual_seed(seed)
    model = models.build("mlp", params, (ds["features"],), ds["classes"])
    result = train(model, (ds["train"], ds["val"]), epochs=ds["epochs"], batch_size=ds["batch"], optimizer="adam",
                   lr=float(params["lr"]), weight_decay=float(params["weight_decay"]), seed=seed,
                   metric="val_acc", mode="max", trial=trial)
    x_te, y_te = ds["test"]
    with torch.no_grad():
        test = float((result.model(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean())
    return result, test


def run_nbautoml(method: str, ds: dict[str, Any], seed: int, trials: int) -> Recorder:
    rec = Recorder()
    space = na.Space(lr=na.Real(*BOUNDS["lr"], log=True), weight_decay=na.Real(*BOUNDS["weight_decay"], log=True),
                     layers=na.Int(*BOUNDS["layers"]), units=na.Int(*BOUNDS["units"], log=True),
                     dropout=na.Real(*BOUNDS["dropout"]))
    epochs = ds["epochs"]
    scheduler = ASHA(min_steps=max(1, epochs // 9), reduction_factor=3, max_steps=epochs) if "asha" in method \
        else None
    sampler = "random" if method.endswith("random") else "bayes"
    study = na.Study(f"q-{method}-{seed}", space, metric="val_acc", sampler=sampler, seed=seed,
                     scheduler=scheduler, storage=":memory:", keep_checkpoints=1)

    def objective(trial: Trial) -> dict[str, float]:
        result, test = evaluate(trial.params, ds, seed * 1000 + trial.number, trial)
        rec.add(result["val_acc"], test, result.stopped != "pruned", len(result.history))
        return dict(result)

    study.optimize(objective, trials=trials, show=False)
    return rec


def run_optuna(ds: dict[str, Any], seed: int, trials: int) -> Recorder:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rec = Recorder()

    def objective(trial: Any) -> float:
        params = {"lr": trial.suggest_float("lr", *BOUNDS["lr"], log=True),
                  "weight_decay": trial.suggest_float("weight_decay", *BOUNDS["weight_decay"], log=True),
                  "layers": trial.suggest_int("layers", *BOUNDS["layers"]),
                  "units": trial.suggest_int("units", *BOUNDS["units"], log=True),
                  "dropout": trial.suggest_float("dropout", *BOUNDS["dropout"])}
        result, test = evaluate(params, ds, seed * 1000 + trial.number)
        rec.add(result["val_acc"], test, True, len(result.history))
        return float(result["val_acc"])

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return rec


def run_skopt(ds: dict[str, Any], seed: int, trials: int) -> Recorder:
    from skopt import gp_minimize
    from skopt.space import Integer, Real

    rec = Recorder()
    dims = [Real(*BOUNDS["lr"], prior="log-uniform"), Real(*BOUNDS["weight_decay"], prior="log-uniform"),
            Integer(*BOUNDS["layers"]), Integer(*BOUNDS["units"], prior="log-uniform"), Real(*BOUNDS["dropout"])]

    def objective(x: list[Any]) -> float:
        params = dict(zip(("lr", "weight_decay", "layers", "units", "dropout"), x, strict=True))
        result, test = evaluate(params, ds, seed * 1000 + len(rec.rows))
        rec.add(result["val_acc"], test, True, len(result.history))
        return -float(result["val_acc"])

    gp_minimize(objective, dims, n_calls=trials, random_state=seed, n_initial_points=min(10, trials))
    return rec


def job(args: tuple[str, int, int, int]) -> list[dict[str, Any]]:
    """All methods on one (data set, seed); returns CSV rows."""
    name, seed, trials, threads = args
    torch.set_num_threads(threads)
    logging.getLogger("nbautoml").setLevel(logging.ERROR)
    ds = load(name)
    warm = {**ds, "epochs": 1}  # imports and first-call costs (torch, skopt, optuna) before any clock runs
    for method in METHODS:
        if method.startswith("nbautoml"):
            run_nbautoml(method, warm, 0, 2)
    run_optuna(warm, 0, 1)
    run_skopt(warm, 0, 1)
    rows: list[dict[str, Any]] = []
    for method in METHODS:
        if method.startswith("nbautoml"):
            rec = run_nbautoml(method, ds, seed, trials)
        elif method == "optuna-tpe":
            rec = run_optuna(ds, seed, trials)
        else:
            rec = run_skopt(ds, seed, trials)
        best, best_test = float("nan"), float("nan")
        for i, row in enumerate(rec.rows):
            if row["complete"] and (np.isnan(best) or row["value"] > best):
                best, best_test = row["value"], row["test"]
            rows.append({"dataset": name, "method": method, "seed": seed, "trial": i, "value": row["value"],
                         "complete": row["complete"], "best_so_far": best, "test_of_best": best_test,
                         "elapsed_s": round(row["elapsed_s"], 3), "epochs_cum": row["epochs_cum"]})
    return rows


def _ms(values: list[float]) -> str:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "n/a"
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"


def report(rows: list[dict[str, Any]], trials: int, seeds: int, header: str, datasets: list[str]) -> str:
    out = [header, "", f"## Final best validation accuracy after {trials} trials (mean ± std over {seeds} seeds)",
           "", "| data set | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    final = {(r["dataset"], r["method"], r["seed"]): r for r in rows if r["trial"] == trials - 1}
    for name in datasets:
        cells = [_ms([final[(name, m, s)]["best_so_far"] for s in range(seeds) if (name, m, s) in final])
                 for m in METHODS]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "Test accuracy of each method's best trial (same split, never used by the search):", "",
            "| data set | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for name in datasets:
        cells = [_ms([final[(name, m, s)]["test_of_best"] for s in range(seeds) if (name, m, s) in final])
                 for m in METHODS]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    marks = sorted({max(1, trials // 4), trials // 2, trials})
    out += ["", "## Best-so-far (mean over seeds) at " + ", ".join(map(str, marks)) + " trials", ""]
    out += ["| data set | method | " + " | ".join(f"@{m}" for m in marks) + " | wall s (median) |",
            "|---|---|" + "---|" * (len(marks) + 1)]
    for name in datasets:
        for m in METHODS:
            cells = []
            for mark in marks:
                vals = [r["best_so_far"] for r in rows if r["dataset"] == name and r["method"] == m
                        and r["trial"] == mark - 1 and not np.isnan(r["best_so_far"])]
                cells.append(f"{statistics.mean(vals):.4f}" if vals else "n/a")
            walls = [final[(name, m, s)]["elapsed_s"] for s in range(seeds) if (name, m, s) in final]
            out.append(f"| {name} | {m} | " + " | ".join(cells) + f" | {statistics.median(walls):.1f} |")
    out += ["", "## Time-to-target: bayes with ASHA vs without",
            "Target: the median final best of plain nbautoml-bayes on the data set. Per seed, the wall seconds "
            "and the epochs trained until best-so-far first reaches it (medians over the seeds that reached it).",
            "", "| data set | target | bayes: reached | bayes: s | bayes: epochs | +asha: reached | +asha: s | "
            "+asha: epochs | epochs for the whole budget (bayes / +asha) |", "|---" * 10 + "|"]
    for name in datasets:
        target = statistics.median(final[(name, "nbautoml-bayes", s)]["best_so_far"] for s in range(seeds))
        cells = [f"{target:.4f}"]
        for m in ("nbautoml-bayes", "nbautoml-bayes+asha"):
            hits = []
            for s in range(seeds):
                run = [r for r in rows if r["dataset"] == name and r["method"] == m and r["seed"] == s]
                hit = next((r for r in run if r["best_so_far"] >= target - 1e-12), None)
                if hit is not None:
                    hits.append((hit["elapsed_s"], hit["epochs_cum"]))
            cells += [f"{len(hits)}/{seeds}", f"{statistics.median(h[0] for h in hits):.1f}" if hits else "n/a",
                      f"{statistics.median(h[1] for h in hits):.0f}" if hits else "n/a"]
        budget = [statistics.median(final[(name, m, s)]["epochs_cum"] for s in range(seeds))
                  for m in ("nbautoml-bayes", "nbautoml-bayes+asha")]
        cells.append(f"{budget[0]:.0f} / {budget[1]:.0f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 trials, 2 seeds: a smoke run of a few minutes")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (each uses --threads threads)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    trials = args.trials or (12 if args.quick else 20)
    seeds = args.seeds or (2 if args.quick else 5)
    began = time.perf_counter()
    jobs = [(name, seed, trials, args.threads) for seed in range(seeds) for name in args.datasets]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(job, j): j for j in jobs}
        for n, future in enumerate(as_completed(futures), 1):
            rows += future.result()
            name, seed = futures[future][:2]
            print(f"[{time.perf_counter() - began:.0f} s] {n}/{len(jobs)} done: {name} seed {seed}", flush=True)
    rows.sort(key=lambda r: (list(DATASETS).index(r["dataset"]), METHODS.index(r["method"]), r["seed"], r["trial"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    with open(out / f"quality_curves{suffix}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    when = datetime.datetime.now().isoformat(timespec="minutes")
    header = (f"# Search quality (bench/quality.py{' --quick' if args.quick else ''})\n\n"
              f"{when}, {platform.node()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end), "
              f"torch {torch.__version__}, {args.jobs} worker processes × {args.threads} thread(s); "
              f"{trials} trials × {seeds} seeds × {len(args.datasets)} data sets × {len(METHODS)} methods in "
              f"{time.perf_counter() - began:.0f} s. Curves: quality_curves{suffix}.csv.")
    text = report(rows, trials, seeds, header, args.datasets)
    (out / f"quality{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
