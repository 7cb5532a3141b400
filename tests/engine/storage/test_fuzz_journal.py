"""Fuzzing the journal in-process: a torn write at every byte, every single-bit flip, random multi-byte damage.

The guarantees kept (docs/RELIABILITY.md counts them):

- truncated anywhere, a journal reads as exactly its whole records before the cut (the torn tail is moved to
  ``.corrupt-*``, never lost), and a study opens on it and appends;
- one flipped bit anywhere before the last line is a :class:`JournalError` naming that line, with the file left
  byte-for-byte as it was; in the last line it is quarantined like a torn write; it is never read as valid.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbautoml as na
from nbautoml.engine.storage.journal import JournalStorage
from nbautoml.engine.storage.lines import decode_line
from nbautoml.engine.storage.records import JournalError, make_record, replay

SPACE = na.Space(x=na.Real(0.0, 1.0), n=na.Int(1, 5), act=na.Choice(["relu", "tanh", "Ü"]))


def objective(trial):
    for step in range(1):
        trial.report(step, value=trial.params["x"] / (step + 1), inf=math.inf)
    return trial.params["x"] if trial.params["n"] != 3 else math.nan  # some trials fail: "invalid value"


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.jsonl"
    study = na.Study("fuzz", SPACE, sampler="random", seed=3, storage=path)
    study.optimize(objective, trials=3, show=False)
    study.set_space(na.Space(x=na.Real(0.0, 2.0), n=na.Int(1, 5), act=na.Choice(["relu", "tanh", "Ü"])))
    study.optimize(objective, trials=4, show=False)
    return path.read_bytes()


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """Thousands of repairs: what is fuzzed is the recovery logic, not the disk (fsync costs ~20 ms here)."""
    monkeypatch.setattr("nbautoml.engine.storage.journal.os.fsync", lambda fd: None)


def line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def whole_before(data: bytes, offset: int) -> list[dict]:
    kept = data[:offset].split(b"\n")
    out = [decode_line(line) for line in kept[:-1]]
    with contextlib.suppress(ValueError):  # a last line that lacks only its newline is whole
        out.append(decode_line(kept[-1]))
    return out


def test_a_torn_write_at_every_byte_recovers_the_whole_records_before_it(journal, tmp_path):
    lines = journal.count(b"\n")
    for offset in range(len(journal) + 1):
        path = tmp_path / f"cut-{offset}.jsonl"
        path.write_bytes(journal[:offset])
        got = JournalStorage(path).read()
        assert got == whole_before(journal, offset), offset
        replay(got)  # what is left is a study
        kept = path.read_bytes()
        quarantined = b"".join(p.read_bytes() for p in tmp_path.glob(f"cut-{offset}.jsonl.corrupt-*"))
        assert kept + quarantined == journal[:offset] or (  # nothing lost: kept, or set aside
            kept == journal[:offset] + b"\n" and not quarantined  # a whole last record lacked only its newline
        ), offset
        for leftover in tmp_path.glob(f"cut-{offset}.jsonl*"):
            leftover.unlink()
    assert lines >= 12


def test_a_study_reopens_on_every_torn_record_boundary_and_appends(journal, tmp_path):
    starts = [0, *[i + 1 for i, b in enumerate(journal) if b == ord("\n")]]
    for index, start in enumerate(starts[1:-1], start=1):
        path = tmp_path / f"cut-{index}.jsonl"
        path.write_bytes(journal[: start + 7])  # 7 bytes into the next record
        study = na.Study("fuzz", storage=path)
        study.storage.append(make_record("stop", source="after-repair"))
        records = JournalStorage(path).read()
        assert len(records) == index + 1 and records[-1]["source"] == "after-repair"


def test_every_single_bit_flip_in_every_line_is_refused(journal):
    """Exhaustive at the line level: each of the journal's lines, each byte, each bit."""
    flips = 0
    for line in journal.splitlines():
        for index in range(len(line)):
            for bit in range(8):
                damaged = bytearray(line)
                damaged[index] ^= 1 << bit
                for part in bytes(damaged).split(b"\n"):  # a flip that makes a newline splits the line
                    if part == line:
                        continue
                    with pytest.raises(ValueError):
                        decode_line(part)
                flips += 1
    assert flips == 8 * (len(journal) - journal.count(b"\n"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bit_flip_in_the_file_is_named_or_quarantined_never_read(journal, tmp_path, data):
    offset = data.draw(st.integers(0, len(journal) - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(journal)
    damaged[offset] ^= 1 << bit
    path = tmp_path / "flip.jsonl"
    path.write_bytes(bytes(damaged))
    last_line_start = journal.rstrip(b"\n").rfind(b"\n") + 1
    try:
        if offset < last_line_start - 1:  # before the last line (its newline included: lines merge)
            with pytest.raises(JournalError, match=f"line {line_of(journal, offset)} is not a valid record"):
                JournalStorage(path).read()
            assert path.read_bytes() == bytes(damaged)  # untouched
        else:  # the last line: like a torn write, moved aside whole
            got = JournalStorage(path).read()
            assert got == whole_before(journal, last_line_start)
            assert path.read_bytes() == journal[:last_line_start]
    finally:
        for leftover in tmp_path.glob("flip.jsonl*"):
            leftover.unlink()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_inside_the_file_is_never_read_as_valid(journal, tmp_path, data):
    """Overwrite a run of bytes with random bytes (a bad sector, a stray write): an error or the same records."""
    start = data.draw(st.integers(0, len(journal) - 2), label="start")
    junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")
    damaged = journal[:start] + junk + journal[start + len(junk):]
    path = tmp_path / "junk.jsonl"
    path.write_bytes(damaged)
    original = whole_before(journal, len(journal))
    try:
        got = JournalStorage(path).read()
    except JournalError:
        return
    finally:
        for leftover in Path(tmp_path).glob("junk.jsonl.corrupt-*"):
            leftover.unlink()
    assert got == original[: len(got)]  # only whole original records, at most the damaged tail set aside
