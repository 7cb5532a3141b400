"""The whole front end in a real JupyterLab in Chromium: ``%%automl`` on a small torch model, the live panel,
its Bokeh plot, Stop / Resume, and the kernel's interrupt button stopping a blocking search.

The notebooks are written by the tests (nbformat) into the server's temporary root. Cells run through
JupyterLab's own commands (``window.jupyterapp``); buttons are found by their CSS classes, never by text that
also appears in a cell. Screenshots go to tests/browser/screenshots/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).parent / "screenshots"
Lab = Any  # conftest.Lab: root, port, token, url(notebook, workspace)

SETUP = """\
import time
import torch
torch.set_num_threads(1)
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X, y = X[:360], y[:360]
%load_ext nbautoml"""

SEARCH = """\
%%automl --name {name} --trials 6 {flags} --sampler random --seed 0
time.sleep(1.0)  # keeps each trial on screen a moment
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 2), units=hp.choice("units", [16, 32]))
nbautoml.torch.train(model, (X, y), lr=hp.float("lr", 1e-3, 1e-1, log=True), epochs=8, batch_size=32, seed=0)"""

REPORT = """\
print("REPORT", study.state, study.n_finished, sorted({t.state.value for t in study.trials}))"""


def shot(page: Any, name: str) -> Path:
    """A screenshot in tests/browser/screenshots/ (git-ignored), for a person to look at."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def write_notebook(lab: Lab, filename: str, cells: list[str]) -> str:
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(book, str(lab.root / filename))
    return filename


def open_and_run_all(page: Any, lab: Lab, filename: str) -> None:
    page.goto(lab.url(filename, workspace=filename.replace(".", "-")))
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
    with contextlib.suppress(Exception):  # "Select Kernel" appears for some notebooks: take the default
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=8_000)
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   return w && w.sessionContext && w.sessionContext.session
                          && w.sessionContext.session.kernel && w.content && w.content.widgets.length > 0; }""",
        timeout=90_000,
    )
    # not awaited: the command's promise resolves only when every cell has run
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def wait_until(page: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            shot(page, f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        page.wait_for_timeout(200)


def finished_count(page: Any) -> int | None:
    """The panel's "k / N trials" label, or None before the panel shows."""
    label = page.locator(".nbautoml-count")
    if label.count() == 0:
        return None
    match = re.match(r"\s*(\d+)", label.first.inner_text())
    return int(match.group(1)) if match else None


def panel_state(page: Any) -> str:
    badge = page.locator(".nbautoml-panel .nbautoml-state")
    return badge.first.inner_text().strip() if badge.count() else ""


def test_panel_streams_plots_stops_and_resumes(lab: Lab, page: Any) -> None:
    name = write_notebook(lab, "panel.ipynb", [SETUP, SEARCH.format(name="lab", flags="--background"), REPORT])
    open_and_run_all(page, lab, name)

    wait_until(page, lambda: (finished_count(page) or 0) >= 1, 240, "the first finished trial")
    first = finished_count(page)
    assert first is not None and first < 6, "the search should still be running"
    wait_until(page, lambda: (finished_count(page) or 0) > first, 120, "the progress label to advance")
    shot(page, "1-running")

    page.locator(".nbautoml-tabs .lm-TabBar-tab").nth(1).click()  # the optimisation history
    wait_until(page, lambda: page.locator(".nbautoml-tabs .bk-Canvas >> visible=true").count() > 0, 60,
               "a Bokeh canvas")
    assert page.locator(".nbautoml-tabs canvas").count() > 0
    assert page.get_by_text("Could not create a view").count() == 0
    assert not [m for m in page.console_messages if "cdn.bokeh.org" in m]
    shot(page, "2-history-plot")

    if (finished_count(page) or 0) >= 6:
        pytest.fail("the search finished before Stop could be tried: make the trials slower")
    page.locator("button.nbautoml-stop").click()
    wait_until(page, lambda: panel_state(page) == "STOPPED", 120, "the panel to show STOPPED")
    page.locator(".nbautoml-tabs .lm-TabBar-tab").nth(0).click()  # the leaderboard and counts
    wait_until(page, lambda: "interrupted" in page.locator(".nbautoml-counts").first.inner_text(), 30,
               "an INTERRUPTED trial in the counts")
    stopped_at = finished_count(page)
    assert stopped_at is not None and stopped_at < 6
    shot(page, "3-stopped")

    page.locator("button.nbautoml-resume").click()
    wait_until(page, lambda: finished_count(page) == 6 and panel_state(page) == "FINISHED", 300,
               "6 / 6 trials after Resume")
    counts = page.locator(".nbautoml-panel .nbautoml-counts").first.inner_text()
    complete = re.search(r"complete (\d+)", counts)
    assert complete, counts  # the default scheduler may prune some: the leaderboard ranks the complete ones
    assert page.locator(".nbautoml-panel .nbautoml-leaderboard .nbautoml-row").count() == int(complete.group(1))
    shot(page, "4-resumed-finished")

    tabs = page.locator(".nbautoml-tabs .lm-TabBar-tab")
    for index, label in ((2, "curves"), (3, "parallel"), (4, "importance")):
        tabs.nth(index).click()
        page.wait_for_timeout(1500)  # the tab's plot catches up on selection
        assert page.locator(".nbautoml-tabs .bk-Canvas >> visible=true").count() > 0, label
        shot(page, f"{index + 3}-{label}")
    tabs.nth(5).click()
    assert page.locator(".nbautoml-space-editor .widget-slider").count() >= 1  # the lr range slider
    shot(page, "8-space-editor")
    assert page.get_by_text("Could not create a view").count() == 0


BLOCKING = """\
%%automl --name {name} --trials 14 --sampler random --seed 0
time.sleep(0.8)  # keeps each trial on screen a moment
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 2), units=hp.choice("units", [16, 32]))
nbautoml.torch.train(model, (X, y), lr=hp.float("lr", 1e-3, 1e-1, log=True), epochs=8, batch_size=32, seed=0)"""

AFTER = """print("AFTER", study.state, study.n_finished)"""

# Rows of each live plot's ColumnDataSource, read from BokehJS in the page (every document it has rendered).
BOKEH_ROWS = """() => {
  const B = window.Bokeh; if (!B) return {};
  const docs = new Set(B.documents || []);
  const index = B.index;
  const views = !index ? [] : (typeof index[Symbol.iterator] === "function" ? [...index] : Object.values(index));
  for (const v of views) { const d = v && v.model && v.model.document; if (d) docs.add(d); }
  const rows = {};
  for (const d of docs) for (const [name, key] of [["history", "number"], ["curves", "number"],
                                                   ["lines", "number"], ["importance", "name"]]) {
    const m = d.get_model_by_name(name); if (!m) continue;
    const col = m.data instanceof Map ? m.data.get(key) : m.data[key];
    rows[name] = Math.max(rows[name] || 0, col ? col.length : 0);
  }
  return rows;
}"""


def history_rows_reach(page: Any, count: int) -> bool:
    return int(page.evaluate(BOKEH_ROWS).get("history", 0)) >= count


def test_blocking_panel_every_tab_live_stop_and_reload(lab: Lab, page: Any) -> None:
    """The default (blocking) mode: every plot tab streams while the cell runs, the panel's Stop interrupts the
    kernel, the queued cell runs once after, and a saved notebook reopened without its kernel shows the snapshot."""
    name = write_notebook(lab, "blocking.ipynb", [SETUP, BLOCKING.format(name="blocking"), AFTER])
    open_and_run_all(page, lab, name)
    wait_until(page, lambda: (finished_count(page) or 0) >= 1, 240, "the first finished trial")

    # redraw lag: when the header shows k trials, how long until the history source holds k rows
    lags: list[float] = []
    seen = finished_count(page) or 0
    while len(lags) < 3 and (finished_count(page) or 0) < 10:
        count = finished_count(page) or 0
        if count > seen:
            t0 = time.time()
            wait_until(page, functools.partial(history_rows_reach, page, count), 10, "history rows")
            lags.append(time.time() - t0)
            seen = count
        page.wait_for_timeout(50)
    print(f"\nredraw lag after the header (s): {[round(x, 2) for x in lags]}")

    tabs = page.locator(".nbautoml-tabs .lm-TabBar-tab")
    for index, label in ((1, "history"), (2, "curves"), (3, "parallel"), (4, "importance")):
        tabs.nth(index).click()  # switched in the browser while the kernel is busy with the cell
        page.wait_for_timeout(1200)
        assert page.locator(".nbautoml-tabs .bk-Canvas >> visible=true").count() > 0, label
        shot(page, f"b{index}-blocking-{label}")
    rows = page.evaluate(BOKEH_ROWS)
    assert panel_state(page) == "RUNNING", "the search ended before every tab was seen"
    running_at = finished_count(page) or 0
    print(f"mid-search ({running_at} trials) rows per plot: {rows}")
    assert all(rows.get(k, 0) > 1 for k in ("history", "curves", "lines", "importance")), rows

    stop = page.locator(".nbautoml-interrupt button")
    assert stop.is_enabled()
    clicked = time.time()
    stop.click()
    wait_until(page, lambda: panel_state(page) == "STOPPED", 60, "the panel to show STOPPED")
    print(f"Stop → STOPPED in {time.time() - clicked:.2f} s (at {running_at} of 14 trials)")
    after = page.locator(".jp-Cell").nth(2).locator(".jp-OutputArea-output")
    wait_until(page, lambda: "AFTER" in (after.last.inner_text() if after.count() else ""), 60, "the next cell")
    assert after.count() == 1 and "AFTER STOPPED" in after.last.inner_text()
    assert (finished_count(page) or 0) < 14
    page.locator(".nbautoml-tabs .lm-TabBar-tab").nth(0).click()
    shot(page, "b5-blocking-stopped")
    assert page.locator(".nbautoml-snapshot").count() == 1  # filled, hidden beside the live panel
    assert page.locator(".nbautoml-snapshot >> visible=true").count() == 0

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.shutdown()")
    wait_until(page, lambda: page.locator(".nbautoml-panel.nbautoml-kernel-gone").count() > 0, 30,
               "the panel to show its kernel is gone")
    shot(page, "b6-kernel-gone")

    page.goto(lab.url(name, workspace="blocking-reopened"))
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
    with contextlib.suppress(Exception):
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=8_000)
    wait_until(page, lambda: page.locator(".nbautoml-snapshot >> visible=true").count() == 1, 60, "the snapshot")
    wait_until(page, lambda: page.locator(".nbautoml-snapshot .bk-Canvas >> visible=true").count() > 0, 30,
               "the snapshot's plots")
    page.wait_for_timeout(3000)  # the widget manager has given up on the old models by now
    errors = page.get_by_text("model not found").locator("visible=true")
    assert errors.count() == 0, errors.first.evaluate("e => e.parentElement.parentElement.outerHTML.slice(0, 800)")
    assert "STOPPED" in page.locator(".nbautoml-snapshot .nbautoml-state").inner_text()
    assert page.locator(".nbautoml-snapshot .nbautoml-row").count() >= 1
    shot(page, "b7-reloaded")
