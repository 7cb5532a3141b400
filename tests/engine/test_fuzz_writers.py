"""Concurrent writers on one study (threads and processes), a kill in the re-run window, bad inputs refused
before anything is written. docs/RELIABILITY.md counts what these tests try."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading

import pytest

import nbautoml as na
from nbautoml.engine.storage import default_journal_path
from nbautoml.engine.storage.journal import JournalStorage
from nbautoml.engine.storage.lines import decode_line
from nbautoml.engine.trial import TrialState

SPACE = na.Space(x=na.Real(0, 1))


def value_of(trial):
    return trial.params["x"]


def create(name: str, seed: int, gate: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        gate.wait()
        study = na.Study(name, SPACE, sampler="random", seed=seed)
        study.optimize(value_of, trials=3, show=False)
    except BaseException as error:  # collected and asserted by the test
        errors.append(error)


def test_eight_threads_creating_one_study_at_once_leave_one_readable_journal(tmp_path):
    for attempt in range(5):
        name = f"new-{attempt}"
        gate = threading.Barrier(8)
        errors: list[BaseException] = []

        threads = [threading.Thread(target=create, args=(name, seed, gate, errors)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        records = JournalStorage(default_journal_path(name)).read()
        assert sum(r["type"] == "study" for r in records) == 1
        assert [r["version"] for r in records if r["type"] == "space"] == [0]  # same space: one version
        study = na.load_study(name)
        assert study.n_finished == 3 and [t.number for t in study.trials] == [0, 1, 2]


def test_two_study_objects_editing_the_space_in_turn_keep_the_journal_readable(tmp_path):
    first = na.Study("edit", SPACE, sampler="random", seed=1)
    second = na.Study("edit", SPACE, sampler="random", seed=2)
    for width in range(2, 8):  # each edits in turn, the other's copy is stale every time
        editor = first if width % 2 else second
        editor.set_space(na.Space(x=na.Real(0, float(width))))
        editor.optimize(lambda t: t.params["x"], trials=width, show=False)
    study = na.load_study("edit")
    assert len(study._replayed.spaces) == 7 and study.space == na.Space(x=na.Real(0, 7.0))
    versions = [r["version"] for r in JournalStorage(default_journal_path("edit")).read() if r["type"] == "space"]
    assert versions == list(range(7))
    assert study.n_finished == 7


def test_four_thread_writers_on_trials_40_finish_exactly_40(tmp_path):
    studies = [na.Study("budget", SPACE, sampler="random", seed=seed) for seed in range(4)]
    for study in studies:
        study.optimize(lambda t: t.params["x"], trials=40, parallel=2, background=True, show=False)
    for study in studies:
        assert study.wait(120)
    final = na.load_study("budget")
    assert final.n_finished == 40 and len(final.trials) == 40


WRITER = """
import sys, nbautoml as na
tag, trials = sys.argv[1], int(sys.argv[2])
space = na.Space(x=na.Real(0, 1)) if tag != "p1" else na.Space(x=na.Real(0, 2))  # one process edits the space
study = na.Study("procs", space, sampler="random", seed=int(tag[1:]))
study.optimize(lambda t: t.params["x"], trials=trials, parallel=2, show=False)
"""


@pytest.mark.slow
def test_four_processes_creating_editing_and_optimising_one_study(tmp_path):
    env = {**os.environ, "NBAUTOML_QUIET": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, f"p{i}", "24"], cwd=tmp_path, env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    path = default_journal_path("procs", root=tmp_path)
    lines = path.read_bytes().splitlines()
    assert all(decode_line(line) for line in lines)  # every line whole, checksummed
    study = na.load_study(path)
    assert study.n_finished == 24 and len(study.trials) == 24
    assert sorted(t.number for t in study.trials) == list(range(24))


KILL_IN_WINDOW = """
import os, sys, nbautoml as na
def objective(trial):
    for step in range(trial.resume_step, 4):
        (trial.checkpoint_dir / "state.json").write_text(str(step))
        trial.report(step, value=float(step))
        if step == 1 and trial.resumed_from is None:
            trial.host.stop()
        if trial.should_stop():
            return None
    return float(trial.resume_step)
study = na.Study("window", na.Space(x=na.Real(0, 1)), sampler="random", keep_checkpoints=None)
study.optimize(objective, trials=1, show=False)  # trial 0 stops after step 1: INTERRUPTED, checkpoint kept
real = os.replace
def die(src, dst):
    if "trial-" in str(src):
        os._exit(9)  # killed after the re-run's record, before its checkpoint folder moved
    return real(src, dst)
os.replace = die
study.optimize(objective, trials=1, show=False)
"""


@pytest.mark.slow
def test_a_kill_between_a_reruns_record_and_its_checkpoint_move_loses_nothing(tmp_path):
    env = {**os.environ, "NBAUTOML_QUIET": "1"}
    done = subprocess.run([sys.executable, "-c", KILL_IN_WINDOW], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    path = default_journal_path("window", root=tmp_path)
    study = na.Study("window", storage=path, keep_checkpoints=None)
    study.optimize(lambda t: float(t.resume_step), trials=1, show=False)
    states = [(t.number, t.state, t.resumed_from, t.resume_step) for t in study.trials]
    assert states[:2] == [(0, TrialState.INTERRUPTED, None, 0), (1, TrialState.INTERRUPTED, 0, 2)]
    assert states[2][1:] == (TrialState.COMPLETE, 1, 2)  # continued after step 1, not from 0
    folders = sorted(p.name for p in path.with_suffix("").iterdir())
    assert folders == ["trial-2"]  # no orphan trial-0/ or trial-1/


def test_fresh_moves_a_journal_with_a_bad_middle_line_aside(tmp_path):
    study = na.Study("bad", SPACE, sampler="random")
    study.optimize(lambda t: t.params["x"], trials=2, show=False)
    path = default_journal_path("bad")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(na.engine.storage.records.JournalError, match="fresh=True"):
        na.Study("bad", SPACE)
    again = na.Study("bad", SPACE, sampler="random", fresh=True)  # the error's own remedy works
    assert again.trials == [] and len(list(path.parent.glob("bad.old-*.jsonl"))) == 1


BAD_SETTINGS = [
    (dict(sampler="tpe"), {}, "unknown sampler 'tpe'"),
    (dict(sampler=object()), {}, "cannot be journaled"),
    (dict(mode="maximum"), {}, "mode"),
    ({}, dict(timeout=math.nan), "timeout must be positive finite seconds"),
    ({}, dict(timeout="soon"), "invalid timeout 'soon'"),
    ({}, dict(timeout=-1), "timeout must be positive"),
    ({}, dict(parallel=2.5), "parallel must be a positive integer, got 2.5"),
    ({}, dict(parallel=True), "parallel must be a positive integer"),
    ({}, dict(trials=2.0), "trials must be a non-negative integer"),
]


@pytest.mark.parametrize(("study_options", "run_options", "message"), BAD_SETTINGS)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, study_options, run_options, message):
    path = default_journal_path("bad-settings")
    with pytest.raises(ValueError, match=message):
        study = na.Study("bad-settings", SPACE, **study_options)
        before = path.read_bytes() if path.exists() else b""
        try:
            study.optimize(lambda t: t.params["x"], show=False, **run_options)
        finally:
            assert (path.read_bytes() if path.exists() else b"") == before  # optimize wrote nothing
    if study_options:
        assert not path.exists()


def test_duration_strings_are_accepted_like_the_magics(tmp_path):
    study = na.Study("timed", SPACE, sampler="random")
    study.optimize(lambda t: t.params["x"], trials=2, timeout="10s", show=False)
    assert study.n_finished == 2


def test_an_integer_beyond_float_range_is_an_invalid_value_with_a_reason(tmp_path):
    study = na.Study("huge", SPACE, sampler="random")
    study.optimize(lambda t: 10**400, trials=1, show=False)
    [trial] = study.trials
    assert trial.state is TrialState.FAILED and trial.reason.startswith("invalid value: an integer of 1329 bits")
    assert json.dumps(trial.reason)
