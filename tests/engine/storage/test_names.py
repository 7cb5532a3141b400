"""One name, one journal: escaped reversible file names, the true name checked on open, load_study's rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nbautoml as na
from nbautoml.engine.storage import default_journal_path, journal_file_name, study_name_of

SPACE = na.Space(x=na.Real(0, 1))
NAMES = ["a/b", "a_b", "a b", "a.b", "..", "study", ".", "Ü x", "Ü_x", "a%2Fb", "~", "x.old-20240101-000000",
         "CON", "-", "a\\b", "tab\tx"]


def run(name: str, trials: int) -> na.Study:
    study = na.Study(name, SPACE, sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], trials=trials, show=False)
    return study


def test_names_that_used_to_share_a_file_get_one_each(tmp_path):
    for count, name in enumerate(NAMES, start=1):
        run(name, count)
    files = sorted((tmp_path / ".nbautoml").glob("*.jsonl"))
    assert len(files) == len(NAMES)
    for count, name in enumerate(NAMES, start=1):
        study = na.load_study(name)
        assert study.name == name and study.n_finished == count
        assert study_name_of(default_journal_path(name)) == name
        assert default_journal_path(name).parent == tmp_path / ".nbautoml"  # ".." cannot leave the folder


def test_a_file_names_the_study_it_holds_and_refuses_another(tmp_path):
    run("A", 1)
    path = default_journal_path("A")
    with pytest.raises(ValueError, match="holds study 'A', not 'B'"):
        na.Study("B", SPACE, storage=path)
    assert na.load_study(path).name == "A"


def test_load_study_takes_names_with_slashes_and_paths(tmp_path):
    run("team/exp1", 2)
    assert na.load_study("team/exp1").n_finished == 2
    path = default_journal_path("team/exp1")
    assert na.load_study(path).name == "team/exp1"  # a Path is a path
    assert na.load_study(str(path)).name == "team/exp1"  # a string ending in .jsonl is a path
    with pytest.raises(FileNotFoundError, match=r"studies in \./\.nbautoml: team/exp1"):
        na.load_study("team/exp2")


def test_file_names_are_portable_and_bounded():
    for name in [*NAMES, "x" * 500, "é" * 300]:
        stem = journal_file_name(name).removesuffix(".jsonl")
        assert set(stem) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_%")
        assert len(stem) <= 200


def test_a_journal_named_before_escaping_is_still_found(tmp_path):
    """Files named by the old rule (unsafe characters as '_') still open under their true name."""
    folder = tmp_path / ".nbautoml"
    folder.mkdir()
    run("a b", 2)
    escaped = default_journal_path("a b")
    legacy = folder / "a_b.jsonl"
    escaped.rename(legacy)
    assert default_journal_path("a b") == legacy and na.load_study("a b").n_finished == 2
    head = json.loads(Path(legacy).read_bytes().splitlines()[0])
    assert head["name"] == "a b"
    assert default_journal_path("a_b") == folder / "a_b.jsonl"  # the true owner of that file name
    with pytest.raises(ValueError, match="holds study 'a b', not 'a_b'"):
        na.Study("a_b", SPACE)
