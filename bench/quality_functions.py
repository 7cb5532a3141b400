"""GP search quality on test functions: nbautoml bayes vs Optuna GPSampler vs skopt gp_minimize vs Optuna TPE.

Simple regret (best value found minus the known minimum) after 20 and 50 evaluations, 10 seeds, on Branin
(2-D), Hartmann-6 and a mixed 6-D Hartmann (x3 Int(0, 20), x4 a Choice of 5, x5 a Choice of 2: the function of
bench/engine_overhead.py). Every library runs with its defaults (10 initial points for all model-based ones) and
the same seeds; the runs are interleaved (seed, function, method) over ``--jobs`` processes so machine load hits
them alike, each with BLAS and torch on one thread. Each run's best-so-far curve goes to a CSV so a variant of
nbautoml can be re-measured against the peers' stored curves (``--methods nbautoml --label X --options JSON``:
the sampler's options); the markdown report gives median [min-max] regret and median CPU seconds per run.

Run: python bench/quality_functions.py [--seeds 10] [--budget 50] [--jobs 2] [--methods ...] [--options '{}']
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine_overhead import F_STAR as MIXED_STAR
from engine_overhead import SPACE as MIXED_SPACE
from engine_overhead import hartmann_mixed

from nbautoml.space import Choice, Int, Real, Space

RESULTS = Path(__file__).with_name("results")
PEERS = ("optuna-gp", "skopt-gp_minimize", "optuna-tpe")
MARKS = (20, 50)

_A6 = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                [17, 8, 0.05, 10, 0.1, 14]])
_P6 = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                       [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_ALPHA6 = np.array([1.0, 1.2, 3.0, 3.2])


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    return -float(_ALPHA6 @ np.exp(-(_A6 * (x - _P6) ** 2).sum(1)))


FUNCTIONS: dict[str, tuple[Space, Callable[[dict[str, Any]], float], float]] = {
    "branin": (Space(x1=Real(-5.0, 10.0), x2=Real(0.0, 15.0)), branin, 0.397887357729738),
    "hartmann6": (Space(**{f"x{i}": Real(0.0, 1.0) for i in range(6)}), hartmann6, -3.32236801141551),
    "mixed": (MIXED_SPACE, hartmann_mixed, MIXED_STAR),
}


def run_nbautoml(space: Space, f: Callable[[dict[str, Any]], float], seed: int, budget: int,
                 options: dict[str, Any]) -> list[float]:
    from nbautoml.engine.samplers.bayes import BayesSampler

    sampler = BayesSampler(space, seed=seed, background=False, **options)
    values = []
    for _ in range(budget):
        params = sampler.ask(1)[0]
        values.append(f(params))
        sampler.tell(params, values[-1])
    return values


def _optuna_dists(space: Space) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Real):
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Int):
            out[name] = IntDistribution(dim.low, dim.high, log=dim.log)
        else:
            assert isinstance(dim, Choice)
            out[name] = CategoricalDistribution(list(dim.options))
    return out


def run_optuna(space: Space, f: Callable[[dict[str, Any]], float], seed: int, budget: int, kind: str) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    sampler = optuna.samplers.GPSampler(seed=seed) if kind == "gp" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    dists, values = _optuna_dists(space), []
    for _ in range(budget):
        trial = study.ask(dists)
        values.append(f(dict(trial.params)))
        study.tell(trial, values[-1])
    return values


def run_skopt(space: Space, f: Callable[[dict[str, Any]], float], seed: int, budget: int) -> list[float]:
    from skopt import gp_minimize

    from nbautoml.engine.samplers.bayes import to_skopt_dimensions

    def objective(x: list[Any]) -> float:
        return f({name: dim.options[int(v)] if isinstance(dim, Choice) else v
                  for (name, dim), v in zip(space.items(), x, strict=True)})

    result = gp_minimize(objective, to_skopt_dimensions(space), n_calls=budget, random_state=seed)
    return [float(v) for v in result.func_vals]


def job(args: tuple[str, str, int, int, str]) -> dict[str, Any]:
    """One run; returns its best-so-far regret curve and CPU seconds."""
    from threadpoolctl import threadpool_limits

    function, method, seed, budget, options = args
    space, f, f_star = FUNCTIONS[function]
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    start = time.process_time()
    with threadpool_limits(1):
        if method == "optuna-gp":
            values = run_optuna(space, f, seed, budget, "gp")
        elif method == "optuna-tpe":
            values = run_optuna(space, f, seed, budget, "tpe")
        elif method == "skopt-gp_minimize":
            values = run_skopt(space, f, seed, budget)
        else:
            values = run_nbautoml(space, f, seed, budget, json.loads(options))
    cpu = time.process_time() - start
    regret = list(np.minimum.accumulate(np.array(values) - f_star))
    return {"function": function, "method": method, "seed": seed, "cpu_s": cpu, "regret": regret,
            "options": "" if method in PEERS else options}


def _curves(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path) as handle:
        return [{**r, "seed": int(r["seed"]), "cpu_s": float(r["cpu_s"]), "regret": json.loads(r["regret"])}
                for r in csv.DictReader(handle)]


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2g} [{min(values):.2g}–{max(values):.2g}]"


def report(rows: list[dict[str, Any]], methods: list[str], seeds: int) -> list[str]:
    lines = []
    for mark in MARKS:
        lines += [f"### Simple regret after {mark} evaluations: median [min–max] over {seeds} seeds", "",
                  "| function | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for function in FUNCTIONS:
            cells = []
            for m in methods:
                vals = [r["regret"][mark - 1] for r in rows if r["function"] == function and r["method"] == m
                        and r["seed"] < seeds and len(r["regret"]) >= mark]
                cells.append(_cell(vals) if vals else "n/a")
            lines.append(f"| {function} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["CPU seconds per run of the full budget (median over functions and seeds): " + ", ".join(
        f"{m} {statistics.median(r['cpu_s'] for r in rows if r['method'] == m and r['seed'] < seeds):.2f}"
        for m in methods if any(r["method"] == m for r in rows)), ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["nbautoml", *PEERS])
    parser.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=list(FUNCTIONS))
    parser.add_argument("--label", default="nbautoml-bayes", help="the method name nbautoml's runs are stored as")
    parser.add_argument("--options", default="{}", help="BayesSampler options as JSON")
    parser.add_argument("--csv", default=str(RESULTS / "quality_functions.csv"))
    parser.add_argument("--out", default=str(RESULTS / "quality_functions.md"), help="markdown, or - for none")
    args = parser.parse_args()
    methods = [args.label if m == "nbautoml" else m for m in args.methods]
    path = Path(args.csv)
    old = [r for r in _curves(path) if r["method"] not in methods]
    work = [(fn, m, seed, args.budget, args.options) for seed in range(args.seeds) for fn in args.functions
            for m in methods]
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        new = list(pool.map(job, work))
    wall = time.perf_counter() - began
    new_rows = [r for r in new if r["function"] in args.functions]
    keep = [r for r in _curves(path) if r["method"] in methods and r["function"] not in args.functions]
    rows = old + keep + new_rows
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["function", "method", "seed", "cpu_s", "options", "regret"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r[k] for k in ("function", "method", "seed")}, "cpu_s": round(r["cpu_s"], 3),
                             "options": r.get("options", ""),
                             "regret": json.dumps([float(f"{v:.6g}") for v in r["regret"]])})
    shown = list(dict.fromkeys([*methods, *(r["method"] for r in rows)]))
    header = [f"{datetime.datetime.now().isoformat(timespec='minutes')}: {len(work)} runs of {args.budget} "
              f"evaluations ({', '.join(methods)}; options {args.options}) in {wall:.0f} s on {args.jobs} "
              f"processes, {os.cpu_count()} shared cores, load {load_before:.1f} before / "
              f"{os.getloadavg()[0]:.1f} after.", ""]
    text = "\n".join(header + report(rows, shown, args.seeds))
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
