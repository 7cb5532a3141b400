"""Overhead and speed-up of the Dask runner (issue 7). Not part of the tests.

    python bench/dask_overhead.py                # writes bench/results/dask_overhead.md
    python bench/dask_overhead.py --trials 20 --repeats 1 --out -

Method. One embedded-style cluster (``start_local_cluster(2)``: 2 single-threaded worker processes on
127.0.0.1) is started once and timed; every Dask figure then runs on it through ``runner=client``, after a
warm-up study (the first trial on each worker pays for imports and the worker's client). Studies use the
default journal (fsync per record) in a temporary folder, the random sampler, and ``show=False``.

- *Overhead per trial*: N trials of a ``sleep(d)`` objective, d = 0 and 0.25 s. The thread runner runs them with
  ``parallel=1`` (its overhead: ``wall / N - d``) and ``parallel=2``; Dask with ``parallel=2``. With two slots a
  slot's overhead is ``2 * wall / N - d``, the time each trial holds a slot beyond its work; it includes the study
  loop's own work (journal fsyncs, the sampler), which is the same for both runners, so **Dask's overhead** is
  its slot overhead less the thread runner's at ``parallel=2``. Also shown: the trial's duration as the driver
  records it (submit to result) less d, and bare Dask tasks (no study) as the floor. Median over the repeats.
- *Per report*: trials of 10 ``report()`` calls and no work, without a scheduler (reports are fire-and-forget)
  and with ASHA (each report waits for the driver's answer, so a prune is seen at once).
- *Speed-up*: a CPU-bound objective of about 0.4 CPU-seconds, once a torch matmul loop
  (``torch.set_num_threads(1)``, releases the GIL) and once pure Python (holds the GIL): thread runner
  ``parallel=1`` and ``parallel=2`` vs Dask ``parallel=2``, and the CPU cores the trials actually got (their CPU
  seconds per wall second): on a shared machine the speed-up can be no better than that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NBAUTOML_QUIET", "1")

RESULTS = Path(__file__).with_name("results") / "dask_overhead.md"


# ---- objectives (module level: pickled by value from __main__ and shipped to the workers) ----------------
def sleeper(trial: Any) -> float:
    time.sleep(trial.params["d"])
    return trial.params["x"]


def reporter(trial: Any) -> None:
    for step in range(trial.params["steps"]):
        trial.report(step, value=trial.params["x"] + 1.0 / (step + 1))
        if trial.should_stop():
            break


def torch_work(trial: Any) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    cpu = time.thread_time()
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    for _ in range(trial.params["n"]):
        a = torch.tanh(a @ a / 16.0)
    return {"value": float(a.mean()) + trial.params["x"], "cpu": time.thread_time() - cpu}


def python_work(trial: Any) -> dict[str, float]:
    cpu = time.thread_time()
    total = 0.0
    for i in range(trial.params["n"]):
        total += (i % 7) * 0.5
    return {"value": total * 1e-9 + trial.params["x"], "cpu": time.thread_time() - cpu}


# ---- measuring -------------------------------------------------------------------------------------------
def space(**fixed: Any) -> Any:
    import nbautoml as na

    dims: dict[str, Any] = {"x": na.Real(0.0, 1.0)}
    for name, value in fixed.items():  # a one-point dimension: every trial gets the same work
        dims[name] = na.Choice([value])
    return na.Space(dims)


_runs = 0


def run(objective: Any, trials: int, parallel: int, runner: Any, scheduler: Any = None, **fixed: Any) -> Any:
    """One fresh study; returns (wall seconds, the study)."""
    import nbautoml as na

    global _runs
    _runs += 1
    study = na.Study(f"bench-{_runs}", space(**fixed), sampler="random", seed=_runs, scheduler=scheduler)
    start = time.perf_counter()
    study.optimize(objective, trials=trials, parallel=parallel, runner=runner, show=False)
    wall = time.perf_counter() - start
    assert study.n_finished == trials, study.message
    return wall, study


def median_duration(study: Any) -> float:
    return statistics.median(t.duration for t in study.trials if t.duration is not None)


def bare_dask(client: Any, n: int, d: float) -> float:
    """Dask's own floor: n tasks of ``sleep(d)``, two in flight, no study: a worker slot's overhead per task."""
    from distributed import as_completed

    start = time.perf_counter()
    pending = as_completed([client.submit(time.sleep, d, pure=False) for _ in range(2)], loop=client.loop)
    submitted = 2
    for future in pending:
        future.release()
        if submitted < n:
            pending.add(client.submit(time.sleep, d, pure=False))
            submitted += 1
    return 2 * (time.perf_counter() - start) / n - d


def calibrate(objective: Any, seconds: float) -> int:
    """Work units that take about ``seconds`` of CPU in this process."""
    from nbautoml.engine.trial import Trial

    n = 10
    while True:
        took = objective(Trial(0, {"x": 0.0, "n": n}))["cpu"]
        if took > 0.05:
            return max(1, int(n * seconds / took))
        n *= 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS), help="markdown file to write ('-': print only)")
    args = parser.parse_args()

    import dask
    import distributed
    import torch

    from nbautoml.engine.runners.dask import start_local_cluster

    workdir = tempfile.mkdtemp(prefix="nbautoml-bench-dask-")
    os.chdir(workdir)
    n, lines = args.trials, []

    start = time.perf_counter()
    cluster = start_local_cluster(2, devices=[])
    client = distributed.Client(cluster, set_as_default=False)
    started = time.perf_counter() - start
    try:
        figures = measure(client, n, args.repeats)
    finally:
        start = time.perf_counter()
        client.close()
        cluster.close()
        closed = time.perf_counter() - start
    rows, reports, speed, (load_before, load_after) = figures

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        "# Dask runner: overhead and speed-up",
        "",
        f"- Date: {when}; machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"- dask {dask.__version__}, distributed {distributed.__version__}, torch {torch.__version__}",
        f"- Command: `python bench/dask_overhead.py --trials {n} --repeats {args.repeats}`; method in the script's "
        "docstring. Goal (issue 7): Dask overhead <= 50 ms per trial.",
        f"- Cluster of 2 worker processes: started in {started:.1f} s, closed in {closed:.1f} s "
        "(runner=\"dask\" pays both once per `optimize`).",
        f"- Load average (1 min) at the start / end of the overhead runs: {load_before:.1f} / {load_after:.1f} "
        "(other work shared the machine; every figure here includes it).",
        "",
        f"## Overhead per trial ({n} trials, median of {args.repeats})",
        "",
        "| objective | threads, parallel=1: per trial | threads, parallel=2: per slot | Dask, parallel=2: per slot "
        "| **Dask overhead** (slot, Dask − threads) | Dask trial latency | bare Dask tasks, per slot |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| sleep {d:g} s | {t1 * 1e3:.1f} ms | {t2 * 1e3:.1f} ms | {s * 1e3:.1f} ms | **{(s - t2) * 1e3:.1f} ms** "
        f"| {lat * 1e3:.1f} ms | {b * 1e3:.1f} ms |"
        for d, t1, t2, s, lat, b in rows
    ]
    lines += ["", "## Per report (trial duration with 20 reports less with none, / 20)", "",
              "| scheduler | thread runner | Dask |", "|---|---|---|"]
    lines += [f"| {label} | {t * 1e3:.2f} ms | {d * 1e3:.2f} ms |" for label, t, d in reports]
    lines += ["", "## Speed-up of a CPU-bound objective (wall time of parallel=1 threads / of the runner)", "",
              "| objective | trials | s/trial, 1 thread | threads, parallel=2 | Dask, parallel=2 "
              "| CPU cores the trials got: 1 thread / 2 threads / Dask |",
              "|---|---|---|---|---|---|"]
    lines += [
        f"| {label} | {k} | {s:.2f} | x{t:.2f} | x{d:.2f} | {' / '.join(f'{c:.2f}' for c in cores)} |"
        for label, k, s, t, d, cores in speed
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"written to {args.out}", file=sys.stderr)


def measure(client: Any, n: int, repeats: int) -> Any:
    from nbautoml.engine.schedulers import ASHA

    run(sleeper, 4, 2, client, d=0.0)  # warm-up: imports and each worker's client
    load_before = os.getloadavg()[0]
    rows = []
    for d in (0.0, 0.25):
        thread, threads, slot, latency, bare = [], [], [], [], []
        for _ in range(repeats):
            wall, _study = run(sleeper, n, 1, "thread", d=d)
            thread.append(wall / n - d)
            wall, _study = run(sleeper, n, 2, "thread", d=d)
            threads.append(2 * wall / n - d)
            wall, study = run(sleeper, n, 2, client, d=d)
            slot.append(2 * wall / n - d)
            latency.append(median_duration(study) - d)
            bare.append(bare_dask(client, n, d))
        row = (d, *(statistics.median(x) for x in (thread, threads, slot, latency, bare)))
        rows.append(row)
        print(f"sleep {d}s: threads slot {row[2] * 1e3:.1f} ms, dask slot {row[3] * 1e3:.1f} ms", flush=True)

    load_after = os.getloadavg()[0]
    reports = []
    for label, scheduler in (("none", None), ("ASHA", ASHA(min_steps=1, grace=10**6))):
        per_report = []
        for runner, parallel in (("thread", 1), (client, 2)):
            costs = []
            for _ in range(repeats):
                silent = median_duration(run(reporter, 10, parallel, runner, scheduler=scheduler, steps=0)[1])
                full = median_duration(run(reporter, 10, parallel, runner, scheduler=scheduler, steps=20)[1])
                costs.append((full - silent) / 20)
            per_report.append(statistics.median(costs))
        reports.append((label, *per_report))
        print(f"reports, scheduler {label}: thread {per_report[0] * 1e3:.2f} ms, dask {per_report[1] * 1e3:.2f} ms")

    speed = []
    for label, objective in (("torch matmul (GIL released)", torch_work), ("pure Python (GIL held)", python_work)):
        units = calibrate(objective, 0.4)
        client.run(__import__, "torch")  # warm-up: torch imported on every worker
        k = max(8, n // 3)
        walls, cores = [], []  # cores: CPU seconds the trials got per wall second
        for runner, parallel in (("thread", 1), ("thread", 2), (client, 2)):
            wall, study = run(objective, k, parallel, runner, n=units)
            walls.append(wall)
            cores.append(sum(t.metrics["cpu"] for t in study.trials) / wall)
        one, two, dask_two = walls
        speed.append((label, k, one / k, one / two, one / dask_two, cores))
        print(f"{label}: threads x{one / two:.2f}, dask x{one / dask_two:.2f}, cores {cores}", flush=True)

    return rows, reports, speed, (load_before, load_after)


if __name__ == "__main__":  # spawned Dask workers re-import __main__ (spawn): nothing may run on import
    main()
