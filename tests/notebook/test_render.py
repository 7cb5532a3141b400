"""LivePlot's refresh budget: a plot spends a bounded share of the time, however fast trials finish."""

from __future__ import annotations

from nbautoml.notebook._render import LivePlot


def plot_built_at(t: float) -> LivePlot:
    plot = LivePlot("p", lambda study: {}, lambda data: None, lambda fig, data: 0, min_interval=1.0)
    plot.built_at = plot.last_refresh = t
    return plot


def test_a_dirty_plot_waits_its_min_interval_then_refreshes():
    plot = plot_built_at(100.0)
    assert not plot.due(100.5)  # within min_interval
    assert plot.due(101.0)
    plot.dirty = False
    assert not plot.due(500.0)  # nothing changed


def test_a_costly_refresh_spaces_out_the_next_and_the_total_stays_in_its_share():
    plot = plot_built_at(100.0)
    plot.cost = plot.spent = 0.02  # 20 ms: the next waits 2 s (1 %) ...
    plot.last_refresh = 101.0
    assert not plot.due(102.5)
    # ... and with 20 ms spent already, a second 20 ms refresh needs 40 ms / 0.5 % = 8 s since the build
    assert not plot.due(107.5)
    assert plot.due(108.0)
    plot.spent = 0.0  # had nothing been spent: 20 ms fits in 0.5 % of 4 s, and 4 s > the 2 s spacing
    assert not plot.due(103.0) and plot.due(104.0)
