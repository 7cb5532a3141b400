"""Quality at notebook budgets and time to target: nbautoml's defaults vs Optuna's pruned TPE and random search.

Every method searches the same space with the same training code on the same data: a fixed stratified
train/test split (80/20, seed 0), and inside the training part the validation split of ``nbautoml.torch.train``
(20%, seed 0). Trial ``i`` of repetition ``r`` always initialises and trains with torch seed ``r * 1000 + i``,
so methods differ only in the points they pick and the trials they stop. The trial's value is its best epoch's
validation score (accuracy on digits, log loss on the tiny wine / breast_cancer sets, where accuracy saturates
at 1.0); the test score is the held-out accuracy of the best complete trial at its best epoch. One torch
thread, one trial at a time. A method runs to the largest budget once; the smaller budgets are its prefixes
(no method here looks at the budget, so a 12-trial run is the first 12 trials of a 100-trial run).
Runs are interleaved: for each repetition and task the methods run one after another in an order rotated by
repetition, so machine load hits them alike.

Methods: ``nbautoml`` (the defaults: bayes + the default ASHA, pruned trials told as estimated finals),
``nb-none`` (bayes without early stopping), ``nb-median``, ``nb-hyperband``, ``nb-asha-old`` (the old default:
rungs at epochs 1, 3, 9, grace 1, pruned values told as final), ``tpe+median`` (Optuna TPESampler +
MedianPruner), ``tpe+sha`` (TPESampler + SuccessiveHalvingPruner), ``random`` (Optuna RandomSampler, no
pruning). Optuna's samplers and pruners run with their defaults.

Run: python bench/budget.py [--trials 100] [--reps 2] [--tasks digits_mlp,...] [--methods ...]
     python bench/budget.py --table   (the markdown table from bench/results/budget.jsonl)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import nbautoml as na
from nbautoml.torch import _fitdata as fd
from nbautoml.torch import models

RESULTS = Path(__file__).parent / "results" / "budget.jsonl"
BUDGETS = (12, 30, 100)


@dataclass
class Task:
    name: str
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    kind: str  # mlp | cnn2d
    epochs: int
    batch: int
    metric: str  # val_acc | val_loss


def load_task(name: str) -> Task:
    loader = {"digits_mlp": load_digits, "digits_cnn": load_digits, "wine": load_wine,
              "breast_cancer": load_breast_cancer}[name]
    x_raw, y_raw = loader(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x_raw, y_raw, test_size=0.2, stratify=y_raw, random_state=0)
    if name.startswith("digits"):
        x_tr, x_te = x_tr / 16.0, x_te / 16.0
    else:
        scaler = StandardScaler().fit(x_tr)
        x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    xt, xs = torch.tensor(x_tr, dtype=torch.float32), torch.tensor(x_te, dtype=torch.float32)
    if name == "digits_cnn":
        xt, xs = xt.reshape(-1, 1, 8, 8), xs.reshape(-1, 1, 8, 8)
    yt, ys = torch.tensor(y_tr), torch.tensor(y_te)
    if name.startswith("digits"):
        return Task(name, xt, yt, xs, ys, "cnn2d" if name == "digits_cnn" else "mlp", 10, 64, "val_acc")
    return Task(name, xt, yt, xs, ys, "mlp", 20, 32, "val_loss")


def space(task: Task) -> na.Space:
    common = dict(lr=na.Real(1e-4, 3e-2, log=True), dropout=na.Real(0.0, 0.4))
    if task.kind == "cnn2d":
        return na.Space(blocks=na.Int(1, 2), channels=na.Choice([8, 16, 32]), **common)
    return na.Space(layers=na.Int(1, 3), units=na.Choice([32, 64, 128]), **common)


def run_trial(task: Task, params: dict[str, Any], seed: int, report: Callable[[int, float], bool]) -> dict[str, Any]:
    """Train one configuration; ``report(step, value)`` True stops it. Returns value, test score, epochs."""
    torch.manual_seed(seed)
    n_out = int(task.y.max()) + 1
    if task.kind == "cnn2d":
        model = models.cnn(1, n_out, dims=2, blocks=int(params["blocks"]), channels=int(params["channels"]),
                           dropout=float(params["dropout"]))
    else:
        model = models.mlp(task.x.shape[1], n_out, layers=int(params["layers"]), units=int(params["units"]),
                           dropout=float(params["dropout"]))
    tr, va = fd.split(task.y, 0.2, 0, stratify=True)
    x_tr, y_tr, x_va, y_va = task.x[tr], task.y[tr], task.x[va], task.y[va]
    opt = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    shuffle = torch.Generator().manual_seed(seed)
    best: tuple[float, float] | None = None  # (value, test accuracy at that epoch)
    sign = -1.0 if task.metric == "val_acc" else 1.0
    epochs = 0
    for epoch in range(task.epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=shuffle)
        for b in range(0, len(order), task.batch):
            idx = order[b:b + task.batch]
            loss = torch.nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out_va = model(x_va)
            val_loss = float(torch.nn.functional.cross_entropy(out_va, y_va))
            val_acc = float((out_va.argmax(1) == y_va).float().mean())
            test_acc = float((model(task.x_test).argmax(1) == task.y_test).float().mean())
        value = val_acc if task.metric == "val_acc" else val_loss
        if not math.isfinite(value):
            value = math.inf * sign * -1
        epochs = epoch + 1
        if best is None or sign * value < sign * best[0]:
            best = (value, test_acc)
        if report(epoch, value):
            break
    assert best is not None
    return {"value": best[0], "test": best[1], "epochs": epochs}


# ---- the methods ------------------------------------------------------------------------------------------
def run_nbautoml(task: Task, trials: int, rep: int, scheduler: Any, tell_final: bool = False) -> list[dict[str, Any]]:
    from nbautoml.engine.schedulers import feedback

    mode = "max" if task.metric == "val_acc" else "min"
    log: list[dict[str, Any]] = []
    began = time.perf_counter()
    study = na.Study(f"budget-{task.name}-{rep}", space(task), metric=task.metric, mode=mode, sampler="bayes",
                     scheduler=scheduler, storage=":memory:", seed=rep)
    original = feedback.PrunedValues.loss
    if tell_final:  # the old policy: a pruned trial's best partial value, told as if final
        feedback.PrunedValues.loss = lambda self, trial: (  # type: ignore[method-assign]
            self.sign * trial.value if trial.value is not None else None)

    def objective(trial: Any) -> Any:
        trial.set_max_steps(task.epochs)

        def report(step: int, value: float) -> bool:
            trial.report(step, **{task.metric: value})
            return bool(trial.should_stop())

        out = run_trial(task, trial.params, rep * 1000 + trial.number, report)
        log.append({"t": time.perf_counter() - began, "cpu": time.process_time(), "value": out["value"],
                    "test": out["test"], "epochs": out["epochs"], "pruned": bool(trial.pruned)})
        return {task.metric: out["value"]}

    try:
        study.optimize(objective, trials=trials, show=False)
    finally:
        feedback.PrunedValues.loss = original  # type: ignore[method-assign]
    return log


def run_optuna(task: Task, trials: int, rep: int, sampler: str, pruner: str | None) -> list[dict[str, Any]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.samplers.TPESampler(seed=rep) if sampler == "tpe" else optuna.samplers.RandomSampler(seed=rep)
    p: Any = {"median": optuna.pruners.MedianPruner(), "sha": optuna.pruners.SuccessiveHalvingPruner(),
              None: optuna.pruners.NopPruner()}[pruner]
    study = optuna.create_study(direction="maximize" if task.metric == "val_acc" else "minimize", sampler=s,
                                pruner=p)
    dims = space(task)
    log: list[dict[str, Any]] = []
    began = time.perf_counter()
    for number in range(trials):
        trial = study.ask()
        params: dict[str, Any] = {}
        for name in dims.names:
            dim = dims[name]
            if isinstance(dim, na.Real):
                params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
            elif isinstance(dim, na.Int):
                params[name] = trial.suggest_int(name, dim.low, dim.high)
            else:
                params[name] = trial.suggest_categorical(name, list(dim.options))
        pruned = False

        def report(step: int, value: float, trial: Any = trial) -> bool:
            nonlocal pruned
            trial.report(value, step)
            pruned = bool(trial.should_prune())
            return pruned

        out = run_trial(task, params, rep * 1000 + number, report)
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, out["value"])
        log.append({"t": time.perf_counter() - began, "cpu": time.process_time(), "value": out["value"],
                    "test": out["test"], "epochs": out["epochs"], "pruned": pruned})
    return log


METHODS: dict[str, Callable[[Task, int, int], list[dict[str, Any]]]] = {
    "nbautoml": lambda t, n, r: run_nbautoml(t, n, r, "asha"),
    "nb-none": lambda t, n, r: run_nbautoml(t, n, r, None),
    "nb-median": lambda t, n, r: run_nbautoml(t, n, r, na.MedianStopping(warmup_fraction=1 / 3, min_trials=4)),
    "nb-hyperband": lambda t, n, r: run_nbautoml(t, n, r, "hyperband"),
    "nb-asha-old": lambda t, n, r: run_nbautoml(t, n, r, {"name": "asha", "min_steps": 1, "grace": 1},
                                                tell_final=True),
    "tpe+median": lambda t, n, r: run_optuna(t, n, r, "tpe", "median"),
    "tpe+sha": lambda t, n, r: run_optuna(t, n, r, "tpe", "sha"),
    "random": lambda t, n, r: run_optuna(t, n, r, "random", None),
}


# ---- the table --------------------------------------------------------------------------------------------
def summarise(log: list[dict[str, Any]], budget: int, metric: str, cpu0: float) -> dict[str, Any]:
    sign = -1.0 if metric == "val_acc" else 1.0
    part = log[:budget]
    complete = [e for e in part if not e["pruned"]]
    best = min(complete, key=lambda e: sign * e["value"]) if complete else None
    final = best["value"] if best else math.nan
    # time to 99% of the final best (accuracy: 0.99 * best; loss: within 1% above the best)
    target = final * 0.99 if metric == "val_acc" else final * 1.01
    reach = next((e["t"] for e in complete if sign * e["value"] <= sign * target), math.nan)
    return {"best": final, "test": best["test"] if best else math.nan,
            "pruned": sum(e["pruned"] for e in part), "wall": part[-1]["t"] if part else math.nan,
            "cpu": part[-1]["cpu"] - cpu0 if part else math.nan, "t99": reach,
            "epochs": sum(e["epochs"] for e in part)}


def time_to(log: list[dict[str, Any]], budget: int, metric: str, target: float) -> float:
    sign = -1.0 if metric == "val_acc" else 1.0
    return next((e["t"] for e in log[:budget] if not e["pruned"] and sign * e["value"] <= sign * target), math.nan)


def table(path: Path) -> str:
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = []
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    for task in tasks:
        mine = [r for r in runs if r["task"] == task]
        metric = mine[0]["metric"]
        methods = list(dict.fromkeys(r["method"] for r in mine))
        reps = sorted({r["rep"] for r in mine})
        lines.append(f"\n**{task}** ({metric}, {'higher' if metric == 'val_acc' else 'lower'} is better; "
                     f"{len(reps)} repetitions, medians)\n")
        lines.append("| trials | method | best val | test acc | pruned | epochs | wall s | CPU s | t 99% s "
                     "| t to tpe+median's best s |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for budget in BUDGETS:
            if not all(len(r["log"]) >= budget for r in mine):
                continue
            peer = {r["rep"]: summarise(r["log"], budget, metric, r["cpu0"])["best"]
                    for r in mine if r["method"] == "tpe+median"}
            for method in methods:
                rows = [r for r in mine if r["method"] == method]
                stats = [summarise(r["log"], budget, metric, r["cpu0"]) for r in rows]
                to_peer = [time_to(r["log"], budget, metric, peer[r["rep"]]) for r in rows if r["rep"] in peer]

                def med(key: str, stats: list[dict[str, Any]] = stats) -> float:
                    values = [s[key] for s in stats if not math.isnan(s[key])]
                    return statistics.median(values) if values else math.nan

                finite = [v for v in to_peer if not math.isnan(v)]
                reached = f"{statistics.median(finite):.1f}" if finite else "—"
                reached += f" ({len(finite)}/{len(to_peer)})" if to_peer and len(finite) < len(to_peer) else ""
                lines.append(f"| {budget} | {method} | {med('best'):.4f} | {med('test'):.4f} | {med('pruned'):.0f} "
                             f"| {med('epochs'):.0f} | {med('wall'):.1f} | {med('cpu'):.1f} | {med('t99'):.1f} "
                             f"| {reached} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--cnn-trials", type=int, default=30, help="trials of digits_cnn (its epochs cost ~4x)")
    parser.add_argument("--tasks", default="digits_mlp,digits_cnn,wine,breast_cancer")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    torch.set_num_threads(1)
    logging.getLogger("nbautoml").setLevel(logging.WARNING)
    os.environ["NBAUTOML_QUIET"] = "1"
    methods = args.methods.split(",")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(args.reps):
        for name in args.tasks.split(","):
            task = load_task(name)
            order = methods[rep % len(methods):] + methods[:rep % len(methods)]
            for method in order:
                np.random.seed(rep)
                cpu0 = time.process_time()
                trials = args.cnn_trials if name == "digits_cnn" else args.trials
                log = METHODS[method](task, trials, rep)
                record = {"task": name, "metric": task.metric, "method": method, "rep": rep, "cpu0": cpu0,
                          "log": log, "load": os.getloadavg()[0]}
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                best = summarise(log, len(log), task.metric, cpu0)
                print(f"rep {rep} {name:14s} {method:13s} best {best['best']:.4f} test {best['test']:.4f} "
                      f"pruned {best['pruned']:3d} wall {best['wall']:6.1f}s load {record['load']:.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
