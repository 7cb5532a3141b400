"""Bokeh renderers for :mod:`nbautoml.notebook.plots`' data, and the smallest-change update of a live plot.

A figure is built once from its data; later data reaches it through :func:`sync_source`, which streams appended
rows, patches changed rows, and only replaces the whole source when most of it changed. Each Bokeh change is one
PATCH-DOC (three comm messages through jupyter_bokeh), so the panel calls these at most a few times a second
and only for the visible plot (:class:`LivePlot`). Sources are found by name (``fig.select_one``) because Bokeh
models take no ad-hoc attributes.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from bokeh.models import (
    ColumnDataSource,
    FactorRange,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.models.annotations import Legend, LegendItem
from bokeh.palettes import Viridis256
from bokeh.plotting import figure
from bokeh.resources import Resources
from jupyter_bokeh.widgets import BokehModel

__all__ = [
    "LivePlot",
    "bokeh_resources",
    "curves_figure",
    "history_figure",
    "importance_figure",
    "parallel_figure",
    "sync_source",
    "update_curves",
    "update_history",
    "update_importance",
    "update_parallel",
]

WIDTH, HEIGHT = 720, 340
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def bokeh_resources() -> Resources:
    """BokehJS inline (no network) for ``output_notebook``: core and widgets, 1.65 MB in the notebook, not INLINE's
    3.9 (the widgets bundle, 0.38 MB, draws the blocking run's Stop button). No tables, WebGL or MathJax.
    (``file_html`` trims INLINE by itself and refuses a pre-trimmed set, so the static report passes INLINE.)
    """
    return Resources(mode="inline", components=["bokeh", "bokeh-widgets"])


# ---- smallest-change updates ---------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if hasattr(a, "tolist"):
        a = a.tolist()
    if hasattr(b, "tolist"):
        b = b.tolist()
    return bool(a == b)


def sync_source(source: ColumnDataSource, new: dict[str, list[Any]]) -> int:
    """Bring ``source`` to ``new`` with the fewest document events; returns how many it caused.

    Appended rows are streamed (every column given, as Bokeh requires), changed rows patched; when the columns
    differ, rows disappear, or more than half the rows changed, the data is replaced at once.
    """
    old = source.data
    keys = list(new)
    if set(old) != set(keys):
        source.data = {k: list(v) for k, v in new.items()}
        return 1
    n_old = len(old[keys[0]]) if keys else 0
    n_new = len(new[keys[0]]) if keys else 0
    if n_new < n_old:
        source.data = {k: list(v) for k, v in new.items()}
        return 1
    patches: dict[str, list[tuple[int, Any]]] = {}
    rows: set[int] = set()
    for key in keys:
        before, after = old[key], new[key]
        if not isinstance(before, list):
            before = before.tolist() if hasattr(before, "tolist") else list(before)
        head = after[:n_old]
        if before == head:  # the common case, compared in C
            continue
        changed = [(i, b) for i, (a, b) in enumerate(zip(before, head, strict=True)) if not _same(a, b)]
        if changed:
            patches[key] = changed
            rows.update(i for i, _ in changed)
    if len(rows) > max(4, n_old // 2):
        source.data = {k: list(v) for k, v in new.items()}
        return 1
    events = 0
    if patches:
        source.patch(patches)
        events += 1
    if n_new > n_old:
        source.stream({k: list(new[k][n_old:]) for k in keys})
        events += 1
    return events


Columns = dict[str, list[Any]]


def _as_data(columns: Columns) -> Any:
    """Fresh lists for a ColumnDataSource (typed Any: Bokeh's stubs want an invariant dict of Sequences)."""
    return {k: list(v) for k, v in columns.items()}


_sources: weakref.WeakValueDictionary[tuple[str, str], ColumnDataSource] = weakref.WeakValueDictionary()


def _named(fig: Any, name: str, columns: dict[str, list[Any]]) -> ColumnDataSource:
    """A new source for ``fig`` (fresh lists), remembered under its name for :func:`_source`."""
    source = ColumnDataSource(data=_as_data(columns), name=name)
    _sources[(fig.id, name)] = source
    return source


def _source(fig: Any, name: str) -> ColumnDataSource:
    """A figure's source by name: remembered at creation, because ``select_one`` walks the whole model graph,
    data included (~50 ms with 1000 trials)."""
    key = (fig.id, name)
    source = _sources.get(key)
    if source is None:
        source = fig.select_one({"name": name})
        _sources[key] = source
    return source


def _set(model: Any, attr: str, value: Any) -> int:
    """Set a property only when it changes (each set is a document event, i.e. comm messages)."""
    if getattr(model, attr) != value:
        setattr(model, attr, value)
        return 1
    return 0


# ---- optimisation history ------------------------------------------------------------------------------
def history_figure(data: dict[str, Any]) -> Any:
    metric = data["metric"]
    fig = figure(title=f"Optimisation history: {metric} ({data['mode']})", x_axis_label="trial",
                 y_axis_label=metric, width=WIDTH, height=HEIGHT, tools=TOOLS, name="history_figure")
    source = _named(fig, "history", data["columns"])
    dots: Any = fig.scatter("number", "value", source=source, size=7, alpha=0.7)
    best: Any = fig.step("number", "best", source=source, mode="after", line_width=2, color="#d62728")
    fig.add_tools(HoverTool(renderers=[dots], tooltips=[("trial", "@number"), (metric, "@value{0.0000}")]))
    legend = Legend(items=[LegendItem(label="trial value", renderers=[dots]),
                           LegendItem(label="best so far", renderers=[best])], click_policy="hide",
                    location="top_left")
    fig.add_layout(legend, "right")  # outside the plot: it never hides a point
    return fig


def update_history(fig: Any, data: dict[str, Any]) -> int:
    return sync_source(_source(fig, "history"), data["columns"])


# ---- learning curves -----------------------------------------------------------------------------------
def curves_figure(data: dict[str, Any]) -> Any:
    metric = data["metric"]
    fig = figure(title=f"Learning curves: {metric}", x_axis_label="step", y_axis_label=metric,
                 width=WIDTH, height=HEIGHT, tools=TOOLS, name="curves_figure")
    source = _named(fig, "curves", data["columns"])
    lines = fig.multi_line("xs", "ys", source=source, line_color="color", line_alpha="alpha", line_width=1.6)
    fig.add_tools(HoverTool(renderers=[lines], tooltips=[("trial", "@number"), ("state", "@state")]))
    return fig


def update_curves(fig: Any, data: dict[str, Any]) -> int:
    metric = data["metric"]
    events = _set(fig.title, "text", f"Learning curves: {metric}")
    events += sum(_set(axis, "axis_label", metric) for axis in fig.yaxis)
    return events + sync_source(_source(fig, "curves"), data["columns"])


# ---- parallel coordinates ------------------------------------------------------------------------------


def _axes_columns(axes: list[dict[str, Any]]) -> tuple[Columns, Columns, Columns]:
    spine: Columns = {"x": [], "y0": [], "y1": []}
    ticks: Columns = {"x": [], "y": [], "text": []}
    names: Columns = {"x": [], "y": [], "text": []}
    for i, axis in enumerate(axes):
        spine["x"].append(i)
        spine["y0"].append(0.0)
        spine["y1"].append(1.0)
        suffix = " (log)" if axis["kind"] == "log" else ""
        names["x"].append(i)
        names["y"].append(1.06)
        names["text"].append(axis["name"] + suffix)
        for pos, label in zip(axis["ticks"], axis["labels"], strict=True):
            ticks["x"].append(i)
            ticks["y"].append(pos)
            ticks["text"].append(label)
    return spine, ticks, names


def _line_columns(data: dict[str, Any]) -> dict[str, list[Any]]:
    columns = {k: list(v) for k, v in data["columns"].items()}
    columns["norm"] = [ys[-1] for ys in columns["ys"]]  # the objective axis position colours the line
    return columns


def parallel_figure(data: dict[str, Any]) -> Any:
    axes = data["axes"]
    fig = figure(title="Parallel coordinates (colour: objective, bright = better)", width=WIDTH, height=HEIGHT,
                 x_range=Range1d(start=-0.4, end=max(len(axes) - 1, 1) + 0.6), y_range=Range1d(start=-0.08, end=1.14),
                 tools="reset,save", name="parallel_figure")
    fig.xaxis.visible = False
    fig.yaxis.visible = False
    fig.grid.visible = False
    spine, ticks, names = _axes_columns(axes)
    palette = list(Viridis256) if data.get("mode", "min") == "max" else list(reversed(Viridis256))
    mapper = LinearColorMapper(palette=palette, low=0.0, high=1.0)
    lines = _named(fig, "lines", _line_columns(data))
    drawn = fig.multi_line("xs", "ys", source=lines, line_color={"field": "norm", "transform": mapper},
                           line_alpha=0.7, line_width=1.5)
    fig.segment(x0="x", y0="y0", x1="x", y1="y1", source=_named(fig, "spines", spine),
                line_color="#444444", line_width=1.5)
    fig.text(x="x", y="y", text="text", source=_named(fig, "ticks", ticks),
             text_font_size="8pt", text_align="left", text_baseline="middle", x_offset=4, text_color="#333333")
    fig.text(x="x", y="y", text="text", source=_named(fig, "names", names),
             text_font_size="9pt", text_align="center", text_baseline="bottom", text_font_style="bold")
    fig.add_tools(HoverTool(renderers=[drawn], tooltips=[("trial", "@number"), ("value", "@value{0.0000}")]))
    return fig


def update_parallel(fig: Any, data: dict[str, Any]) -> int:
    spine, ticks, names = _axes_columns(data["axes"])
    events = sync_source(_source(fig, "spines"), spine)
    events += sync_source(_source(fig, "ticks"), ticks)
    events += sync_source(_source(fig, "names"), names)
    events += _set(fig.x_range, "end", max(len(data["axes"]) - 1, 1) + 0.6)
    return events + sync_source(_source(fig, "lines"), _line_columns(data))


# ---- parameter importance ------------------------------------------------------------------------------
def _importance_title(data: dict[str, Any]) -> str:
    base = f"Parameter importance (extra trees, {data['n_trials']} trials)"
    return f"{base}: {data['note']}" if data["note"] else base


def importance_figure(data: dict[str, Any]) -> Any:
    names = list(data["columns"]["name"])
    fig = figure(title=_importance_title(data), y_range=FactorRange(factors=list(reversed(names))),
                 x_range=Range1d(start=0.0, end=1.0), x_axis_label="share of impurity decrease", width=WIDTH,
                 height=HEIGHT, tools="save", name="importance_figure")
    source = _named(fig, "importance", data["columns"])
    fig.hbar(y="name", right="importance", height=0.6, source=source, color="#1f77b4")
    return fig


def update_importance(fig: Any, data: dict[str, Any]) -> int:
    events = _set(fig.title, "text", _importance_title(data))
    events += _set(fig.y_range, "factors", list(reversed(data["columns"]["name"])))
    return events + sync_source(_source(fig, "importance"), data["columns"])


# ---- a plot inside the live panel ----------------------------------------------------------------------
class _BokehWidget(BokehModel):
    """jupyter_bokeh's BokehModel whose ``close`` may run twice (``Widget.__del__`` closes again at exit)."""

    def close(self) -> None:
        with contextlib.suppress(KeyError):  # already removed from the document's callbacks
            super().close()


class LivePlot:
    """One plot of the panel: its data function, figure, BokehModel widget and the lock of its document.

    ``refresh`` may run on the panel's flush thread or on the kernel's main thread (a tab switch): the lock
    makes each document's changes one at a time. ``min_interval`` spaces out costly data (the forest fit).
    Two budgets keep a fast search from paying for its plot: a refresh costing c waits c / BUDGET before the
    next, and live refreshes may spend at most SHARE of the time since the plot was built. The second judges
    the next refresh before it runs: its cost grows with the trials drawn, so it is estimated per trial (from
    the last refresh once that drew ROWS_KNOWN trials, else PER_TRIAL). In a 1000-trial search that finishes
    in 2.5 s this is what holds a plot to its share (bench/ui_overhead.py); in ordinary searches it never bites.
    """

    BUDGET = 0.01  # a plot may take this share of the time: a refresh costing c waits c / BUDGET before the next
    SHARE = 0.005  # ... and all its live refreshes together at most this share of the time since it was built
    PER_TRIAL = 5e-5  # seconds a refresh costs per trial drawn, until measured (curves and parallel coordinates)
    ROWS_KNOWN = 20

    def __init__(
        self,
        title: str,
        data_fn: Callable[[Any], dict[str, Any]],
        figure_fn: Callable[[dict[str, Any]], Any],
        update_fn: Callable[[Any, dict[str, Any]], int],
        min_interval: float = 0.0,
    ) -> None:
        self.title = title
        self.data_fn, self.figure_fn, self.update_fn = data_fn, figure_fn, update_fn
        self.min_interval = min_interval
        self.lock = threading.Lock()
        self.figure: Any = None
        self.widget: Any = None
        self.dirty = True
        self.last_refresh = 0.0
        self.cost = 0.0  # seconds the last refresh took
        self.spent = 0.0  # seconds all live refreshes took
        self.per_trial = self.PER_TRIAL
        self.built_at = time.monotonic()
        self.events = 0  # document events caused, for the benchmark
        self.prepare: Callable[[Any], Any] | None = None  # given the figure before its widget is made

    def build(self, study: Any) -> Any:
        """The BokehModel widget drawing this plot's first data."""
        self.dirty = False
        with self.lock:
            self.figure = self.figure_fn(self.data_fn(study))
            if self.prepare is not None:
                self.prepare(self.figure)
            self.widget = _BokehWidget(self.figure)
            self.last_refresh = self.built_at = time.monotonic()
        return self.widget

    def due(self, now: float, trials: int = 0) -> bool:
        """Whether a live refresh may run now, with ``trials`` in the study."""
        return (self.dirty and now - self.last_refresh >= max(self.min_interval, self.cost / self.BUDGET)
                and self.spent + self.per_trial * trials <= self.SHARE * (now - self.built_at))

    def refresh(self, study: Any) -> None:
        if self.figure is None:
            return
        self.dirty = False  # before reading: a change that lands meanwhile marks it dirty again
        start = time.perf_counter()
        data = self.data_fn(study)  # outside the lock: reads the study, touches no document
        with self.lock:
            self.events += self.update_fn(self.figure, data)
            self.last_refresh = time.monotonic()
        self.cost = time.perf_counter() - start
        self.spent += self.cost
        drawn = len(study.trials)
        if drawn >= self.ROWS_KNOWN:
            self.per_trial = self.cost / drawn
