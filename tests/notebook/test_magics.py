"""%%automl and %automl through a real IPython InteractiveShell."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbautoml.engine.study import get_frontend, set_frontend
from nbautoml.engine.trial import TrialState
from nbautoml.notebook import magics

QUAD = """\
x = hp.float("x", -2.0, 2.0)
k = hp.choice("k", [1, 2])
y = (x - offset) ** 2 + k
y
"""
SLOW = """\
x = hp.float("x", 0.0, 1.0)
for step in range(trial.resume_step, 100):
    time.sleep(0.02)
    trial.report(step, val_loss=x + 1 / (step + 1))
    if trial.should_stop():
        break
"""


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    before = get_frontend()
    magics.load_ipython_extension(shell)
    set_frontend(None)  # no progress output; test_load_ext checks the real front end
    magics.REGISTRY.clear()
    shell.user_ns.update(offset=0.25, time=time)
    yield shell
    for entry in magics.REGISTRY.values():
        entry.study.stop()
        entry.study.wait(10)
    magics.REGISTRY.clear()
    for name in ("study", "study_best", "fit_result", "x", "y"):
        shell.user_ns.pop(name, None)
    set_frontend(before)


def cell(shell: InteractiveShell, line: str, body: str = QUAD) -> Any:
    return shell.run_cell_magic("automl", line, body)


def test_load_ext_sets_up_namespace_magics_front_end_and_help(ip: InteractiveShell) -> None:
    import nbautoml

    ip.run_line_magic("load_ext", "nbautoml")
    assert ip.user_ns["hp"] is nbautoml.hp and ip.user_ns["nbautoml"] is nbautoml
    assert ip.find_cell_magic("automl") is not None and ip.find_line_magic("automl") is not None
    magics.load_ipython_extension(ip)
    assert get_frontend() is magics.notebook_frontend
    doc = ip.find_line_magic("automl").__doc__
    for flag in ("--trials", "--timeout", "--sampler", "--scheduler", "--runner", "--cluster", "--background",
                 "--fresh", "--storage", "%automl fit", "--target", "%automl resume", "%automl export",
                 "study_best"):
        assert flag in doc
    cell(ip, "--trials 2 --sampler random --storage :memory:")  # runs with the real front end (panel or bar)
    study = ip.user_ns["study"]
    assert study.n_finished == 2
    panel = study.frontend
    if hasattr(panel, "resume_callback"):  # the panel's Resume continues through the magic, in the background
        assert panel.resume_callback is not None
        panel.resume(4)
        assert study.wait(30) and study.n_finished == 4
        assert ip.user_ns["study_best"].x == study.best_params["x"]


def test_full_search_sets_study_and_study_best_without_clobbering(ip: InteractiveShell,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ip.user_ns.update(x="mine", y=[1])
    assert cell(ip, "--trials 6 --sampler random --seed 0 --metric value") is None
    study = ip.user_ns["study"]
    assert study.name.startswith("cell-") and study.n_finished == 6 and study.metric == "value"
    assert Path(f".nbautoml/{study.name}.jsonl").exists()
    assert ip.user_ns["x"] == "mine" and ip.user_ns["y"] == [1]
    best = ip.user_ns["study_best"]
    assert best.x == study.best_params["x"] and best.y == pytest.approx(study.best_value)
    out = capsys.readouterr().out
    assert "budget reached: 6 of 6" in out and "best value=" in out


def test_torch_cell_values_come_from_train_and_best_model_is_kept(ip: InteractiveShell) -> None:
    import torch

    torch.manual_seed(0)
    ip.user_ns.update(X=torch.randn(64, 4), Y=torch.randint(0, 2, (64,)))
    body = """\
model = nbautoml.torch.mlp(4, 2, layers=hp.int("layers", 1, 2), units=hp.choice("units", [8, 16]))
nbautoml.torch.train(model, (X, Y), lr=hp.float("lr", 1e-3, 1e-1, log=True), epochs=2, batch_size=32, seed=0)
"""
    cell(ip, "--trials 2 --sampler random --seed 1 --metric val_acc", body)
    study = ip.user_ns["study"]
    assert study.mode == "max" and all(t.state is TrialState.COMPLETE for t in study.trials)
    best = study.best_trial
    assert best.value == pytest.approx(max(v for _, v in best.history("val_acc")))
    assert isinstance(ip.user_ns["study_best"].model, torch.nn.Module)


def test_rerun_continues_and_edited_range_is_a_new_space_version(ip: InteractiveShell,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, "--trials 3 --sampler random --seed 0")
    name = ip.user_ns["study"].name
    cell(ip, "--trials 3 --sampler random --seed 0")
    assert "nothing to run: 3 of 3" in capsys.readouterr().out
    assert ip.user_ns["study"].n_finished == 3
    cell(ip, "--trials 5 --sampler random", QUAD.replace("-2.0, 2.0", "-1.0, 1.0"))
    study = ip.user_ns["study"]
    assert study.name == name and study.n_finished == 5 and study.space_version == 1
    assert "space version 1: ~x;" in capsys.readouterr().out  # the edit is shown with the reused history
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert all(-1 <= t.params["x"] <= 1 for t in study.trials[3:])
    cell(ip, "--trials 2 --sampler random --fresh")
    assert ip.user_ns["study"].n_finished == 2 and ip.user_ns["study"].space_version == 0
    other = QUAD.replace("+ k", "- k")
    cell(ip, "--trials 1 --sampler random", other)
    assert ip.user_ns["study"].name != name


def test_memory_storage_rerun_continues_the_same_object(ip: InteractiveShell) -> None:
    cell(ip, "--trials 2 --sampler random --storage :memory: --name mem")
    first = ip.user_ns["study"]
    cell(ip, "--trials 4 --sampler random --storage :memory: --name mem")
    assert ip.user_ns["study"] is first and first.n_finished == 4
    assert not Path(".nbautoml/mem.jsonl").exists()


def test_flags_reach_the_study(ip: InteractiveShell) -> None:
    body = "x = hp.float('x', 0.0, 1.0)\n{'val_acc': x, 'other': 1.0}"
    cell(ip, "--name flags --trials 3 --metric val_acc --sampler random --seed 3 --scheduler median "
             "--parallel 2 --storage custom.jsonl --timeout 1m", body)
    study = ip.user_ns["study"]
    assert (study.name, study.metric, study.mode, study.sampler_name, study.seed) == (
        "flags", "val_acc", "max", "random", 3)
    assert study.scheduler is not None and Path("custom.jsonl").exists()
    assert study.best_value == max(t.params["x"] for t in study.trials)
    cell(ip, "--name minacc --trials 2 --metric val_acc --mode min --sampler random", body)
    assert ip.user_ns["study"].mode == "min"
    with pytest.raises(UsageError, match="optimises metric='val_acc', not 'other'"):
        cell(ip, "--name flags --trials 4 --metric other --sampler random --storage custom.jsonl", body)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("--trials x", "argument --trials: expected a positive integer"),
        ("--trials 0", "argument --trials"),
        ("--timeout soon", "argument --timeout: invalid duration"),
        ("--sampler tpe", "argument --sampler: invalid choice"),
        ("--scheduler bohb", "argument --scheduler: invalid choice"),
        ("--mode up", "argument --mode: invalid choice"),
        ("--parallel -1", "argument --parallel"),
        ("--runner ray", "argument --runner: invalid choice"),
        ("--bogus 1", "unrecognized arguments: --bogus"),
        ("--seed abc", "argument --seed"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(ip: InteractiveShell, line: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        cell(ip, line)
    assert "study" not in ip.user_ns


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("a = 1\nb = hp.float('b', 0, a)", "cell line 3: hp.float: high must be a literal"),
        ("b = hp.int('b', 5, 1)", "cell line 2: hp.int('b'): Int low (5) must be less than high (1)"),
        ("b = hp.int('b', 1, 5)\nc = hp.int('b', 1, 6)", "cell line 3: parameter 'b' is declared twice"),
        ("b = (", "cell line 2: syntax error"),
        ("b = 1\nb * 2", "no hp.float / hp.int / hp.choice"),
    ],
)
def test_bad_cells_are_usage_errors_quoting_the_line(ip: InteractiveShell, body: str, words: str) -> None:
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        cell(ip, "--trials 2", body)


def test_errors_through_run_cell_and_failing_trials(ip: InteractiveShell,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    result = ip.run_cell("%%automl --trials x\nx = hp.float('x', 0, 1)")
    assert isinstance(result.error_in_exec, UsageError)
    failing = ip.run_cell("%%automl --trials 2 --sampler random\nz = hp.int('z', 1, 3)\nundefined_name + z")
    assert isinstance(failing.error_in_exec, RuntimeError)  # every trial failed: Run All stops here
    assert "all 2 trials" in str(failing.error_in_exec)
    captured = capsys.readouterr()
    assert "2 of 2 trials failed" in captured.out and "NameError" in captured.out
    assert "undefined_name + z" in captured.err  # the traceback shows the cell's own line
    assert ip.user_ns["study_best"] is None


def test_background_stop_status_resume(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, "--name bg --trials 3 --sampler random --background", SLOW)
    study = ip.user_ns["study"]
    deadline = time.time() + 10
    while not study.trials or not study.trials[0].reports:
        assert time.time() < deadline
        time.sleep(0.02)
    assert study.state.value == "RUNNING"
    with pytest.raises(UsageError, match="still running"):
        cell(ip, "--name bg --trials 3 --sampler random", SLOW)
    ip.run_line_magic("automl", "status")
    assert "bg: RUNNING" in capsys.readouterr().out
    ip.run_line_magic("automl", "stop bg")
    assert study.wait(10)
    assert study.state.value == "STOPPED"
    assert study.trials[0].state is TrialState.INTERRUPTED
    ip.run_line_magic("automl", "stop")
    assert "nothing is running" in capsys.readouterr().out
    ip.user_ns["time"] = type("NoSleep", (), {"sleep": staticmethod(lambda s: None)})  # resume sees the new ns
    ip.run_line_magic("automl", "resume bg")
    assert study.n_finished == 3 and study.state.value == "FINISHED"
    rerun = study.trials[1]
    assert rerun.resumed_from == 0 and rerun.state is TrialState.COMPLETE
    ip.run_line_magic("automl", "resume bg --trials 4")
    assert study.n_finished == 4


def test_line_commands(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, "--name lines --trials 3 --sampler random --metric value")
    study = ip.user_ns["study"]
    best = ip.run_line_magic("automl", "best lines")
    assert best == {"number": study.best_trial.number, "value": study.best_value, "params": study.best_params}
    assert ip.run_line_magic("automl", "best") == best
    ip.run_line_magic("automl", "status lines")
    out = capsys.readouterr().out
    assert "study 'lines': FINISHED" in out and "best value=" in out
    ip.run_line_magic("automl", "export lines trials.csv")
    ip.run_line_magic("automl", "export lines trials.json")
    ip.run_line_magic("automl", "export lines copy.jsonl")
    assert Path("trials.csv").read_text().startswith("number,state,value")
    assert len(json.loads(Path("trials.json").read_text())["trials"]) == 3
    assert Path("copy.jsonl").read_text() == Path(".nbautoml/lines.jsonl").read_text()
    with pytest.raises(UsageError, match=r"export: cannot export a study to 'trials\.txt'"):
        ip.run_line_magic("automl", "export lines trials.txt")
    magics.REGISTRY.clear()  # as after a kernel restart
    ip.run_line_magic("automl", "list")
    assert "lines: 3 finished" in capsys.readouterr().out
    ip.run_line_magic("automl", "status lines")  # from the journal
    assert "3 finished" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"has not run in this kernel .*re-run its cell"):
        ip.run_line_magic("automl", "resume lines")
    with pytest.raises(UsageError, match="no study named 'nope'"):
        ip.run_line_magic("automl", "best nope")
    with pytest.raises(UsageError, match="unknown command 'frobnicate'"):
        ip.run_line_magic("automl", "frobnicate")
    with pytest.raises(UsageError, match="needs a command"):
        ip.run_line_magic("automl", "")
    with pytest.raises(UsageError, match="the following arguments are required: NAME"):
        ip.run_line_magic("automl", "resume")


def test_fit_line_magic(ip: InteractiveShell) -> None:
    import pandas as pd
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    ip.user_ns["df"] = frame.rename(columns={"target": "species"})
    with pytest.raises(UsageError, match="the following arguments are required: --target"):
        ip.run_line_magic("automl", "fit df")
    with pytest.raises(UsageError, match="cannot evaluate DATA 'missing_df'"):
        ip.run_line_magic("automl", "fit missing_df --target species")
    result = ip.run_line_magic("automl", "fit df --target species --trials 2 --epochs 2 --sampler random "
                                         "--name irisfit")
    assert ip.user_ns["fit_result"] is result and ip.user_ns["study"] is result.study
    assert result.study.name == "irisfit" and result.study.n_finished == 2
    assert len(result.predict(frame.drop(columns="target").head(5))) == 5
    again = ip.run_line_magic("automl", "resume irisfit --trials 3")
    assert again.study.n_finished == 3
    assert isinstance(result.leaderboard, pd.DataFrame)


@pytest.mark.slow
def test_dask_runner_sends_the_namespace_to_workers(ip: InteractiveShell) -> None:
    import threading

    ip.run_cell("def shifted(v):\n    return (v - offset) ** 2")
    ip.user_ns["unpicklable"] = threading.Lock()
    with pytest.warns(UserWarning, match="cannot be pickled\\): unpicklable"):
        cell(ip, "--name dd --trials 3 --sampler random --metric value --runner dask --parallel 2",
             "x = hp.float('x', 0.0, 1.0)\nimport os\n{'value': shifted(x), 'pid': os.getpid()}")
    study = ip.user_ns["study"]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert all(t.value == pytest.approx((t.params["x"] - 0.25) ** 2) for t in study.trials)
    assert {t.metrics["pid"] for t in study.trials}.isdisjoint({os.getpid()})  # ran in worker processes
    assert ip.user_ns["study_best"] is None


def test_a_quoted_name_loses_its_quotes_and_an_empty_one_is_refused(ip: InteractiveShell, tmp_path) -> None:
    cell(ip, '--name "a b" --trials 2 --sampler random')
    assert ip.user_ns["study"].name == "a b"
    assert [p.name for p in (tmp_path / ".nbautoml").glob("*.jsonl")] == ["a%20b.jsonl"]
    for line in ("--name '' --trials 2", '--name "a b --trials 2'):
        with pytest.raises(UsageError):
            cell(ip, line)
    assert [p.name for p in (tmp_path / ".nbautoml").glob("*.jsonl")] == ["a%20b.jsonl"]  # nothing written


def test_a_cell_that_cannot_compile_writes_no_journal(ip: InteractiveShell, tmp_path) -> None:
    with pytest.raises(UsageError, match="line 3: syntax error: 'return' outside function"):
        cell(ip, "--name broken --trials 2", "x = hp.float('x', 0.0, 1.0)\nreturn x")
    assert not (tmp_path / ".nbautoml").exists() or not list((tmp_path / ".nbautoml").glob("*.jsonl"))
