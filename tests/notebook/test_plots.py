"""The plots' pure data functions (on hand-made trials and a real study), the renderers and the HTML report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbautoml import Study
from nbautoml.engine.trial import Report, Trial, TrialState
from nbautoml.notebook import plots
from nbautoml.notebook._render import sync_source
from nbautoml.space import Choice, Int, Real, Space


@dataclass
class FakeStudy:
    """The public state the data functions read, filled by hand."""

    trials: list[Trial] = field(default_factory=list)
    space: Space | None = None
    metric: str = "loss"
    mode: str = "min"


def make_trial(number: int, params: dict[str, Any], state: TrialState = TrialState.COMPLETE,
               value: float | None = None, curve: list[float] | None = None, start: int = 0,
               resumed_from: int | None = None) -> Trial:
    trial = Trial(number, params, state=state, resumed_from=resumed_from, resume_step=start)
    trial.value = value
    for step, metric in enumerate(curve or [], start=start):
        trial.reports.append(Report(step, {"loss": metric}, 0.0))
    return trial


def test_history_best_so_far_follows_the_mode() -> None:
    values = [5.0, 3.0, 4.0, 1.0, 2.0]
    trials = [make_trial(i, {}, value=v) for i, v in enumerate(values)]
    trials.insert(2, make_trial(9, {}, state=TrialState.FAILED))
    trials.append(make_trial(10, {}, state=TrialState.COMPLETE, value=math.nan))
    low = plots.history_data(FakeStudy(trials, mode="min"))["columns"]
    assert low["number"] == [0, 1, 2, 3, 4]  # failed and NaN trials are not on the history
    assert low["best"] == [5.0, 3.0, 3.0, 1.0, 1.0]
    high = plots.history_data(FakeStudy(trials, mode="max"))["columns"]
    assert high["best"] == [5.0] * 5


def test_curves_continue_a_resumed_trial_and_fade_pruned_ones() -> None:
    trials = [
        make_trial(0, {}, TrialState.INTERRUPTED, curve=[1.0, 0.8, 0.7]),
        make_trial(1, {}, TrialState.PRUNED, value=0.9, curve=[1.2, 1.1]),
        make_trial(2, {}, TrialState.COMPLETE, value=0.5, curve=[0.6, 0.5], start=3, resumed_from=0),
        make_trial(3, {}, TrialState.INTERRUPTED, curve=[2.0]),
        make_trial(4, {}, TrialState.RUNNING, curve=[1.9, 1.8], start=0, resumed_from=3),  # re-run from scratch
    ]
    data = plots.curves_data(FakeStudy(trials))
    cols = data["columns"]
    assert data["metric"] == "loss"
    assert cols["first"] == [0, 1, 3, 4]  # rows by their first trial: a live plot only appends or extends
    assert cols["number"] == [2, 1, 3, 4]  # trial 2 took over trial 0's line
    assert cols["xs"][0] == [0, 1, 2, 3, 4] and cols["ys"][0] == [1.0, 0.8, 0.7, 0.6, 0.5]
    alpha = dict(zip(cols["number"], cols["alpha"], strict=True))
    assert alpha[1] == plots.FADED_ALPHA and alpha[3] == plots.FADED_ALPHA  # pruned; interrupted, re-run afresh
    assert alpha[2] == plots.LINE_ALPHA and alpha[4] == plots.LINE_ALPHA
    assert len({len(v) for v in cols.values()}) == 1  # every column the same length (stream-ready)


def test_curves_drop_old_steps_a_resume_replays() -> None:
    trials = [
        make_trial(0, {}, TrialState.INTERRUPTED, curve=[1.0, 0.9, 0.8, 0.7]),  # steps 0..3, checkpoint at 1
        make_trial(1, {}, TrialState.COMPLETE, value=0.1, curve=[0.5, 0.4], start=2, resumed_from=0),
    ]
    cols = plots.curves_data(FakeStudy(trials))["columns"]
    assert cols["xs"] == [[0, 1, 2, 3]] and cols["ys"] == [[1.0, 0.9, 0.5, 0.4]]


def test_parallel_coordinates_use_log_and_categorical_axes() -> None:
    space = Space(lr=Real(1e-4, 1e-2, log=True), act=Choice(["a", "b", "c"]), units=Int(1, 5))
    trials = [
        make_trial(0, {"lr": 1e-3, "act": "b", "units": 3}, value=2.0),
        make_trial(1, {"lr": 1e-4, "act": "c", "units": 1}, value=4.0),
        make_trial(2, {"lr": 0.5, "act": "a", "units": 2}, value=1.0),  # outside the (edited) space: left out
        make_trial(3, {"lr": 1e-2, "act": "a", "units": 5}, state=TrialState.PRUNED, value=0.1),
    ]
    data = plots.parallel_data(FakeStudy(trials, space=space))
    axes = {a["name"]: a for a in data["axes"]}
    assert axes["lr"]["kind"] == "log" and "0.001" in axes["lr"]["labels"]
    assert axes["lr"]["ticks"][axes["lr"]["labels"].index("0.001")] == pytest.approx(0.5)
    assert axes["act"]["kind"] == "categorical" and axes["act"]["labels"] == ["a", "b", "c"]
    assert axes["units"]["labels"] == ["1", "2", "3", "4", "5"]
    assert [a["name"] for a in data["axes"]][-1] == "loss"
    cols = data["columns"]
    assert cols["number"] == [0, 1]
    assert cols["ys"][0] == pytest.approx([0.5, 0.5, 0.5, 0.0])  # lr 1e-3 is mid-way on a log axis; best value
    assert cols["ys"][1] == pytest.approx([0.0, 1.0, 0.0, 1.0])
    assert cols["xs"][0] == [0, 1, 2, 3]


def test_importance_ranks_an_informative_param_above_noise() -> None:
    rng = np.random.default_rng(0)
    space = Space(x=Real(0.0, 1.0), noise=Real(0.0, 1.0), kind=Choice(["p", "q"]))
    trials = []
    for i in range(40):
        x = float(rng.uniform())
        params = {"x": x, "noise": float(rng.uniform()), "kind": str(rng.choice(["p", "q"]))}
        trials.append(make_trial(i, params, value=10 * (x - 0.3) ** 2))
    data = plots.importance_data(FakeStudy(trials, space=space))
    names = data["columns"]["name"]
    assert names[0] == "x"
    scores = dict(zip(names, data["columns"]["importance"], strict=True))
    assert scores["x"] > 3 * scores["noise"] and sum(scores.values()) == pytest.approx(1.0)
    assert data["n_trials"] == 40 and data["note"] == ""


def test_importance_with_too_few_trials_says_so() -> None:
    space = Space(x=Real(0.0, 1.0), y=Int(0, 3))
    trials = [make_trial(0, {"x": 0.1, "y": 1}, value=1.0), make_trial(1, {"x": 0.2, "y": 2}, value=2.0)]
    data = plots.importance_data(FakeStudy(trials, space=space))
    assert data["columns"]["importance"] == [0.0, 0.0] and "needs 3" in data["note"]
    assert plots.importance_data(FakeStudy([], space=None))["columns"]["name"] == []


def test_renderers_build_figures_and_sync_streams_or_patches() -> None:
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure as figure_type

    space = Space(lr=Real(1e-4, 1e-2, log=True), act=Choice(["a", "b"]))
    study = FakeStudy([make_trial(i, {"lr": 1e-3, "act": "a"}, value=float(i), curve=[1.0, 0.5])
                       for i in range(4)], space=space)
    for render, data in ((plots.render_history, plots.history_data(study)),
                         (plots.render_curves, plots.curves_data(study)),
                         (plots.render_parallel, plots.parallel_data(study)),
                         (plots.render_importance, plots.importance_data(study))):
        assert isinstance(render(data), figure_type)
    source = ColumnDataSource(data={"a": [1, 2], "b": [[0], [1]]})
    assert sync_source(source, {"a": [1, 2, 3], "b": [[0], [1], [2]]}) == 1  # stream only
    assert sync_source(source, {"a": [1, 2, 3], "b": [[0], [1, 5], [2]]}) == 1  # patch only
    assert sync_source(source, {"a": [1, 2, 3], "b": [[0], [1, 5], [2]]}) == 0  # nothing changed
    assert sync_source(source, {"a": [1], "b": [[0]]}) == 1 and list(source.data["a"]) == [1]  # replaced


def test_a_real_study_and_its_standalone_report(tmp_path: Path) -> None:
    space = Space(lr=Real(1e-4, 1e-1, log=True), layers=Int(1, 3), act=Choice(["relu", "tanh"]))
    study = Study("report", space, storage=":memory:", sampler="random", seed=3)

    def objective(trial: Trial) -> float:
        score = abs(math.log10(trial.params["lr"]) + 2.5)
        for step in range(3):
            trial.report(step, value=score + 1.0 / (step + 1))
        return score

    study.optimize(objective, trials=8, show=False)
    assert len(plots.history_data(study)["columns"]["number"]) == 8
    assert len(plots.curves_data(study)["columns"]["xs"]) == 8
    path = plots.save_report(study, tmp_path / "out" / "report.html")
    text = path.read_text(encoding="utf-8")
    assert "report" in text and "cdn.bokeh.org" not in text and "Bokeh" in text
