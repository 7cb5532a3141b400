"""What the live panel costs a search: share of wall time spent in UI code, and widget messages per second.

A real Study (in memory, random sampler) runs 1000 trials of a trivial objective (5 reports each, optionally a
few ms of "training") while a real StudyPanel is attached, as in a notebook. Measured:

- UI time: CPU time inside the panel's event subscriber (worker thread) plus inside its flushes (pump
  thread). Share = UI CPU time / search wall time. Goal < 2 %. (Wall time inside the same code is reported
  too: on a loaded machine it includes waiting for the GIL and a core.)
- Widget messages: every ``ipywidgets.Widget._send`` (one comm message each; a Bokeh change is three through
  jupyter_bokeh), per second of search. Goal <= 10/s.
- Wall time against the same search with no panel (noisy on a shared machine; the instrumented share is the
  steadier figure).

Usage: ``python bench/ui_overhead.py [--trials 1000] [--out bench/results/ui_overhead.md]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NBAUTOML_QUIET", "1")

import ipywidgets

from nbautoml import Study
from nbautoml.engine.trial import Trial
from nbautoml.notebook.panel import StudyPanel
from nbautoml.space import Choice, Int, Real, Space

TABS = {0: "Leaderboard", 1: "History", 2: "Learning curves", 3: "Parallel coordinates", 4: "Importance"}


def make_study(name: str) -> Study:
    space = Space(lr=Real(1e-4, 1e-1, log=True), layers=Int(1, 4), units=Choice([32, 64, 128]), dropout=Real(0, 0.5))
    return Study(name, space, storage=":memory:", sampler="random", seed=0)


def objective_for(work_ms: float, steps: int) -> Callable[[Trial], float]:
    def objective(trial: Trial) -> float:
        loss = 1.0 + trial.params["dropout"]
        for step in range(steps):
            if work_ms:
                time.sleep(work_ms / 1000 / steps)
            loss *= 0.9
            trial.report(step, value=loss)
        return loss

    return objective


class Meter:
    """Counts widget messages and times the panel's subscriber and flush."""

    def __init__(self) -> None:
        self.messages = 0
        self.reset()
        self._send = ipywidgets.Widget._send
        meter = self

        def counting_send(widget: Any, msg: Any, buffers: Any = None) -> None:
            meter.messages += 1
            meter._send(widget, msg, buffers)

        ipywidgets.Widget._send = counting_send

    def reset(self) -> None:
        self.messages = 0
        self.wall = {"events": 0.0, "flush": 0.0}  # wall seconds inside the UI code (includes GIL waits)
        self.cpu = {"events": 0.0, "flush": 0.0}  # CPU seconds of the thread running it

    def timed(self, function: Callable[..., Any], bucket: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall[bucket] += time.perf_counter() - start
                self.cpu[bucket] += time.thread_time() - start_cpu

        return wrapper

    def close(self) -> None:
        ipywidgets.Widget._send = self._send


def run(trials: int, steps: int, work_ms: float, tab: int | None) -> dict[str, Any]:
    """One search; ``tab=None`` runs it with no panel at all (the baseline)."""
    study = make_study(f"bench-{tab}-{work_ms}")
    objective = objective_for(work_ms, steps)
    if tab is None:
        start = time.perf_counter()
        study.optimize(objective, trials=trials, show=False)
        return {"wall": time.perf_counter() - start}
    meter = Meter()
    panel = StudyPanel(study)  # a real panel: widgets with comms, Bokeh documents, the pump thread
    panel.tabs.selected_index = tab
    # Time the panel's own code: the event subscriber (re-subscribed wrapped) and every flush.
    panel._unsubscribe()
    panel._unsubscribe = study.events.subscribe(meter.timed(panel._on_event, "events"))
    panel.flush = meter.timed(panel.flush, "flush")  # type: ignore[method-assign]
    meter.reset()
    start, start_cpu = time.perf_counter(), time.process_time()
    study.optimize(objective, trials=trials, show=False)
    deadline = time.time() + 5
    while panel._pump_alive() and time.time() < deadline:  # the final flush belongs to the search's cost
        time.sleep(0.01)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    result = {"wall": wall, "cpu": cpu, "ui_wall": sum(meter.wall.values()), "ui_cpu": sum(meter.cpu.values()),
              "events_cpu": meter.cpu["events"], "messages": meter.messages, "flushes": panel.flushes}
    meter.close()
    panel.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--work-ms", type=float, nargs="+", default=[0.0, 20.0])
    parser.add_argument("--tabs", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ui_overhead.md")
    args = parser.parse_args()

    for tab in args.tabs:  # warm-up: one-time imports (scikit-learn for Importance), first serialisations
        run(50, args.steps, 0.0, tab)
    rows: list[str] = []
    results: list[tuple[float, int, dict[str, Any]]] = []
    for work in args.work_ms:
        base = run(args.trials, args.steps, work, None)
        for tab in args.tabs:
            got = run(args.trials, args.steps, work, tab)
            results.append((work, tab, got))
            events = args.trials * (args.steps + 2)
            rows.append(
                f"| {work:g} ms | {TABS[tab]} | {events} | {base['wall']:.2f} | {got['wall']:.2f} | "
                f"{got['ui_cpu']:.3f} ({got['events_cpu']:.3f} + {got['ui_cpu'] - got['events_cpu']:.3f}) | "
                f"**{100 * got['ui_cpu'] / got['wall']:.2f} %** | {100 * got['ui_cpu'] / got['cpu']:.2f} % | "
                f"{100 * got['ui_wall'] / got['wall']:.2f} % | {got['flushes']} | "
                f"{got['messages']} | **{got['messages'] / got['wall']:.1f}** |"
            )
            print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    summary = []
    for work in args.work_ms:
        mine = [(tab, got) for w, tab, got in results if w == work]
        share = {TABS[tab]: 100 * got["ui_cpu"] / got["wall"] for tab, got in mine}
        over = [f"{name} {value:.1f} %" for name, value in share.items() if value >= 2.0]
        rate = max(got["messages"] / got["wall"] for _, got in mine)
        summary.append(
            f"- {work:g} ms of work per trial: UI share {min(share.values()):.2f}–{max(share.values()):.2f} % "
            f"({'over the 2 % goal: ' + ', '.join(over) if over else 'every tab under the 2 % goal'}); "
            f"at most {rate:.1f} widget messages/s."
        )
    text = "\n".join([
        "# UI overhead of the live panel",
        "",
        f"`python bench/ui_overhead.py --trials {args.trials}`: {args.trials} trials × ({args.steps} reports "
        f"+ start + finish) events into a real `StudyPanel` (in-memory study, random sampler). Machine: "
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"load average {load:.1f} when run. Goals: UI share < 2 %, <= 10 widget messages/s.",
        "",
        "| work/trial | visible tab | events | wall, no panel (s) | wall, panel (s) | UI CPU (s): events + "
        "flushes | UI CPU / wall | UI CPU / search CPU | UI wall / wall | flushes | widget msgs | msgs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *summary,
        "",
        "The 0 ms rows are a stress case (1000 trials in about ten seconds): there the cost of the plot tabs is "
        "mostly their forced full redraw when the search ends plus one refresh mid-way (parallel coordinates "
        "re-place every line, importance refits its trees: ~0.1 s of CPU each with 1000 trials). UI CPU / search "
        "CPU compares with the process's CPU time during the search, which is small when trials mostly wait (the "
        "20 ms rows sleep), so that ratio overstates what a real, compute-bound search would notice.",
        "",
        "UI CPU = CPU time (`time.thread_time`) inside the panel's event subscriber (the study's worker thread) "
        "+ its flushes (the pump thread, every 0.5 s and at the end); the goal's figure is UI CPU / search wall "
        "time. UI wall / wall counts wall time inside that code instead, which on a loaded machine includes "
        "waiting for the GIL and the CPU (an upper bound). Widget messages = calls of `ipywidgets.Widget._send`, one "
        "comm message each (a Bokeh stream/patch is 3 through jupyter_bokeh). Only the visible tab's content is "
        "updated; hidden plots catch up when their tab is selected. Each plot refreshes at most once a second and "
        "spends at most 1 % of the time (a refresh that took c seconds waits c / 0.01 s before the next). "
        "One-time costs are left out by a warm-up run: importing scikit-learn when the Importance tab is first "
        "shown costs 1–3 s of CPU once per kernel. Wall times with and without the panel are "
        "single runs on a shared machine: their difference is mostly noise; the UI share is measured directly.",
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
