"""Pieces of the study panel: the HTML it shows (pure functions of trials) and the search-space editor.

Text-like parts are single HTML widgets on purpose: one trait change is one comm message, so a leaderboard of 20
rows costs one message per update instead of one per cell.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from nbautoml.engine import direction
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.space import Choice, Dimension, Int, Real, Space, SpaceError

__all__ = ["SpaceEditor", "counts_html", "format_duration", "format_value", "header_html", "leaderboard_html",
           "summarize"]

STATE_BADGE = {
    "IDLE": "#7f7f7f", "RUNNING": "#ff7f0e", "STOPPING": "#d62728", "STOPPED": "#9467bd", "FINISHED": "#2ca02c",
}


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def badge(state: str) -> str:
    color = STATE_BADGE.get(state, "#7f7f7f")
    return (f'<span class="nbautoml-state" style="background:{color};color:white;border-radius:4px;'
            f'padding:1px 6px;font-size:90%">{html.escape(state)}</span>')


BAR_COLOR = {"FINISHED": "#2ca02c", "STOPPED": "#ff7f0e", "STOPPING": "#ff7f0e"}


def header_html(name: str, state: str, done: int, budget: int | None, elapsed: float, eta: float | None,
                running: Sequence[int], best: Trial | None, metric: str) -> str:
    """Name and state, a progress bar, "k / N trials", elapsed / ETA / running trials, and the best trial."""
    share = 1.0 if budget is None and done else (min(done / budget, 1.0) if budget else 0.0)
    bar = (f'<span class="nbautoml-bar" style="display:inline-block;width:240px;height:12px;background:#e6e6e6;'
           f'border-radius:3px;vertical-align:middle;overflow:hidden"><span style="display:block;height:100%;'
           f'width:{100 * share:.1f}%;background:{BAR_COLOR.get(state, "#1f77b4")}"></span></span>')
    count = f"{done} / {budget} trials" if budget is not None else f"{done} trials"
    timing = f"elapsed {format_duration(elapsed)}"
    if eta is not None:
        timing += f" · ETA {format_duration(eta)}"
    if running and state in ("RUNNING", "STOPPING"):
        timing += " · running #" + ", #".join(map(str, running[:4])) + ("…" if len(running) > 4 else "")
    if best is None:
        best_text = "<i>no complete trial yet</i>"
    else:
        params = ", ".join(f"{k}={format_value(v)}" for k, v in best.params.items())
        best_text = (f"best {html.escape(metric)} = <b>{format_value(best.value)}</b> (trial {best.number})"
                     f" · {params}")
    return (f'<div><b style="font-size:110%">{html.escape(name)}</b> {badge(state)}</div>'
            f'<div class="nbautoml-progress" style="margin:4px 0">{bar} <span class="nbautoml-count">{count}'
            f"</span> · {timing}</div>"
            f'<div class="nbautoml-best">{best_text}</div>')


def summarize(trials: Sequence[Trial], mode: str) -> tuple[int, list[int], Trial | None]:
    """Finished count, running trial numbers and the best complete trial, in one pass (the header's data)."""
    done, running, best, best_key = 0, [], None, math.inf
    for trial in trials:
        state = trial.state
        if state.finished:
            done += 1
            key = direction.rank_key(trial.value, mode)
            if state is TrialState.COMPLETE and key < best_key:
                best, best_key = trial, key
        elif state is TrialState.RUNNING:
            running.append(trial.number)
    return done, running, best


def ranked(trials: Sequence[Trial], mode: str) -> list[Trial]:
    """Complete trials with a finite value, best first."""
    complete = sorted((t for t in trials if t.state is TrialState.COMPLETE), key=lambda t: t.number)
    return direction.ranked(complete, mode, lambda t: t.value)


TABLE_CSS = (
    ".nbautoml-leaderboard{border-collapse:collapse;font-size:90%;margin-top:4px}"
    ".nbautoml-leaderboard th,.nbautoml-leaderboard td{padding:2px 10px;text-align:right;"
    "border-bottom:1px solid #e0e0e0}"
    ".nbautoml-leaderboard tbody tr:first-child{font-weight:bold}"
)


def leaderboard_html(trials: Sequence[Trial], metric: str, mode: str, top: int = 20) -> str:
    """The ``top`` complete trials as an HTML table: rank, trial, value, each param, steps, duration."""
    best = ranked(trials, mode)[:top]
    if not best:
        return '<div class="nbautoml-leaderboard"><i>no complete trial yet</i></div>'
    names: list[str] = []
    for trial in best:
        names += [n for n in trial.params if n not in names]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["#", "trial", metric, *names, "steps", "time"])
    rows = []
    for rank, trial in enumerate(best, 1):
        cells = [str(rank), str(trial.number), format_value(trial.value)]
        cells += [format_value(trial.params[n]) if n in trial.params else "" for n in names]
        cells += [str(len(trial.reports)), format_duration(trial.duration)]
        rows.append('<tr class="nbautoml-row">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        f"<style>{TABLE_CSS}</style>"
        '<table class="nbautoml-leaderboard">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def counts_html(trials: Sequence[Trial], reasons: int = 3) -> str:
    """How many trials are in each state; for pruned, failed and interrupted ones their commonest reasons."""
    states = Counter(t.state.value for t in trials)
    parts = [f"{state.lower()} <b>{states[state]}</b>" for state in
             ("COMPLETE", "RUNNING", "PRUNED", "FAILED", "INTERRUPTED") if states[state]]
    lines = [" · ".join(parts) if parts else "no trials yet"]
    rerun = {t.resumed_from for t in trials if t.resumed_from is not None}
    for state in (TrialState.PRUNED, TrialState.FAILED, TrialState.INTERRUPTED):
        mine = [t for t in trials if t.state is state]
        why = Counter(t.reason or "no reason given" for t in mine)
        for reason, count in why.most_common(reasons):
            lines.append(f"{state.value.lower()} ×{count}: {html.escape(reason[:160])}")
        if state is TrialState.INTERRUPTED and mine:
            waiting = sum(1 for t in mine if t.number not in rerun)
            lines.append(f"interrupted: {len(mine) - waiting} re-run, {waiting} to re-run on resume")
    return '<div class="nbautoml-counts">' + "<br>".join(lines) + "</div>"


# ---- the search-space editor ---------------------------------------------------------------------------
class _BoundedRow:
    """A Real or Int dimension: a range slider (over log10 of the value for a log Real) and a log toggle."""

    def __init__(self, name: str, dim: Real | Int) -> None:
        self.name, self.kind = name, dim.kind
        self.log = widgets.ToggleButton(value=bool(dim.log), description="log", layout=widgets.Layout(width="52px"))
        self.readout = widgets.HTML()
        self.box = widgets.HBox(layout=widgets.Layout(align_items="center"))
        self._build(float(dim.low), float(dim.high))
        self.log.observe(self._toggle, names="value")

    def _build(self, low: float, high: float) -> None:
        span = high - low
        if self.kind == "int":
            start = int(low - span) if low - span >= 0 or low < 0 else 0
            start = max(start, 1) if self.log.value else start
            self.slider: Any = widgets.IntRangeSlider(
                value=(int(low), int(high)), min=start, max=int(high + span) + 1, description=self.name,
                continuous_update=False, layout=widgets.Layout(width="460px"))
        elif self.log.value:
            a, b = math.log10(low), math.log10(high)
            self.slider = widgets.FloatRangeSlider(
                value=(a, b), min=math.floor(a) - 1, max=math.ceil(b) + 1, step=0.05, description=self.name,
                readout=False, continuous_update=False, layout=widgets.Layout(width="460px"))
        else:
            lo = low - span if low - span >= 0 or low < 0 else 0.0
            self.slider = widgets.FloatRangeSlider(
                value=(low, high), min=lo, max=high + span, step=span / 200, description=self.name,
                readout_format=".3g", continuous_update=False, layout=widgets.Layout(width="460px"))
        self.slider.observe(lambda _change: self._show(), names="value")
        self.box.children = (self.slider, self.log, self.readout)
        self._show()

    def bounds(self) -> tuple[float, float]:
        low, high = self.slider.value
        if self.kind == "real" and self.log.value:
            return 10.0**low, 10.0**high
        return low, high

    def _show(self) -> None:
        low, high = self.bounds()
        self.readout.value = f"[{format_value(low)}, {format_value(high)}]{' log' if self.log.value else ''}"

    def _toggle(self, change: dict[str, Any]) -> None:
        if self.kind == "int":
            low, high = self.slider.value
            if change["new"] and low < 1:
                self.slider.value = (1, max(high, 2))
            self._show()
            return
        low, high = (10.0 ** v for v in self.slider.value) if change["old"] else self.slider.value
        if change["new"] and low <= 0:
            low = high / 1000 if high > 0 else 1e-3
            high = max(high, low * 10)
        self._build(float(low), float(high))

    def dimension(self) -> Dimension:
        low, high = self.bounds()
        if self.kind == "int":
            return Int(int(low), int(high), log=bool(self.log.value))
        return Real(float(f"{low:.6g}"), float(f"{high:.6g}"), log=bool(self.log.value))


class _ChoiceRow:
    """A Choice dimension: its options as an editable JSON list (exact: ``64`` and ``"64"`` differ)."""

    def __init__(self, name: str, dim: Choice) -> None:
        self.name = name
        self.text = widgets.Text(value=json.dumps(dim.options), description=name, layout=widgets.Layout(width="460px"))
        self.box = widgets.HBox([self.text, widgets.HTML("<small>JSON list of options</small>")])

    def dimension(self) -> Dimension:
        try:
            options = json.loads(self.text.value)
        except json.JSONDecodeError as error:
            raise SpaceError(f"parameter {self.name!r}: options must be a JSON list like [64, 128] ({error})") from None
        if not isinstance(options, list):
            raise SpaceError(f"parameter {self.name!r}: options must be a JSON list like [64, 128]")
        return Choice(options)


class SpaceEditor(widgets.VBox):
    """One row per dimension of a space; :meth:`space` reads the edited Space back (SpaceError when invalid)."""

    def __init__(self, space: Space | None) -> None:
        super().__init__()
        self.add_class("nbautoml-space-editor")
        self.rows: list[_BoundedRow | _ChoiceRow] = []
        self.load(space)

    def load(self, space: Space | None) -> None:
        self.rows = []
        for name, dim in (space or {}).items():
            self.rows.append(_ChoiceRow(name, dim) if isinstance(dim, Choice) else _BoundedRow(name, dim))  # type: ignore[arg-type]
        if not self.rows:
            self.children = (widgets.HTML("<i>no search space yet</i>"),)
        else:
            self.children = tuple(row.box for row in self.rows)

    def space(self) -> Space:
        return Space({row.name: row.dimension() for row in self.rows})
