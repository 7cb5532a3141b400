"""Several objectives: hypervolume after 100 evaluations on ZDT1 and ZDT2, nbautoml vs Optuna.

ZDT1 and ZDT2 (Zitzler, Deb, Thiele 2000) have 30 variables in [0, 1] and two objectives to minimise; the true
fronts are f2 = 1 - sqrt(f1) (convex) and f2 = 1 - f1^2 (concave), reached when x2..x30 = 0. The score is the
hypervolume of each run's feasible non-dominated points after ``--evals`` evaluations with the reference
point (11, 11) (the usual one for early budgets: at 100 evaluations nobody is near the front, so the classic
(1.1, 1.1) would score almost every run 0); the true front's hypervolume there is 120.67 (ZDT1) / 120.33 (ZDT2).

Methods, each with its defaults unless said: nbautoml ``evolution`` (NSGA-II, population 20), nbautoml
``parego`` when registered, nbautoml ``random``, Optuna's NSGAIISampler (population 50, and 20 to match ours)
and Optuna's TPESampler (multi-objective). Every run drives its sampler through the library's own loop
(nbautoml: a Study with an in-memory journal; Optuna: study.optimize). Runs are interleaved (for each seed,
each problem, every method, the method order rotated by seed) so machine load hits them alike.

Run: python bench/multiobjective.py [--seeds 10] [--evals 100] [--out bench/results]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import nbautoml as na
from nbautoml.engine.pareto import hypervolume, pareto_front

N_VARS = 30
REFERENCE = (11.0, 11.0)


def zdt1(x: np.ndarray) -> tuple[float, float]:
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    return float(x[0]), g * (1.0 - float(np.sqrt(x[0] / g)))


def zdt2(x: np.ndarray) -> tuple[float, float]:
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    return float(x[0]), g * (1.0 - (float(x[0]) / g) ** 2)


PROBLEMS: dict[str, Callable[[np.ndarray], tuple[float, float]]] = {"zdt1": zdt1, "zdt2": zdt2}


def true_front_hv(problem: str) -> float:
    f1 = np.linspace(0.0, 1.0, 20001)
    f2 = 1.0 - np.sqrt(f1) if problem == "zdt1" else 1.0 - f1**2
    return hypervolume(np.column_stack([f1, f2]), REFERENCE)


def run_nbautoml(sampler: str, problem: str, seed: int, evals: int) -> list[tuple[float, float]]:
    space = na.Space({f"x{i}": na.Real(0.0, 1.0) for i in range(N_VARS)})
    study = na.Study(f"zdt-{sampler}-{problem}-{seed}", space, metric=["f1", "f2"], mode=["min", "min"],
                     sampler=sampler, storage=":memory:", seed=seed)
    function = PROBLEMS[problem]

    def objective(trial: na.Trial) -> dict[str, float]:
        f1, f2 = function(np.array([trial.params[f"x{i}"] for i in range(N_VARS)]))
        return {"f1": f1, "f2": f2}

    study.optimize(objective, trials=evals, show=False)
    return [(t.values["f1"], t.values["f2"]) for t in study.trials if t.values is not None]


def run_optuna(kind: str, problem: str, seed: int, evals: int) -> list[tuple[float, float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    else:
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=int(kind.removeprefix("nsga2-")))
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    function = PROBLEMS[problem]

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        return function(np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(N_VARS)]))

    study.optimize(objective, n_trials=evals)
    return [(float(t.values[0]), float(t.values[1])) for t in study.trials if t.values is not None]


METHODS: dict[str, Callable[[str, int, int], list[tuple[float, float]]]] = {
    "nbautoml-evolution": lambda p, s, e: run_nbautoml("evolution", p, s, e),
    "nbautoml-parego": lambda p, s, e: run_nbautoml("parego", p, s, e),
    "nbautoml-random": lambda p, s, e: run_nbautoml("random", p, s, e),
    "optuna-nsga2-pop50": lambda p, s, e: run_optuna("nsga2-50", p, s, e),
    "optuna-nsga2-pop20": lambda p, s, e: run_optuna("nsga2-20", p, s, e),
    "optuna-tpe": lambda p, s, e: run_optuna("tpe", p, s, e),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    logging.getLogger("nbautoml").setLevel(logging.WARNING)
    methods = [m for m in args.methods.split(",") if m]
    scores: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    load_before = os.getloadavg()
    for seed in range(args.seeds):
        for problem in PROBLEMS:
            rotated = methods[seed % len(methods):] + methods[: seed % len(methods)]
            for method in rotated:
                start = time.perf_counter()
                points = METHODS[method](problem, seed, args.evals)
                seconds.setdefault((problem, method), []).append(time.perf_counter() - start)
                front = [points[i] for i in pareto_front(points)]
                score = hypervolume(front, REFERENCE)
                scores.setdefault((problem, method), []).append(score)
                print(f"seed {seed} {problem} {method}: hv {score:.3f}", flush=True)
    load_after = os.getloadavg()
    lines = [
        "# Several objectives: ZDT1 / ZDT2 hypervolume — `bench/multiobjective.py`", "",
        f"{datetime.date.today()}, {platform.machine()}, Python {platform.python_version()}, "
        f"{args.evals} evaluations, {args.seeds} seeds, reference point {REFERENCE}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (2 CPUs shared with other sessions).", "",
        "Hypervolume of the non-dominated points found (higher is better; mean ± std over seeds, and the "
        "fraction of the true front's hypervolume). Wall s per run is the median (loaded machine: a guide only).",
        "",
        "| method | " + " | ".join(f"{p} hv | {p} % of front | {p} wins vs evolution" for p in PROBLEMS)
        + " | wall s / run |",
        "|---|" + "---|---|---|" * len(PROBLEMS) + "---|",
    ]
    for method in methods:
        cells = []
        for problem in PROBLEMS:
            values = scores[(problem, method)]
            reference = scores.get((problem, "nbautoml-evolution"), values)
            wins = sum(v > r for v, r in zip(values, reference, strict=True))
            cells.append(f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} | "
                         f"{100 * statistics.mean(values) / true_front_hv(problem):.1f} % | {wins}/{len(values)}")
        wall = statistics.median(s for p in PROBLEMS for s in seconds[(p, method)])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {wall:.2f} |")
    lines += ["", "Per seed (hv):", ""]
    for problem in PROBLEMS:
        for method in methods:
            lines.append(f"- {problem} {method}: " + ", ".join(f"{v:.2f}" for v in scores[(problem, method)]))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "multiobjective.md"
    target.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {target}")


if __name__ == "__main__":
    main()
