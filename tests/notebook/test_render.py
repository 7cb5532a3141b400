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
    plot.cost = plot.spent = 0.02  # 20 ms for 400 trials: the next waits 2 s (1 %) ...
    plot.per_trial = 0.02 / 400
    plot.last_refresh = 101.0
    assert not plot.due(102.5, 400)
    # ... and with 20 ms spent already, a second one (400 trials: 20 ms) needs 40 ms / 0.5 % = 8 s since the build
    assert not plot.due(107.5, 400) and plot.due(108.0, 400)
    assert not plot.due(108.0, 800)  # twice the trials, twice the estimated cost: 60 ms needs 12 s
    plot.spent = 0.0  # had nothing been spent: 20 ms fits in 0.5 % of 4 s, and 4 s > the 2 s spacing
    assert not plot.due(103.0, 400) and plot.due(104.0, 400)


def test_the_first_refresh_of_a_fast_search_is_judged_by_the_trials_it_would_draw():
    plot = plot_built_at(100.0)  # built with nothing measured yet
    assert plot.due(101.0, 10)  # a few trials: cheap, refresh at the min interval
    assert not plot.due(101.0, 400)  # 400 trials a second after the build: ~20 ms > 0.5 % of 1 s
    assert plot.due(104.0, 400)
