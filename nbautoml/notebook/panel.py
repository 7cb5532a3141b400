"""The live study panel: progress, best, Stop / Resume, leaderboard, counts, Bokeh plots, search-space editor.

Threads (docs/ARCHITECTURE.md "Events"). Study events arrive on the study's worker thread; the
subscriber only marks what changed (O(1), no widget touched). A pump thread flushes at most every
``interval`` seconds (0.5 by default) and once more at StudyFinished: it reads the study's public state and sets
widget traits, which ipywidgets sends only when a value really changed. Every plot and the leaderboard are
refreshed by the pump (each at most once a second, within its CPU budget), whichever tab is shown: a tab switch
happens in the browser alone, and while a blocking cell runs the kernel learns of it only after the cell ends, so
drawing only "the selected tab" left every other tab frozen. Each plot's Bokeh document has its own lock
(:class:`nbautoml.notebook._render.LivePlot`). No Output widget is used from threads.

Resume contract (how the panel knows what to run):
1. ``panel.resume_callback(trials)`` when set: the magic sets it (e.g. to re-run the cell's objective);
   ``trials`` is the budget the user asked for (None = no limit).
2. else the objective given by ``panel.remember(objective, **optimize_kwargs)`` or, before ``optimize`` starts,
   by ``remember_objective(study, objective, **optimize_kwargs)``: the panel calls
   ``study.optimize(objective, trials=trials, timeout=<last timeout>, background=True, show=False, **kwargs)``.
3. else the panel says how to resume (re-run the cell / ``%automl resume NAME``).
Resume with ``trials`` not above the finished count asks for a larger budget in the ``trials`` box.

Stop calls ``study.stop()``. A blocking search keeps the kernel busy, so a widget click would only be handled once
the cell has ended; for a blocking run in a kernel started by Jupyter Server the panel shows instead a Stop whose
click runs in the browser and asks the server to interrupt the kernel (:mod:`nbautoml.notebook._interrupt`):
the same clean stop as the kernel's ■ button. Where that is not possible the note says to use ■.

When the search ends the panel fills the cell's snapshot output (:mod:`nbautoml.notebook._snapshot`): what a
saved notebook shows once the live widget is gone. A panel whose kernel went away is greyed with a line saying
so (the browser marks such widgets ``jupyter-widgets-disconnected``; :data:`PANEL_CSS`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from nbautoml.engine.study import Study, StudyState
from nbautoml.events import (
    Event,
    SpaceChanged,
    StudyFinished,
    StudyStarted,
    StudyStateChanged,
    TrialFinished,
    TrialReported,
    TrialStarted,
)
from nbautoml.notebook import _widgets as parts
from nbautoml.notebook import plots
from nbautoml.notebook._interrupt import InterruptButton, kernel_class, kernel_id, watch_kernel
from nbautoml.notebook._render import LivePlot, bokeh_resources
from nbautoml.notebook._snapshot import PENDING_HTML, snapshot_bundle
from nbautoml.space import SpaceError

__all__ = ["StudyPanel", "ensure_bokehjs", "notebook_frontend", "register_display", "remember_objective"]

log = logging.getLogger(__name__)

_remembered: weakref.WeakKeyDictionary[Study, tuple[Callable[..., Any], dict[str, Any]]] = weakref.WeakKeyDictionary()
_bokehjs_loaded = False
PLOT_INTERVAL = 1.0  # least seconds between refreshes of the visible plot
BOARD_INTERVAL = 1.0  # least seconds between redraws of the leaderboard
RUNNING_STATES = (StudyState.RUNNING, StudyState.STOPPING)
# ipywidgets adds jupyter-widgets-disconnected to a view whose comm closed (kernel restarted or shut down)
PANEL_CSS = (
    "<style>"
    ".nbautoml-panel.jupyter-widgets-disconnected,.nbautoml-panel.nbautoml-kernel-gone{opacity:.6}"
    ".nbautoml-panel.jupyter-widgets-disconnected :is(button,input,.nbautoml-interrupt-box),"
    ".nbautoml-panel.nbautoml-kernel-gone :is(button,input,.nbautoml-interrupt-box){pointer-events:none}"
    ".nbautoml-panel.jupyter-widgets-disconnected::before,.nbautoml-panel.nbautoml-kernel-gone::before{"
    "content:'This panel\\'s kernel is gone (restarted or shut down): its buttons do nothing. Re-run the cell "
    "for a live panel.';font-family:inherit;display:block;position:static;color:#d62728;font-weight:bold;"
    "padding:2px 0}"
    "</style>"
)


def remember_objective(study: Study, objective: Callable[..., Any], **optimize_kwargs: Any) -> None:
    """Record what Resume re-runs for ``study`` (call before ``optimize``; panels created later pick it up)."""
    _remembered[study] = (objective, dict(optimize_kwargs))


def ensure_bokehjs() -> None:
    """Put BokehJS (inline: there may be no network) into the page once per kernel, before any plot widget."""
    global _bokehjs_loaded
    if not _bokehjs_loaded:
        from bokeh.io import output_notebook

        output_notebook(bokeh_resources(), hide_banner=True)
        _bokehjs_loaded = True


def _plots() -> list[LivePlot]:
    from nbautoml.notebook import _render as r

    return [
        LivePlot("History", plots.history_data, r.history_figure, r.update_history, PLOT_INTERVAL),
        LivePlot("Learning curves", plots.curves_data, r.curves_figure, r.update_curves, PLOT_INTERVAL),
        LivePlot("Parallel coordinates", plots.parallel_data, r.parallel_figure, r.update_parallel, PLOT_INTERVAL),
        LivePlot("Importance", plots.importance_data, r.importance_figure, r.update_importance, 5.0),
    ]


class StudyPanel(widgets.VBox):
    """A live view of one study, drawn only from its public state and events (see the module docstring)."""

    def __init__(self, study: Study, *, background: bool = True, interval: float = 0.5, with_plots: bool = True):
        super().__init__()
        self.add_class("nbautoml-panel")
        self.study, self.background, self.interval = study, background, interval
        self.resume_callback: Callable[[int | None], Any] | None = None
        remembered = _remembered.get(study)
        self.objective: Callable[..., Any] | None = remembered[0] if remembered else None
        self.optimize_kwargs: dict[str, Any] = dict(remembered[1]) if remembered else {}
        self.flushes = 0
        self._lock = threading.Lock()  # guards the dirty flags and run bookkeeping below
        self._flush_lock = threading.RLock()  # one flush at a time (pump thread, button clicks, tab switches)
        self._dirty = {"board": True, "space": False, "budget": False}
        self._final = False  # StudyFinished seen: the pump flushes once more and ends
        self._snapshot_due = False  # a background run ended: its final flush fills the snapshot once
        self._shown_message = study.message
        self._last_note = ""
        self._wake = threading.Event()
        self._pump: threading.Thread | None = None
        self._closed = False
        self._run_started = time.time()
        self._finished_at_start = study.n_finished
        self._timeout: float | None = None

        self._board_drawn = 0.0
        # name, state, progress bar, counts, timing and best: one widget, so one message per flush
        self.header = widgets.HTML()
        self.header.add_class("nbautoml-header")
        tip = "" if background else " (a blocking search: interrupt the kernel ■ to stop it while the cell runs)"
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          tooltip="Stop the search; running trials end INTERRUPTED" + tip)
        self.stop_button.add_class("nbautoml-stop")
        kernel = kernel_id()
        self.interrupt = (InterruptButton(kernel, armed=study.state is StudyState.RUNNING)
                          if kernel and not background else None)
        self._blocking = not background  # this panel's first run blocks the cell; a Resume from it does not
        self._runs_started = 0
        self.snapshot_handle: Any = None  # the cell's snapshot output (notebook_frontend), filled at the end
        self.resume_button = widgets.Button(description="Resume", button_style="success", icon="play",
                                            tooltip="Continue the search up to `trials` finished trials")
        self.resume_button.add_class("nbautoml-resume")
        self.trials_input = widgets.IntText(value=study.budget or 0, description="trials",
                                            tooltip="budget for Resume (0 = no limit)",
                                            style={"description_width": "initial"},
                                            layout=widgets.Layout(width="130px"))
        self.trials_input.add_class("nbautoml-trials")
        self.message = widgets.HTML()
        self.message.add_class("nbautoml-message")
        self.board = widgets.HTML()  # the counts and the leaderboard: one widget, one message per update
        self.editor = parts.SpaceEditor(study.space)
        self.apply_button = widgets.Button(description="Apply and resume", button_style="primary",
                                           tooltip="Record the edited space as a new version and continue")
        self.apply_button.add_class("nbautoml-apply")
        self.plots: list[LivePlot] = _plots() if with_plots else []
        if kernel:
            self.add_class(kernel_class(kernel))
            if self.plots:
                self.plots[0].prepare = lambda model, k=kernel: watch_kernel(model, k)
        self._curves = next((p for p in self.plots if p.title == "Learning curves"), None)
        pages: list[widgets.Widget] = [self.board]
        pages += [p.build(study) for p in self.plots]
        pages.append(widgets.VBox([self.editor, self.apply_button]))
        self.tabs = widgets.Tab(children=pages, titles=["Leaderboard", *(p.title for p in self.plots), "Search space"])
        self.tabs.add_class("nbautoml-tabs")
        stops: list[widgets.Widget] = [self.stop_button] if self.interrupt is None else [
            self.stop_button, self.interrupt.widget]
        self.children = [
            widgets.HTML(PANEL_CSS, layout=widgets.Layout(display="none")),
            self.header,
            widgets.HBox([*stops, self.resume_button, self.trials_input, self.message],
                         layout=widgets.Layout(align_items="center")),
            self.tabs,
        ]
        self.stop_button.on_click(lambda _b: self.stop())
        self.resume_button.on_click(lambda _b: self.resume())
        self.apply_button.on_click(lambda _b: self.apply_space())
        self.tabs.observe(self._tab_changed, names="selected_index")
        self._unsubscribe = study.events.subscribe(self._on_event)
        if not background and study.state in RUNNING_STATES and self.interrupt is None:
            # measured: a widget click reaches the kernel only after the running cell ends
            self._note("a blocking search: stop it with the kernel's interrupt (■); Stop is for --background ones")
        self.flush()
        if study.state in RUNNING_STATES:
            self._start_pump()

    # ---- events: the worker thread only marks what changed ----------------------------------------------
    def _on_event(self, event: Event) -> None:
        if isinstance(event, TrialReported):  # the commonest event: one flag, no lock (a bool store is atomic)
            if self._curves is not None:
                self._curves.dirty = True
            return
        with self._lock:
            if isinstance(event, StudyStarted):
                self._runs_started += 1
                if self._runs_started > 1:
                    self._blocking = False  # a later run was started by Resume: it runs in the background
                self._run_started, self._finished_at_start = time.time(), event.finished
                self._timeout, self._final = event.timeout, False
                self._dirty["budget"] = True
            elif isinstance(event, StudyFinished):
                self._final = True
                self._snapshot_due = not self._blocking
            if isinstance(event, (TrialFinished, StudyStarted, StudyFinished, TrialStarted)):
                self._dirty["board"] = True
            if isinstance(event, SpaceChanged):
                self._dirty["space"] = True
            for plot in self.plots:
                if isinstance(event, (TrialFinished, SpaceChanged)) or (
                    isinstance(event, TrialStarted) and plot is self._curves
                ):
                    plot.dirty = True
        if isinstance(event, StudyStarted):
            self._start_pump()
        elif isinstance(event, (StudyFinished, StudyStateChanged)):
            if isinstance(event, StudyFinished) and self._blocking:
                self._fill_snapshot()  # here, before the blocking cell returns: its output still takes updates
            self._wake.set()  # show the new state / the final numbers now
            if isinstance(event, StudyFinished) and not self._pump_alive():
                self.flush()  # no pump (a panel made while idle): the final numbers from this thread

    def _pump_alive(self) -> bool:
        with self._lock:
            return self._pump is not None

    def _start_pump(self) -> None:
        with self._lock:
            if self._closed or self._pump is not None:
                return  # a live pump notices a new run: it only ends after a flush that saw StudyFinished
            self._pump = threading.Thread(target=self._run_pump, name=f"nbautoml-panel-{self.study.name}",
                                          daemon=True)
            self._pump.start()

    def _run_pump(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                final = self._final  # read before flushing: that flush then shows everything up to the end
            try:
                self.flush(final=final)
            except Exception:  # drawing must never break anything; keep pumping
                log.exception("study %r: updating the panel failed", self.study.name)
            with self._lock:
                if self._closed or (final and self._final):
                    self._pump = None
                    return

    # ---- drawing ----------------------------------------------------------------------------------------
    def flush(self, final: bool = True) -> None:
        """Bring the widgets up to the study's state now (the pump calls this; tests may too).

        The pump passes ``final=False`` for its periodic flushes: the leaderboard and plots then redraw at most
        once a second (``BOARD_INTERVAL``, each plot's own interval), whatever the flush rate.
        """
        with self._flush_lock:
            study = self.study
            with self._lock:
                board, space_changed, budget_changed = (self._dirty[k] for k in ("board", "space", "budget"))
                self._dirty.update(board=False, space=False, budget=False)
                run_started, finished_at_start = self._run_started, self._finished_at_start
            state = study.state.value
            trials = study.trials
            done, running_numbers, best = parts.summarize(trials, study.mode)
            budget = study.budget
            eta = None
            ran = done - finished_at_start
            if state == "RUNNING" and budget is not None and ran > 0 and budget > done:
                eta = (time.time() - run_started) / ran * (budget - done)
            self.header.value = parts.header_html(study.name, state, done, budget, study.elapsed, eta,
                                                  running_numbers, best, study.metric)
            running = study.state in RUNNING_STATES
            self.stop_button.disabled = study.state is not StudyState.RUNNING
            self.resume_button.disabled = running
            if self.interrupt is not None:
                in_cell = self._blocking and running
                self.interrupt.arm(in_cell and study.state is StudyState.RUNNING)
                self.interrupt.widget.layout.display = "" if in_cell else "none"
                self.stop_button.layout.display = "none" if in_cell else ""
            if budget_changed:
                self.trials_input.value = budget or 0
            if study.message != self._shown_message:
                self._shown_message = study.message
                self._note(study.message)
            now = time.monotonic()
            if board and (now - self._board_drawn >= BOARD_INTERVAL or final):
                self.board.value = parts.counts_html(trials) + parts.leaderboard_html(trials, study.metric, study.mode)
                self._board_drawn = now
            elif board:
                with self._lock:
                    self._dirty["board"] = True  # drawn at the next due flush, or when its tab is shown
            if space_changed:
                self.editor.load(study.space)
            self._refresh_plots(force=final)
            if final and not running and self._snapshot_due:
                self._fill_snapshot()  # a background run: its cell has ended, any thread may update the output
            self.flushes += 1

    def _refresh_plots(self, force: bool = False) -> None:
        """Every dirty plot whose budget allows (all of them when ``force``): hidden tabs too (module docstring)."""
        now, count = time.monotonic(), len(self.study.trials)
        for plot in self.plots:
            if plot.dirty and (force or plot.due(now, count)):
                plot.refresh(self.study)

    def _fill_snapshot(self) -> None:
        """Put the results into the cell's snapshot output (a display update, sent by the thread ending the run)."""
        self._snapshot_due = False
        if self.snapshot_handle is None:
            return
        try:
            self.snapshot_handle.update(snapshot_bundle(self.study, with_plots=bool(self.plots)), raw=True)
        except Exception:
            log.exception("study %r: writing the results snapshot failed", self.study.name)

    def _tab_changed(self, change: dict[str, Any]) -> None:
        try:
            if change["new"] == 0:
                with self._lock:
                    self._dirty["board"] = True
                self.flush()
            else:
                with self._flush_lock:
                    self._refresh_plots(force=True)
        except Exception:
            log.exception("study %r: drawing the selected tab failed", self.study.name)

    def _note(self, text: str) -> None:
        self._last_note = text
        self.message.value = f"<span>{parts.html.escape(text)}</span>"

    # ---- actions ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """The Stop button: ask the search to stop (running trials end INTERRUPTED, re-run on resume)."""
        if self.study.state is not StudyState.RUNNING:
            self._note(f"not running ({self.study.state.value})")
            return
        self.study.stop(source="panel")
        self._note("stopping: running trials end at their next report")
        self._wake.set()

    def remember(self, objective: Callable[..., Any], **optimize_kwargs: Any) -> None:
        """What Resume re-runs when no ``resume_callback`` is set (``optimize_kwargs`` go to ``optimize``)."""
        self.objective, self.optimize_kwargs = objective, dict(optimize_kwargs)

    def resume(self, trials: int | None = None) -> bool:
        """The Resume button: continue up to ``trials`` (default: the trials box) finished trials; True if started."""
        study = self.study
        if study.state in RUNNING_STATES:
            self._note("already running")
            return False
        target = self.trials_input.value if trials is None else trials
        budget = None if not target or target <= 0 else int(target)
        if budget is not None and budget <= study.n_finished:
            self.trials_input.add_class("nbautoml-ask")
            self._note(f"{study.n_finished} trials finished already: set trials above {study.n_finished} "
                       "and press Resume")
            return False
        self.trials_input.remove_class("nbautoml-ask")
        study.wait(10)  # the run that just ended may still be finishing its bookkeeping (e.g. a snapshot)
        try:
            if self.resume_callback is not None:
                self.resume_callback(budget)
            elif self.objective is not None:
                kwargs = {"timeout": self._timeout, **self.optimize_kwargs, "background": True, "show": False}
                study.optimize(self.objective, trials=budget, **kwargs)
            else:
                self._note(f"Resume needs the objective: re-run the cell or use %automl resume {study.name}")
                return False
        except Exception as error:
            self._note(f"resume failed: {type(error).__name__}: {error}")
            return False
        self._note(f"resumed: up to {budget} trials" if budget else "resumed")
        self._start_pump()
        self._wake.set()
        return True

    def apply_space(self) -> bool:
        """"Apply and resume": record the edited space as a new version, then continue (if not running)."""
        try:
            space = self.editor.space()
            diff = self.study.set_space(space)
        except (SpaceError, ValueError, TypeError) as error:
            self._note(f"space not applied: {error}")
            return False
        applied = "the space is unchanged" if diff.empty else f"space version {self.study.space_version} ({diff})"
        if self.study.state in RUNNING_STATES:
            self._note(f"{applied}: new trials sample from it")
            return True
        started = self.resume()
        self._note(f"{applied}; {self._last_note}")
        return started

    def close(self) -> None:
        self._closed = True
        self._unsubscribe()
        self._wake.set()
        for plot in self.plots:
            if plot.widget is not None:
                plot.widget.close()
        super().close()


def _panel_for(study: Study, background: bool = True) -> StudyPanel:
    panel = study.frontend
    if isinstance(panel, StudyPanel) and not panel._closed:
        return panel
    return StudyPanel(study, background=background)


def notebook_frontend(study: Study, background: bool) -> StudyPanel:
    """The factory given to ``set_frontend``: a new panel for a starting search, displayed in the cell."""
    from IPython.display import display

    ensure_bokehjs()
    panel = StudyPanel(study, background=background)
    display(panel)
    panel.snapshot_handle = display({"text/html": PENDING_HTML, "text/plain": ""}, raw=True, display_id=True)
    return panel


def _study_mimebundle(study: Study) -> dict[str, Any]:
    ensure_bokehjs()
    bundle = _panel_for(study)._repr_mimebundle_()
    return bundle if isinstance(bundle, dict) else {}


def register_display(ipython: Any) -> None:
    """Show a study's panel when a Study is displayed (e.g. the last expression of a cell)."""
    ipython.display_formatter.mimebundle_formatter.for_type(Study, _study_mimebundle)
