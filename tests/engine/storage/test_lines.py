"""Journal lines: a CRC32 per record, non-finite floats that read back as they were, old lines still readable."""

from __future__ import annotations

import json
import math

import pytest

import nbautoml as na
from nbautoml.engine.storage.journal import JournalStorage
from nbautoml.engine.storage.lines import decode_line, encode_line
from nbautoml.engine.storage.records import JournalError, make_record, replay


def test_a_line_is_strict_json_ending_in_its_checksum_and_reads_back():
    record = make_record("report", number=3, step=1, metrics={"loss": 0.25, "name": "Ü"})
    line = encode_line(record)
    assert line.endswith(b'"}\n') and b',"crc":"' in line
    assert json.loads(line)["crc"]  # any JSON reader still reads it
    assert decode_line(line.rstrip(b"\n")) == record


def test_every_single_bit_flip_of_a_line_is_refused():
    line = encode_line(make_record("finish", number=12, state="COMPLETE", value=0.123456, reason=None,
                                   metrics={"val_acc": 0.97})).rstrip(b"\n")
    for index in range(len(line)):
        for bit in range(8):
            flipped = bytearray(line)
            flipped[index] ^= 1 << bit
            with pytest.raises(ValueError):
                decode_line(bytes(flipped))


def test_format_1_lines_without_a_checksum_still_read():
    old = b'{"v":1,"type":"report","time":1.0,"number":0,"step":0,"metrics":{"loss":null}}'
    assert decode_line(old)["metrics"] == {"loss": None}
    with pytest.raises(ValueError, match="checksum is missing"):  # a format-2 record must carry one
        decode_line(old.replace(b'"v":1', b'"v":2'))


def test_inf_and_nan_reports_reload_as_they_were(tmp_path):
    path = tmp_path / "inf.jsonl"
    study = na.Study("inf", na.Space(x=na.Real(0, 1)), sampler="random", storage=path)

    def objective(trial):
        trial.report(0, loss=math.inf, low=-math.inf, bad=math.nan)
        return 1.0

    study.optimize(objective, trials=1, show=False)
    [report] = na.load_study(path).trials[0].reports
    assert report.metrics["loss"] == math.inf and report.metrics["low"] == -math.inf
    assert math.isnan(report.metrics["bad"])
    assert all(json.loads(line) for line in path.read_bytes().splitlines())  # strict JSON, no Infinity token


def test_an_old_journal_reads_and_takes_new_records(tmp_path):
    """A format-1 journal (no checksums, nulls for inf) opens, replays and continues with format-2 lines."""
    path = tmp_path / "old.jsonl"
    space = na.Space(x=na.Real(0, 1)).to_json()
    old = [
        {"v": 1, "type": "study", "time": 1.0, "name": "old", "metric": "value", "mode": "min",
         "sampler": "random", "seed": 0, "scheduler": None},
        {"v": 1, "type": "space", "time": 1.0, "version": 0, "space": space, "diff": {}},
        {"v": 1, "type": "trial", "time": 1.0, "number": 0, "params": {"x": 0.5}, "space_version": 0},
        {"v": 1, "type": "report", "time": 1.0, "number": 0, "step": 0, "metrics": {"value": None}},
        {"v": 1, "type": "finish", "time": 2.0, "number": 0, "state": "COMPLETE", "value": 0.5, "metrics": {}},
    ]
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in old))
    study = na.Study("old", storage=path)
    assert study.best_value == 0.5 and math.isnan(study.trials[0].reports[0].metrics["value"])
    study.optimize(lambda t: t.params["x"], trials=3, show=False)
    assert na.load_study(path).n_finished == 3


def test_a_bit_flip_mid_file_is_named_and_nothing_is_changed(tmp_path):
    path = tmp_path / "flip.jsonl"
    study = na.Study("flip", na.Space(x=na.Real(0, 1)), sampler="random", storage=path)
    study.optimize(lambda t: t.params["x"], trials=3, show=False)
    lines = path.read_bytes().splitlines(keepends=True)
    target = lines[4]
    digit = next(i for i, b in enumerate(target) if chr(b).isdigit())
    flipped = bytearray(target)
    flipped[digit] ^= 1  # "3" -> "2": still valid JSON, still a number
    lines[4] = bytes(flipped)
    broken = b"".join(lines)
    path.write_bytes(broken)
    with pytest.raises(JournalError, match=r"line 5 is not a valid record \(checksum mismatch"):
        JournalStorage(path).read()
    assert path.read_bytes() == broken


def test_space_versions_out_of_order_from_old_writers_replay_in_file_order():
    """Journals broken by two writers numbering versions from memory (before format 2) open again."""
    space = na.Space(x=na.Real(0, 1)).to_json()
    records = [
        make_record("study", name="s", metric="value", mode="min", sampler="random", seed=0, scheduler=None),
        make_record("space", version=0, space=space, diff={}),
        make_record("space", version=1, space=space, diff={}),
        make_record("space", version=1, space=na.Space(x=na.Real(0, 2)).to_json(), diff={}),
        make_record("study", name="s", metric="value", mode="min", sampler="random", seed=0, scheduler=None),
    ]
    state = replay(records)
    assert len(state.spaces) == 3 and state.space == na.Space(x=na.Real(0, 2))
