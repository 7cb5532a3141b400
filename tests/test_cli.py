"""python -m nbautoml, end to end in subprocesses (each test in its own temporary directory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbautoml.cli import parse_duration, split_spec

SPEC = """\
import math
offset = 0.25
# %%automl --trials 5 --sampler random --metric value --seed 0
x = hp.float("x", -2.0, 2.0)
k = hp.choice("k", [1, 2])
(x - offset) ** 2 + math.log(k)
"""


def nbautoml(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBAUTOML_QUIET": ""}
    env.pop("NBAUTOML_QUIET")
    return subprocess.run([sys.executable, "-m", "nbautoml", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_parse_duration() -> None:
    assert parse_duration("90") == 90 and parse_duration("90s") == 90 and parse_duration("10m") == 600
    assert parse_duration("1h30m") == 5400 and parse_duration("1.5h") == 5400 and parse_duration("2 min") == 120
    for bad in ("", "soon", "10x", "0", "m"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


def test_split_spec() -> None:
    setup, cell, offset, flags = split_spec(SPEC)
    assert setup.splitlines() == ["import math", "offset = 0.25"]
    assert cell.splitlines()[0].startswith("x = hp.float") and offset == 3
    assert flags == "--trials 5 --sampler random --metric value --seed 0"
    assert split_spec("x = hp.int('x', 1, 2)") == ("", "x = hp.int('x', 1, 2)", 0, "")


def test_run_list_status_export(tmp_path: Path) -> None:
    (tmp_path / "quad.py").write_text(SPEC)
    done = nbautoml("run", "quad.py", "--trials", "4", cwd=tmp_path)  # the command line beats the file's flags
    assert done.returncode == 0, done.stderr
    assert "study 'quad': FINISHED · 4 finished (4 complete)" in done.stdout
    assert "trial 3 COMPLETE" in done.stderr  # the console front end: one line per trial
    again = nbautoml("run", "quad.py", cwd=tmp_path)  # the file's --trials 5: continues the same study
    assert again.returncode == 0 and "5 finished" in again.stdout
    listed = nbautoml("list", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.startswith("quad: 5 finished best value=")
    status = nbautoml("status", "quad", "--top", "2", cwd=tmp_path)
    assert status.returncode == 0 and "best value=" in status.stdout
    assert len([line for line in status.stdout.splitlines() if "COMPLETE" in line]) == 2
    exported = nbautoml("export", "quad", "trials.json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    data = json.loads((tmp_path / "trials.json").read_text())
    assert data["name"] == "quad" and len(data["trials"]) == 5
    assert nbautoml("export", "quad", "trials.csv", cwd=tmp_path).returncode == 0
    assert (tmp_path / "trials.csv").read_text().startswith("number,state,value")


def test_errors_exit_2_with_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("lo = 1\n# %%automl\nx = hp.float('x', lo, 2)\nx\n")
    done = nbautoml("run", "bad.py", cwd=tmp_path)
    assert done.returncode == 2
    assert "bad.py line 3: hp.float: low must be a literal" in done.stderr and "hp.float('x', lo, 2)" in done.stderr
    missing = nbautoml("status", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no study journal" in missing.stderr
    usage = nbautoml("run", "bad.py", "--sampler", "tpe", cwd=tmp_path)
    assert usage.returncode == 2 and "argument --sampler: invalid choice" in usage.stderr
    assert nbautoml("list", cwd=tmp_path).stdout.strip() == "no studies in ./.nbautoml"


def test_cli_never_imports_ipython(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text("x = hp.int('x', 1, 3)\nx\n")
    code = ("import sys\nfrom nbautoml.cli import main\nrc = main(['run', 'tiny.py', '--trials', '2', "
            "'--sampler', 'random', '--metric', 'value'])\n"
            "bad = [m for m in ('IPython', 'ipywidgets', 'bokeh', 'torch') if m in sys.modules]\n"
            "print(rc, bad)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr


def test_fit_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (the subprocess runs above cover the entry point): a CSV in, a leaderboard and a model out."""
    from sklearn.datasets import load_iris

    from nbautoml.cli import main

    load_iris(as_frame=True).frame.to_csv(tmp_path / "iris.csv", index=False)
    rc = main(["fit", "iris.csv", "--target", "target", "--trials", "2", "--epochs", "2", "--sampler", "random",
               "--name", "iris", "--export", "model"])
    out = capsys.readouterr().out
    assert rc == 0 and "study 'iris'" in out and "2 finished" in out and "model: " in out
    assert (tmp_path / "model").exists()


def test_fit_options_map_the_fused_flags() -> None:
    from nbautoml.cli import build_parser, fit_options

    args = build_parser().parse_args(["fit", "d.csv", "--target", "y"])
    assert fit_options(args)["fused"] == "auto" and fit_options(args)["group_size"] is None
    args = build_parser().parse_args(["fit", "d.csv", "--target", "y", "--fused", "off", "--group-size", "8"])
    assert fit_options(args)["fused"] is False and fit_options(args)["group_size"] == 8
    assert fit_options(build_parser().parse_args(["fit", "d.csv", "--target", "y", "--fused", "on"]))["fused"] is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "d.csv", "--target", "y", "--fused", "maybe"])


def test_search_options_defaults_and_cluster_address() -> None:
    from nbautoml.cli import DEFAULT_TRIALS, build_parser, search_options

    args = build_parser().parse_args(["run", "x.py"])
    study, run = search_options(args)
    assert study == dict(metric="val_loss", mode=None, sampler=None, scheduler="asha", storage="auto", seed=None,
                         fresh=False)  # early stopping by default; --scheduler none turns it off
    assert search_options(build_parser().parse_args(["run", "x.py", "--scheduler", "none"]))[0]["scheduler"] is None
    assert run == dict(trials=DEFAULT_TRIALS, timeout=None, parallel=1, runner="thread")
    args = build_parser().parse_args(["run", "x.py", "--timeout", "2m", "--cluster", "10.0.0.5:8786",
                                      "--scheduler", "none"])
    study, run = search_options(args)
    assert run["trials"] is None and run["timeout"] == 120 and run["runner"] == "tcp://10.0.0.5:8786"
    assert study["scheduler"] is None
