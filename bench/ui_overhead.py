"""What the live panel costs a search: share of wall time spent in UI code, and widget messages per second.

A real Study (in memory, random sampler) runs 1000 trials of a trivial objective (5 reports each, optionally a
few ms of "training") while a real StudyPanel is attached, as in a notebook. Measured:

- UI time: CPU time inside the panel's event subscriber (worker thread) plus inside its flushes (pump
  thread). Share = UI CPU time of calls begun before StudyFinished / search wall time (until ``optimize``
  returns).
  Goal < 2 %. The final redraw the pump makes after the search has ended (every plot of the visible tab
  brought up to date) is measured apart, and a strict share that adds it to the search's cost as well.
  (Wall time inside the same code is reported too: on a loaded machine it includes waiting for the GIL.)
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
from nbautoml.events import StudyFinished
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
        self.bias = self._bias()

    def _bias(self, n: int = 20000) -> tuple[float, float]:
        """(wall, CPU) seconds the timing itself adds to one measured call: the median over runs of what the
        wrapper measures around a function that does nothing. Subtracted per call (timer calibration)."""
        runs = []
        for _ in range(5):
            self.calls = []
            noop = self.timed(lambda: None, "bias")
            for _ in range(n):
                noop()
            runs.append((sum(c[2] for c in self.calls) / n, sum(c[3] for c in self.calls) / n))
        self.calls = []
        return sorted(r[0] for r in runs)[2], sorted(r[1] for r in runs)[2]

    def reset(self) -> None:
        self.messages = 0
        self.calls: list[tuple[str, float, float, float]] = []  # (bucket, began, wall s, CPU s of its thread)

    def timed(self, function: Callable[..., Any], bucket: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.calls.append((bucket, start, time.perf_counter() - start, time.thread_time() - start_cpu))

        return wrapper

    def total(self, what: int, bucket: str | None = None, before: float | None = None) -> float:
        """Wall (what=2) or CPU (what=3) seconds of calls in ``bucket``, begun before ``before``, less the
        timing's own cost per call."""
        calls = [c for c in self.calls if (bucket is None or c[0] == bucket) and (before is None or c[1] < before)]
        return max(0.0, sum(c[what] for c in calls) - len(calls) * self.bias[what - 2])

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
    finished: list[float] = []  # when the last trial was done: subscribed before the panel's handler
    study.events.subscribe(lambda event: finished.append(time.perf_counter()), StudyFinished)
    panel._unsubscribe = study.events.subscribe(meter.timed(panel._on_event, "events"))
    panel.flush = meter.timed(panel.flush, "flush")  # type: ignore[method-assign]
    meter.reset()
    start, start_cpu = time.perf_counter(), time.process_time()
    study.optimize(objective, trials=trials, show=False)
    ended, cpu = time.perf_counter(), time.process_time() - start_cpu
    messages = meter.messages
    ended = min([ended, *finished])  # UI work begun after StudyFinished is the final redraw
    deadline = time.time() + 5
    while panel._pump_alive() and time.time() < deadline:  # the final redraw, after the search
        time.sleep(0.01)
    drained = time.perf_counter()
    result = {"wall": ended - start, "cpu": cpu, "ui_wall": meter.total(2, before=ended),
              "ui_cpu": meter.total(3, before=ended), "events_cpu": meter.total(3, "events", before=ended),
              "final_cpu": meter.total(3) - meter.total(3, before=ended), "all_cpu": meter.total(3),
              "strict_wall": drained - start, "messages": messages, "flushes": panel.flushes,
              "bias_us": 1e6 * meter.bias[1]}
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
                f"{100 * got['ui_wall'] / got['wall']:.2f} % | {1e3 * got['final_cpu']:.0f} ms | "
                f"{100 * got['all_cpu'] / got['strict_wall']:.2f} % | {got['flushes']} | "
                f"{got['messages']} | **{got['messages'] / got['wall']:.1f}** |"
            )
            print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    summary = []
    for work in args.work_ms:
        mine = [(tab, got) for w, tab, got in results if w == work]
        share = {TABS[tab]: 100 * got["ui_cpu"] / got["wall"] for tab, got in mine}
        strict = {TABS[tab]: 100 * got["all_cpu"] / got["strict_wall"] for tab, got in mine}
        over = [f"{name} {value:.1f} %" for name, value in share.items() if value >= 2.0]
        rate = max(got["messages"] / got["wall"] for _, got in mine)
        summary.append(
            f"- {work:g} ms of work per trial: UI share {min(share.values()):.2f}–{max(share.values()):.2f} % "
            f"({'over the 2 % goal: ' + ', '.join(over) if over else 'every tab under the 2 % goal'}); "
            f"strict share with the final redraw {min(strict.values()):.2f}–{max(strict.values()):.2f} %; "
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
        "| work/trial | visible tab | events | search wall, no panel (s) | search wall, panel (s) | UI CPU in the "
        "search (s): events + flushes | **UI CPU / search wall** | UI CPU / search CPU | UI wall / search wall | "
        "final redraw after the search (CPU) | strict: all UI CPU / wall incl. final redraw | flushes | "
        "widget msgs | msgs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *summary,
        "",
        "Each timed call is charged its CPU less the timing's own cost (two clock reads a side, calibrated on an "
        f"empty function: {max(got['bias_us'] for _, _, got in results):.2f} µs a call at most here; 7000 event "
        "calls a run).",
        "",
        "The 0 ms rows are a stress case (1000 trials in a few seconds). The final redraw runs on the panel's "
        "pump thread once the search has ended (``optimize`` has returned; the next cell already runs): it "
        "brings the visible plot up to date (parallel coordinates re-place every line, importance refits its "
        "trees: tens of ms with 1000 trials). The strict column charges it to the search anyway. UI CPU / search "
        "CPU compares with the process's CPU time during the search, which is small when trials mostly wait (the "
        "20 ms rows sleep), so that ratio overstates what a real, compute-bound search would notice.",
        "",
        "UI CPU = CPU time (`time.thread_time`) inside the panel's event subscriber (the study's worker "
        "thread) + its flushes (the pump thread, every 0.5 s), counting calls begun before the study's "
        "StudyFinished event (the last trial done); the goal's figure is UI CPU / search wall time. UI wall /"
        " wall counts wall time inside that code instead, which on a loaded machine includes waiting for the "
        "GIL and the CPU (an upper bound). Widget messages = calls of `ipywidgets.Widget._send`, one comm "
        "message each (a Bokeh stream/patch is 3 through jupyter_bokeh). Only the visible tab's content is "
        "updated; hidden plots catch up when their tab is selected. Each plot refreshes at most once a second"
        " and spends at most 1 % of the time (a refresh that took c seconds waits c / 0.01 s before the "
        "next). One-time costs are left out by a warm-up run: importing scikit-learn when the Importance tab "
        "is first shown costs 1–3 s of CPU once per kernel. Wall times with and without the panel are single "
        "runs on a shared machine: their difference is mostly noise; the UI share is measured directly.",
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
