"""A search's results as plain HTML, kept in the notebook so a saved notebook still shows them with no kernel.

A live widget's output is only a model id: after a reload JupyterLab has no model for it and says "Error
displaying widget: model not found" (ipywidgets' renderer has no fallback to another mimetype of the bundle). So
next to the live panel the cell holds a second output (a display id) that the panel fills when a search ends:
header, counts, leaderboard and the plots as a static Bokeh document (embedded with ``json_item``; BokehJS is the
inline copy the notebook already holds from ``output_notebook``). Its style sheet hides it while the live panel
is drawn in the same cell and, once the panel is gone, hides that cell's dead widget output instead, so a reloaded
notebook (or nbviewer) reads as the results, not as an error. GitHub, which runs no scripts, shows the text parts.
"""

from __future__ import annotations

import html
import json
import uuid
from typing import Any

from nbautoml.notebook import _widgets as parts
from nbautoml.notebook import plots

__all__ = ["PENDING_HTML", "snapshot_bundle"]

# JupyterLab's output area: .jp-OutputArea > .jp-OutputArea-child > .jp-OutputArea-output (one per output).
# ipywidgets' renderer puts the class jupyter-widgets on that output node only when it shows an error instead of
# a view ("model not found"); :has() cannot nest, so that class is what tells a dead widget output.
SNAPSHOT_CSS = (
    ".jp-OutputArea:has(.nbautoml-panel) .nbautoml-snapshot{display:none}"
    ".jp-OutputArea:has(.nbautoml-snapshot) > .jp-OutputArea-child:has("
    "> .jp-OutputArea-output.jupyter-widgets){display:none}"
    ".nbautoml-snapshot{border-left:3px solid #9467bd;padding-left:8px}"
)
PENDING_HTML = '<div class="nbautoml-snapshot-pending"></div>'

EMBED_JS = """
(function () {
  var item = %(item)s, target = %(target)s, tries = 0;
  function draw() {
    if (window.Bokeh && window.Bokeh.embed) { window.Bokeh.embed.embed_item(item, target); return; }
    if (++tries < 100) { setTimeout(draw, 100); return; }
    var node = document.getElementById(target);
    if (node) { node.textContent = "(the plots need BokehJS: run the notebook's nbautoml cell again)"; }
  }
  draw();
})();
"""


def _plots_item(study: Any) -> Any:
    from bokeh.embed import json_item
    from bokeh.models import TabPanel, Tabs

    panels = [
        TabPanel(title="History", child=plots.render_history(plots.history_data(study))),
        TabPanel(title="Learning curves", child=plots.render_curves(plots.curves_data(study))),
        TabPanel(title="Parallel coordinates", child=plots.render_parallel(plots.parallel_data(study))),
        TabPanel(title="Importance", child=plots.render_importance(plots.importance_data(study))),
    ]
    return json_item(Tabs(tabs=panels))


def snapshot_bundle(study: Any, with_plots: bool = True) -> dict[str, str]:
    """The display bundle of ``study``'s results now: ``text/html`` (styled, scripted) and ``text/plain``."""
    trials = study.trials
    done, _running, best = parts.summarize(trials, study.mode)
    header = parts.header_html(study.name, study.state.value, done, study.budget, study.elapsed, None, [], best,
                               study.metric)
    board = parts.counts_html(trials) + parts.leaderboard_html(trials, study.metric, study.mode)
    body = f"{header}{board}"
    if with_plots:
        target = f"nbautoml-snapshot-{uuid.uuid4().hex}"
        script = EMBED_JS % {"item": json.dumps(_plots_item(study)), "target": json.dumps(target)}
        body += f'<div id="{target}" class="nbautoml-snapshot-plots"></div><script>{script}</script>'
    best_text = "no complete trial" if best is None else f"best {study.metric} = {best.value:.6g} (trial {best.number})"
    plain = f"nbautoml study {study.name!r}: {study.state.value}, {done} trials finished, {best_text}"
    return {
        "text/html": f'<style>{SNAPSHOT_CSS}</style><div class="nbautoml-snapshot" title="saved results">{body}</div>',
        "text/plain": html.unescape(plain),
    }
