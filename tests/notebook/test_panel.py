"""The study panel driven by a real Study (in memory, random sampler) and by ``Button.click()``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import ipywidgets
import pytest

from nbautoml import Study, StudyState
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.events import StudyStarted, TrialFinished, TrialReported
from nbautoml.notebook import panel as panel_module
from nbautoml.notebook.panel import StudyPanel, notebook_frontend, register_display, remember_objective
from nbautoml.space import Choice, Real, Space


def make_study(name: str = "panel") -> Study:
    space = Space(x=Real(0.0, 1.0), kind=Choice(["a", "b"]))
    return Study(name, space, storage=":memory:", sampler="random", seed=0)


def quick(trial: Trial) -> float:
    if trial.number == 2:
        raise ValueError("boom in trial 2")
    trial.report(0, value=trial.params["x"] + 1)
    return float(trial.params["x"])


def slow(trial: Trial) -> float | None:
    """Five 20 ms steps; writes a checkpoint each step so a stopped trial resumes where it was."""
    assert trial.checkpoint_dir is not None
    for step in range(trial.resume_step, 5):
        time.sleep(0.02)
        trial.report(step, value=trial.params["x"] + 1.0 / (step + 1))
        (trial.checkpoint_dir / "state.txt").write_text(str(step))
        if trial.should_stop():
            return None
    return float(trial.params["x"])


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every comm message a widget sends (ipywidgets' ``Widget._send``), by widget class."""
    sent: list[str] = []
    original = ipywidgets.Widget._send

    def counting(self: ipywidgets.Widget, msg: Any, buffers: Any = None) -> None:
        sent.append(type(self).__name__)
        original(self, msg, buffers)

    monkeypatch.setattr(ipywidgets.Widget, "_send", counting)
    yield sent


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_counts_leaderboard_and_best_after_a_search() -> None:
    study = make_study()
    panel = StudyPanel(study, interval=0.05)
    study.optimize(quick, trials=25, show=False)
    panel.flush()
    header = panel.header.value
    assert "25 / 25 trials" in header and "width:100.0%" in header  # the count and a full bar
    assert "FINISHED" in header and study.name in header
    assert panel.board.value.count('class="nbautoml-row"') == 20  # top 20 of 24 complete
    assert "failed ×1: exception: ValueError: boom in trial 2" in panel.board.value
    assert "complete <b>24</b>" in panel.board.value and "failed <b>1</b>" in panel.board.value
    best = study.best_trial
    assert best is not None and f"{best.value:.4g}" in header and f"(trial {best.number})" in header
    assert panel.stop_button.disabled and not panel.resume_button.disabled
    panel.close()


def test_stop_then_resume_continues_to_the_budget() -> None:
    study = make_study()
    remember_objective(study, slow)
    panel = StudyPanel(study, interval=0.05)
    study.optimize(slow, trials=6, background=True, show=False)
    wait_for(lambda: any(t.reports for t in study.trials))
    panel.stop_button.click()
    assert study.state in (StudyState.STOPPING, StudyState.STOPPED)
    assert study.wait(20)
    assert study.state is StudyState.STOPPED
    interrupted = [t for t in study.trials if t.state is TrialState.INTERRUPTED]
    assert interrupted and study.n_finished < 6
    wait_for(lambda: "STOPPED" in panel.header.value)  # the pump's final flush
    assert "interrupted ×1: stopped after step" in panel.board.value

    panel.trials_input.value = 6
    panel.resume_button.click()
    assert study.wait(30) and study.n_finished == 6 and study.state is StudyState.FINISHED
    rerun = [t for t in study.trials if t.resumed_from == interrupted[0].number]
    assert rerun and rerun[0].resume_step > 0  # continued from its checkpoint
    wait_for(lambda: "6 / 6 trials" in panel.header.value)

    panel.resume_button.click()  # past the budget: asks for a larger one
    assert "set trials above 6" in panel.message.value and "nbautoml-ask" in panel.trials_input._dom_classes
    panel.trials_input.value = 8
    panel.resume_button.click()
    assert study.wait(30) and study.n_finished == 8
    panel.close()


def test_resume_uses_the_callback_the_magic_sets_or_explains() -> None:
    study = make_study()
    panel = StudyPanel(study)
    panel.trials_input.value = 3
    panel.resume_button.click()
    assert "Resume needs the objective" in panel.message.value
    calls: list[int | None] = []
    panel.resume_callback = calls.append
    panel.resume_button.click()
    assert calls == [3]
    panel.close()


def test_space_editor_apply_records_a_new_version_and_resumes() -> None:
    study = make_study()
    panel = StudyPanel(study)
    panel.remember(quick)
    study.optimize(quick, trials=4, show=False)
    row = panel.editor.rows[0]
    row.slider.value = (0.25, 0.5)  # type: ignore[union-attr]
    panel.trials_input.value = 8
    panel.apply_button.click()
    assert study.space_version == 1
    assert study.space is not None and study.space["x"].to_json() == {"type": "real", "low": 0.25, "high": 0.5,
                                                                       "log": False}
    assert "space version 1" in panel.message.value
    assert study.wait(20) and study.n_finished == 8
    assert all(0.25 <= t.params["x"] <= 0.5 for t in study.trials[4:])
    panel.flush()  # the editor reloads the study's new space
    assert panel.editor.rows[0].bounds() == pytest.approx((0.25, 0.5))  # type: ignore[union-attr]
    panel.editor.rows[1].text.value = "not json"  # type: ignore[union-attr]
    panel.apply_button.click()
    assert "space not applied" in panel.message.value and study.space_version == 1
    panel.close()


def test_space_editor_log_toggle_and_choices() -> None:
    study = Study("edit", Space(lr=Real(1e-4, 1e-1, log=True), units=Choice([64, 128])), storage=":memory:",
                  sampler="random")
    panel = StudyPanel(study, with_plots=False)
    lr, units = panel.editor.rows
    assert lr.bounds() == pytest.approx((1e-4, 1e-1))  # type: ignore[union-attr]
    lr.log.value = False  # type: ignore[union-attr]
    assert lr.dimension().to_json()["log"] is False
    units.text.value = "[64, 128, 256]"  # type: ignore[union-attr]
    assert panel.editor.space()["units"].to_json() == {"type": "choice", "options": [64, 128, 256]}
    panel.close()


def test_a_burst_of_events_is_coalesced(messages: list[str]) -> None:
    study = make_study()
    panel = StudyPanel(study, interval=0.2)
    before = len(messages)
    study.events.emit(StudyStarted(study.name, budget=1000, finished=0))
    start = time.time()
    for number in range(1000):
        study.events.emit(TrialReported(study.name, number=number, step=0, metrics={"value": 1.0}))
        study.events.emit(TrialFinished(study.name, number=number, value=1.0))
    burst = time.time() - start
    time.sleep(0.5)
    flushes = panel.flushes
    panel.close()
    bound = (burst + 0.5) / 0.2 + 3
    assert flushes <= bound
    assert len(messages) - before <= 6 * bound  # a handful of widgets per flush, never per event


def test_a_real_fast_search_sends_few_messages(messages: list[str]) -> None:
    study = make_study()
    panel = StudyPanel(study, interval=0.5)
    before = len(messages)
    start = time.time()
    study.optimize(quick, trials=300, show=False)
    time.sleep(0.1)
    wall = time.time() - start
    panel.close()
    assert len(messages) - before <= 12 * (wall / 0.5 + 2)


def test_notebook_frontend_and_study_display(capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    study = make_study()
    shown = notebook_frontend(study, background=True)
    assert isinstance(shown, StudyPanel)
    shell = InteractiveShell.instance()
    register_display(shell)
    assert shell.display_formatter is not None
    data, _ = shell.display_formatter.format(study)
    assert "application/vnd.jupyter.widget-view+json" in data
    study.frontend = shown
    assert panel_module._panel_for(study) is shown  # the study's live panel is reused
    shown.close()
    assert panel_module._panel_for(study) is not shown


def test_panel_follows_a_search_started_elsewhere() -> None:
    study = make_study()
    panel = StudyPanel(study, interval=0.05)
    done = threading.Event()
    study.events.subscribe(lambda event: done.set(), panel_module.StudyFinished)
    study.optimize(slow, trials=3, background=True, show=False)
    wait_for(lambda: "RUNNING" in panel.header.value or done.is_set())
    assert study.wait(20) and done.wait(5)
    wait_for(lambda: "3 / 3 trials" in panel.header.value and "FINISHED" in panel.header.value)
    panel.close()
