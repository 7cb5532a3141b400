"""Durable studies with real processes and real files: kill -9, torn writes, concurrent writers, lock takeover."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbautoml as na
from nbautoml.engine.storage.journal import JournalStorage
from nbautoml.engine.storage.lines import decode_line
from nbautoml.engine.storage.records import JournalError, make_record
from nbautoml.engine.trial import TrialState

WORKER = Path(__file__).with_name("journal_worker.py")


def worker(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "NBAUTOML_QUIET": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env, text=True, stdout=subprocess.PIPE, **kwargs)


def records(path: Path) -> list[dict]:
    return [decode_line(line) for line in path.read_bytes().splitlines() if line.strip()]


def wait_for(predicate, timeout=60.0, every=0.02):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def test_kill_minus_9_mid_trial_then_resume_in_a_new_process(tmp_path):
    journal = tmp_path / ".nbautoml" / "killme.jsonl"
    proc = worker("study", str(journal), "20")

    def in_trial_7() -> bool:
        if not journal.exists():
            return False
        reports = [r for r in records(journal) if r["type"] == "report" and r["number"] == 7]
        return len(reports) >= 2

    assert wait_for(in_trial_7), "the study never reached trial 7"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = journal.read_bytes()
    before_lines = before.splitlines(keepends=True)
    if before and not before.endswith(b"\n"):
        before_lines = before_lines[:-1]  # a torn last line is quarantined on open

    resumed = worker("study", str(journal), "20")
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    after_lines = journal.read_bytes().splitlines(keepends=True)
    assert after_lines[: len(before_lines)] == before_lines  # trials 0-6 (and all before the kill) byte-identical

    study = na.load_study(journal)
    states = {t.number: t.state for t in study.trials}
    killed = study.trials[7]
    assert killed.state is TrialState.INTERRUPTED and "its process died" in killed.reason
    reruns = [t for t in study.trials if t.resumed_from == 7]
    assert len(reruns) == 1
    rerun = reruns[0]
    assert rerun.params == killed.params and rerun.state is TrialState.COMPLETE
    assert rerun.resume_step == killed.last_step + 1 >= 1
    assert (rerun.checkpoint_dir / "resume_step.txt").read_text() == str(rerun.resume_step)
    assert sum(s is TrialState.COMPLETE for s in states.values()) == 20
    assert not any(s is TrialState.RUNNING for s in states.values())
    # the re-run's value equals an uninterrupted run of the same params (it continued from its checkpoint)
    expected = sum(killed.params["x"] * (s + 1) for s in range(5))
    assert rerun.value == pytest.approx(expected)


def build_journal(path: Path) -> bytes:
    study = na.Study("torn", na.Space(x=na.Real(0, 1)), sampler="random", seed=0, storage=path)

    def objective(trial):
        trial.report(0, value=trial.params["x"])
        return trial.params["x"]

    study.optimize(objective, trials=4, show=False)
    return path.read_bytes()


def whole_records_before(data: bytes, offset: int) -> list[dict]:
    kept = data[:offset]
    lines = kept.split(b"\n")
    out = [decode_line(line) for line in lines[:-1] if line.strip()]
    with contextlib.suppress(ValueError):  # a last line that lacks only its newline is whole
        out.append(decode_line(lines[-1]))
    return out


def test_torn_write_fuzz_every_offset_in_the_last_three_records(tmp_path):
    source = tmp_path / "src.jsonl"
    data = build_journal(source)
    line_starts = [0, *[i + 1 for i, b in enumerate(data) if b == ord("\n")][:-1]]
    first = line_starts[-3]
    fresh_process_offsets = {first + 1, (first + len(data)) // 2, len(data) - 2}
    for offset in range(first, len(data)):
        path = tmp_path / f"cut-{offset}.jsonl"
        path.write_bytes(data[:offset])
        expected = whole_records_before(data, offset)
        got = JournalStorage(path).read()
        assert got == expected, offset
        corrupt = list(tmp_path.glob(f"cut-{offset}.jsonl.corrupt-*"))
        torn = offset > 0 and data[offset - 1] != ord("\n") and len(expected) == data[:offset].count(b"\n")
        assert bool(corrupt) == torn, offset
        # a study opens on it and appends; the result is a journal that reads whole again
        study = na.Study("torn", storage=path)
        assert len(study.trials) == len([r for r in expected if r["type"] == "trial"])
        study.storage.append(make_record("stop", source="after-repair"))
        if offset in fresh_process_offsets:
            proc = worker("read", str(path))
            out, _ = proc.communicate(timeout=60)
            assert json.loads(out)[-1] == "stop", offset
        else:
            assert JournalStorage(path).read()[-1]["source"] == "after-repair"
        path.unlink()
        for leftover in corrupt:
            leftover.unlink()


def test_a_bad_line_in_the_middle_is_an_error_naming_it_and_the_file_is_untouched(tmp_path):
    path = tmp_path / "mid.jsonl"
    data = build_journal(path)
    lines = data.splitlines(keepends=True)
    lines[3] = b'{"v":1,"type":"report", garbage\n'
    broken = b"".join(lines)
    path.write_bytes(broken)
    with pytest.raises(JournalError, match=r"line 4 is not a valid record \(not JSON"):
        na.Study("torn", storage=path)
    assert path.read_bytes() == broken
    assert not list(tmp_path.glob("mid.jsonl.corrupt-*"))


def test_four_processes_two_threads_each_get_unique_numbers(tmp_path):
    path = tmp_path / "shared.jsonl"
    count = 25
    procs = [worker("hammer", str(path), f"p{i}", str(count)) for i in range(4)]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    got = records(path)  # every line is whole JSON: nothing interleaved
    trials = [r for r in got if r["type"] == "trial"]
    assert sorted(r["number"] for r in trials) == list(range(4 * 2 * count))
    assert len({(r["params"]["tag"], r["params"]["t"], r["params"]["i"]) for r in trials}) == 4 * 2 * count
    assert sum(r["type"] == "report" for r in got) == 4 * 2 * count


def test_lock_of_a_killed_holder_is_taken_over_and_a_live_holder_is_waited_for(tmp_path):
    path = tmp_path / "lock.jsonl"
    storage = JournalStorage(path)
    storage.append(make_record("run"))
    holder = worker("hold", str(path), "600")
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    storage.append(make_record("stop", source="after-kill"))  # would block for 600 s if the lock were stuck
    slow = worker("hold", str(path), "1.0")
    assert slow.stdout.readline().strip() == "locked"
    storage.append(make_record("stop", source="waited"))
    slow.wait(10)
    sources = [r.get("source") for r in records(path) if r["type"] == "stop"]
    assert sources == ["after-kill", "holder", "waited"]


def test_fresh_moves_the_old_journal_aside(tmp_path):
    space = na.Space(x=na.Real(0, 1))
    study = na.Study("again", space, sampler="random")
    study.optimize(lambda t: t.params["x"], trials=2, show=False)
    again = na.Study("again", space, sampler="random", fresh=True)
    assert again.trials == []
    old = list((tmp_path / ".nbautoml").glob("again.old-*.jsonl"))
    assert len(old) == 1 and len(JournalStorage(old[0]).read()) > 2


def test_load_study_by_name_and_missing(tmp_path):
    study = na.Study("named", na.Space(x=na.Real(0, 1)), sampler="random")
    study.optimize(lambda t: t.params["x"], trials=3, show=False)
    loaded = na.load_study("named")
    assert [t.value for t in loaded.trials] == [t.value for t in study.trials]
    assert loaded.space == study.space
    with pytest.raises(FileNotFoundError, match=r"studies in \./\.nbautoml: named"):
        na.load_study("nothing")


def test_two_writers_share_one_budget(tmp_path):
    """Two kernels on one study: each sees the other's trials, numbers stay unique, the budget is shared."""
    space = na.Space(x=na.Real(0, 1))
    first = na.Study("shared", space, sampler="random", seed=1)
    second = na.Study("shared", space, sampler="random", seed=2)
    first.optimize(lambda t: t.params["x"], trials=3, show=False)
    second.optimize(lambda t: t.params["x"], trials=5, show=False)
    assert [t.number for t in second.trials] == [0, 1, 2, 3, 4]
    assert second.n_finished == 5
    assert len(na.load_study("shared").trials) == 5
