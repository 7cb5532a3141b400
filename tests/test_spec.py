"""nbautoml.spec: reading hp.* declarations, hp during and outside trials, running a cell as a trial."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nbautoml import hp as public_hp
from nbautoml.engine.trial import Trial, TrialState, using_trial
from nbautoml.space import Choice, Int, Real, Space
from nbautoml.spec import (
    CellObjective,
    HPOutsideTrialWarning,
    SpecError,
    UndeclaredParameter,
    cell_value,
    hp,
    parse_cell,
)

CELL = """\
import math
lr = hp.float("lr", 1e-4, 1e-1, log=True)
layers = hp.int("layers", 1, 4)
act = hp.choice("act", ["relu", "gelu"])
score = math.log10(lr) ** 2 + layers
score
"""


def test_from_nbautoml_import_hp_is_the_spec_hp() -> None:
    assert public_hp is hp


def test_parse_collects_the_space_in_order() -> None:
    spec = parse_cell(CELL)
    assert spec.space == Space(lr=Real(1e-4, 1e-1, log=True), layers=Int(1, 4), act=Choice(["relu", "gelu"]))
    assert spec.space.names == ["lr", "layers", "act"]
    assert spec.declarations["layers"].line == 3


def test_keywords_aliases_nested_and_repeated_declarations() -> None:
    source = """\
from nbautoml import hp as H
import nbautoml as nb
def block(i):
    return H.int(name="units", low=8, high=64, log=True)
a = [block(i) for i in range(2)]
b = nb.hp.choice("opt", options=("adam", "sgd"))
c = hp.float("p", 0, 1)
d = hp.float("p", 0, 1)   # the same spec twice is one parameter
"""
    space = parse_cell(source).space
    assert space == Space(units=Int(8, 64, log=True), opt=Choice(["adam", "sgd"]), p=Real(0, 1))


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        ("x = 1\ny = hp.float('y', 0, x)", 2, "high must be a literal"),
        ("hp.float(name, 0, 1)", 1, "name must be a literal"),
        ("hp.float('y', 2, 1)", 1, "low (2) must be less than high (1)"),
        ("hp.float('y', 0, 1, log=True)", 1, "log=True needs low > 0"),
        ("hp.int('n', 1, 2.5)", 1, "must be an integer"),
        ("hp.choice('c', [])", 1, "at least one option"),
        ("hp.choice('c', 'abc')", 1, "must be a list or tuple"),
        ("hp.int('n', 1, 3)\n\nhp.int('n', 1, 4)", 3, "declared twice with different specs"),
        ("hp.uniform('u', 0, 1)", 1, "hp.uniform does not exist"),
        ("hp.float('u', 0)", 1, "needs high"),
        ("hp.float('u', 0, 1, step=2)", 1, "unknown argument 'step'"),
        ("hp.float(*args)", 1, "*args"),
        ("hp.float('my-lr', 0, 1)", 1, "identifier"),
        ("x = (1,\ny = 2", 1, "syntax error"),
    ],
)
def test_errors_name_the_line_and_quote_it(source: str, line: int, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_cell(source, line_offset=1)
    error = caught.value
    assert error.line == line + 1
    assert words in str(error)
    assert f"cell line {line + 1}:" in str(error)
    if "syntax" not in words:
        assert source.splitlines()[line - 1].strip() in str(error)


def test_compile_errors_surface_before_any_trial() -> None:
    """Already when the cell is read, before a study (and its journal) is made for it."""
    with pytest.raises(SpecError, match="line 3: syntax error: 'return' outside function"):
        parse_cell("x = hp.int('x', 1, 2)\nreturn x", line_offset=1)


def test_key_ignores_hp_arguments_comments_and_layout_but_not_code() -> None:
    base = parse_cell(CELL).default_name
    assert base.startswith("cell-") and len(base) == 13
    edited = CELL.replace("1e-4, 1e-1", "1e-5, 1.0").replace("[\"relu\", \"gelu\"]", "['relu']")
    assert parse_cell(edited).default_name == base
    assert parse_cell("# a comment\n\n" + CELL).default_name == base
    assert parse_cell(CELL.replace("+ layers", "- layers")).default_name != base
    assert parse_cell(CELL.replace("math.log10", "math.log2")).default_name != base


def test_hp_inside_a_trial_returns_the_trials_values() -> None:
    trial = Trial(3, {"lr": 0.01, "layers": 2, "act": "gelu"})
    with using_trial(trial):
        assert hp.float("lr", 1e-4, 1e-1, log=True) == 0.01
        assert hp.int("layers", 1, 4) == 2
        assert hp.choice("act", ["relu", "gelu"]) == "gelu"
        with pytest.raises(UndeclaredParameter, match=r"hp.float\('other'\) is not in trial 3's search space"):
            hp.float("other", 0, 1)


def test_hp_outside_a_trial_warns_and_returns_the_documented_default() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert hp.float("lr", 1e-4, 1e-2, log=True) == pytest.approx(1e-3)
        assert hp.float("p", 0.0, 1.0) == 0.5
        assert hp.int("n", 1, 4) == 2
        assert hp.int("k", 1, 100, log=True) == 10
        assert hp.choice("c", ["a", "b"]) == "a"
    assert len(caught) == 5 and all(w.category is HPOutsideTrialWarning for w in caught)
    assert "outside a trial" in str(caught[0].message)
    with pytest.raises(ValueError, match="'bad'"):
        hp.float("bad", 1, 0)


def test_hp_using_fixes_values_outside_a_trial() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with hp.using({"lr": 0.05, "act": "gelu"}):
            assert hp.float("lr", 1e-4, 1e-1) == 0.05
            assert hp.choice("act", ["relu", "gelu"]) == "gelu"


def test_cell_value_rules() -> None:
    assert cell_value(1.5) == 1.5 and cell_value(3) == 3
    assert cell_value(np.float32(2.0)) == 2.0
    assert cell_value({"val_loss": 1.0}) == {"val_loss": 1.0}
    assert cell_value(np.array([0.5])) is not None
    for nothing in (None, True, "text", [1.0, 2.0], np.zeros(3), object()):
        assert cell_value(nothing) is None

    class DictLike:
        def keys(self) -> list[str]:
            return ["val_acc"]

        def __getitem__(self, key: str) -> float:
            return 0.9

    assert cell_value(DictLike()) == {"val_acc": 0.9}


def test_trials_run_in_a_copy_of_the_namespace() -> None:
    source = "x = hp.float('x', 0, 1)\ndata.append(x)\ncounter = counter + 1\nresult = x * 2\nresult"
    user = {"data": [], "counter": 10, "result": "mine"}
    objective = CellObjective(parse_cell(source), user)
    assert objective(Trial(0, {"x": 0.25}, metric="value")) == 0.5
    assert objective(Trial(1, {"x": 0.1}, metric="value")) == pytest.approx(0.2)
    assert user["counter"] == 10 and user["result"] == "mine"  # never rebound
    assert user["data"] == [0.25, 0.1]  # shared objects are shared (documented)
    assert objective.best_number == 1 and objective.best_value == pytest.approx(0.2)
    assert objective.best_namespace == {"x": 0.1, "counter": 11, "result": pytest.approx(0.2)}


def test_with_namespace_keeps_the_best_and_pickling_keeps_what_travels() -> None:
    import pickle
    import threading

    import cloudpickle

    objective = CellObjective(parse_cell("x = hp.float('x', 0, 1)\nx + shift"), {"shift": 1.0, "In": [],
                                                                                "lock": threading.Lock()})
    objective(Trial(0, {"x": 0.5}, metric="value"))
    clone = objective.with_namespace({"shift": 2.0})
    assert clone.best_namespace == {"x": 0.5} and clone.best_number == 0
    assert clone(Trial(1, {"x": 0.5}, metric="value")) == 2.5 and objective.namespace["shift"] == 1.0
    with pytest.warns(UserWarning, match=r"cannot be pickled\): lock"):
        copied = pickle.loads(cloudpickle.dumps(objective))  # as the Dask runner ships it
    assert set(copied.namespace) == {"shift"} and copied.best_namespace is None
    assert copied(Trial(2, {"x": 0.25}, metric="value")) == 1.25


def test_best_namespace_follows_the_mode_and_ignores_stopped_trials() -> None:
    objective = CellObjective(parse_cell("x = hp.float('x', 0, 1)\n{'acc': x}"))
    objective(Trial(0, {"x": 0.2}, metric="acc", mode="max"))
    objective(Trial(1, {"x": 0.7}, metric="acc", mode="max"))
    stopped = Trial(2, {"x": 0.9}, metric="acc", mode="max")
    stopped.stop_seen = True
    objective(stopped)
    assert objective.best_number == 1


def test_no_last_expression_means_the_reports_decide() -> None:
    source = "x = hp.float('x', 0, 1)\nfor step in range(3):\n    trial.report(step, val_loss=x + step)\nmodel = 'm'"
    objective = CellObjective(parse_cell(source))
    trial = Trial(0, {"x": 0.5}, metric="val_loss")
    assert objective(trial) is None
    assert [r.metrics["val_loss"] for r in trial.reports] == [0.5, 1.5, 2.5]
    assert objective.best_value == 0.5 and objective.best_namespace == {"x": 0.5, "step": 2, "model": "m"}


def test_cell_objective_in_a_study() -> None:
    from nbautoml import Study

    spec = parse_cell("x = hp.float('x', -1, 1)\n(x - 0.25) ** 2")
    study = Study("spec-study", spec.space, sampler="random", seed=0, storage=":memory:")
    study.optimize(CellObjective(spec), trials=4, show=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert study.best_value == pytest.approx(min((t.params["x"] - 0.25) ** 2 for t in study.trials))
