"""The whole front end in a real JupyterLab in Chromium: ``%%automl`` on a small torch model, the live panel,
its Bokeh plot, Stop / Resume, and the kernel's interrupt button stopping a blocking search.

The notebooks are written by the tests (nbformat) into the server's temporary root. Cells run through
JupyterLab's own commands (``window.jupyterapp``); buttons are found by their CSS classes, never by text that
also appears in a cell. Screenshots go to tests/browser/screenshots/ (git-ignored).
"""

from __future__ import annotations

import contextlib
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
    assert page.locator(".nbautoml-leaderboard .nbautoml-row").count() == 6
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


def test_interrupt_button_stops_a_blocking_search(lab: Lab, page: Any) -> None:
    name = write_notebook(lab, "interrupt.ipynb", [SETUP, SEARCH.format(name="blocking", flags=""), REPORT])
    open_and_run_all(page, lab, name)

    wait_until(page, lambda: (finished_count(page) or 0) >= 1, 240, "the first finished trial")
    assert (finished_count(page) or 0) < 6
    assert "interrupt" in page.locator(".nbautoml-message").first.inner_text()  # Stop cannot reach a busy kernel
    page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:interrupt-kernel']").first.click()
    wait_until(page, lambda: panel_state(page) == "STOPPED", 120, "the panel to show STOPPED")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=60_000,
    )
    # Read the study in the next cell (run it again on its own: run-all may have stopped at the interrupt).
    page.evaluate("""() => { const w = window.jupyterapp.shell.currentWidget;
                             w.content.activeCellIndex = 2;
                             return window.jupyterapp.commands.execute('notebook:run-cell'); }""")
    report = page.locator(".jp-Cell").nth(2).locator(".jp-OutputArea-output")
    wait_until(page, lambda: "REPORT" in (report.last.inner_text() if report.count() else ""), 60,
               "the next cell's report")
    text = report.last.inner_text()
    assert "REPORT STOPPED" in text and "INTERRUPTED" in text, text
    shot(page, "9-interrupted")
