"""Several objectives and constraints through a real Study: values, the Pareto front, journals, refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nbautoml.engine.objectives import Constraint, Objectives, parse_constraint
from nbautoml.engine.study import Study
from nbautoml.engine.trial import Trial, TrialState
from nbautoml.space import Int, Real, Space

SPACE = Space(x=Real(0.0, 1.0), size=Int(1, 100))


def two_objectives(trial: Trial) -> dict[str, float]:
    x = trial.params["x"]
    return {"acc": x, "latency": x * x * 10 + trial.params["size"] / 100, "params": trial.params["size"] * 1000.0}


def test_parse_constraint_forms() -> None:
    assert parse_constraint("params <= 1e6") == Constraint("params", "<=", 1e6)
    assert parse_constraint(" latency_ms>=2 ") == Constraint("latency_ms", ">=", 2.0)
    assert parse_constraint("c0") == Constraint("c0")
    assert Constraint("params", "<=", 10).value({"params": 12.0}) == 2.0
    assert Constraint("lat", ">=", 10).value({"lat": 12.0}) == -2.0
    with pytest.raises(ValueError, match="write '<metric> <= <number>'"):
        parse_constraint("params < 5")


def test_resolve_checks_lengths_and_modes() -> None:
    objectives = Objectives.resolve("val_acc,latency_ms", "max,min")
    assert objectives.metrics == ("val_acc", "latency_ms") and objectives.signs == (-1.0, 1.0)
    assert Objectives.resolve(["val_acc", "latency_ms"], None).modes == ("max", "min")
    with pytest.raises(ValueError, match="give one mode each"):
        Objectives.resolve(["a", "b"], ["min"])
    with pytest.raises(ValueError, match="mode must be"):
        Objectives.resolve("a", "up")


def test_multi_objective_study_values_front_and_best_trial_error(tmp_path: Path) -> None:
    study = Study("mo", SPACE, metric=["acc", "latency"], mode=["max", "min"], sampler="evolution",
                  storage=tmp_path / "mo.jsonl", seed=0)
    study.optimize(two_objectives, trials=30, show=False)
    trial = study.trials[0]
    assert trial.value is None and list(trial.values or {}) == ["acc", "latency"]
    front = study.best_trials
    assert front
    for member in front:
        for other in study.trials:
            assert not (other.values["acc"] > member.values["acc"]  # type: ignore[index]
                        and other.values["latency"] < member.values["latency"])  # type: ignore[index]
    with pytest.raises(ValueError, match="best_trials"):
        _ = study.best_trial
    frame = study.trials_dataframe()
    assert {"values_acc", "values_latency"} <= set(frame.columns)
    assert "pareto=" in repr(study)

    reopened = Study("mo", storage=tmp_path / "mo.jsonl")
    assert reopened.objectives.metrics == ("acc", "latency")
    assert [t.number for t in reopened.best_trials] == [t.number for t in front]
    assert reopened.trials[3].values == study.trials[3].values
    reopened.optimize(two_objectives, trials=34, show=False)
    assert reopened.n_finished == 34
    with pytest.raises(ValueError, match="optimises mode"):
        Study("mo", metric=["acc", "latency"], mode=["min", "min"], storage=tmp_path / "mo.jsonl")


def test_a_single_objective_sampler_is_refused_with_the_alternatives(tmp_path: Path) -> None:
    study = Study("mo-bayes", SPACE, metric="acc,latency", mode="max,min", sampler="bayes", storage=":memory:")
    with pytest.raises(ValueError, match="sampler='evolution'"):
        study.optimize(two_objectives, trials=2, show=False)


def test_a_missing_objective_fails_the_trial_with_the_reason() -> None:
    study = Study("mo-missing", SPACE, metric=["acc", "latency"], mode=["max", "min"], sampler="random",
                  storage=":memory:", seed=0)
    study.optimize(lambda t: {"acc": 0.5}, trials=1, show=False)
    trial = study.trials[0]
    assert trial.state is TrialState.FAILED
    assert "'latency' was neither returned" in (trial.reason or "")


def test_study_constraints_keep_infeasible_trials_complete_but_off_the_front(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    study = Study("c", SPACE, metric=["acc", "latency"], mode=["max", "min"], constraints=["params <= 50000"],
                  sampler="evolution", storage=path, seed=1)
    study.optimize(two_objectives, trials=25, show=False)
    infeasible = [t for t in study.trials if not t.feasible]
    assert infeasible and all(t.state is TrialState.COMPLETE for t in infeasible)
    assert all(t.feasible for t in study.best_trials)
    assert all(t.params["size"] <= 50 for t in study.best_trials)
    assert study.trials_dataframe()["feasible"].tolist() == [t.feasible for t in study.trials]
    reopened = Study("c", storage=path)
    assert [t.constraints for t in reopened.trials] == [t.constraints for t in study.trials]
    with pytest.raises(ValueError, match="optimises constraints"):
        Study("c", constraints=["params <= 1"], storage=path)


def test_returned_constraints_and_one_objective_best_is_feasible() -> None:
    study = Study("own", Space(x=Real(0.0, 1.0)), metric="loss", sampler="random", storage=":memory:", seed=0)
    study.optimize(lambda t: {"loss": t.params["x"], "constraints": [0.3 - t.params["x"]]}, trials=20, show=False)
    best = study.best_trial
    assert best is not None and best.params["x"] >= 0.3
    assert study.best_trials == [best]
    assert any(not t.feasible for t in study.trials)


def test_old_single_objective_journals_still_open(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    records = [
        {"v": 1, "type": "study", "time": 1.0, "name": "old", "metric": "loss", "mode": "min", "sampler": "random",
         "seed": 0, "scheduler": None},
        {"v": 1, "type": "space", "time": 1.0, "version": 0, "space": {"x": {"type": "real", "low": 0.0,
                                                                             "high": 1.0, "log": False}},
         "diff": {"added": ["x"], "removed": [], "changed": {}}},
        {"v": 1, "type": "trial", "time": 1.0, "number": 0, "params": {"x": 0.5}, "space_version": 0},
        {"v": 1, "type": "finish", "time": 2.0, "number": 0, "state": "COMPLETE", "value": 0.25, "reason": None,
         "metrics": {}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    study = Study("old", storage=path)
    assert study.metric == "loss" and not study.objectives.multi
    assert study.best_value == 0.25 and study.best_trials == [study.trials[0]]
    assert study.trials[0].values is None and study.trials[0].feasible


def test_the_best_summary_names_the_front_of_several_objectives_and_the_best_of_one(caplog):
    """Console, CLI and magic say what is best through one line that never raises on several objectives."""
    from nbautoml.console import ConsoleProgress

    several = Study("front", space=Space(x=Real(0.0, 1.0)), metric=["a", "b"], mode=["min", "min"],
                    sampler="evolution", storage=":memory:", seed=1)
    ConsoleProgress(several, file=io.StringIO())
    several.optimize(lambda t: {"a": t.params["x"], "b": (1 - t.params["x"]) ** 2}, trials=6, show=False)
    summary = several.best_summary()
    assert summary is not None and summary.startswith("Pareto front of a/b:")
    assert f"{len(several.best_trials)} trials" in summary
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # the console subscriber did not raise
    one = Study("one", space=Space(x=Real(0.0, 1.0)), storage=":memory:", seed=0)
    assert one.best_summary() is None
    one.optimize(lambda t: t.params["x"], trials=3, show=False)
    best = one.best_trial
    assert best is not None and one.best_summary(with_params=True) == (
        f"best value={best.value:.6g} (trial {best.number}): {best.params}")
