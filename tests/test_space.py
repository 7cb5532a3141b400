from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nbautoml.space import Choice, Int, Real, Space, SpaceError

INVALID = [
    (lambda: Space(lr=Real(1.0, 0.5)), "parameter 'lr': Real low (1.0) must be less than high (0.5)"),
    (lambda: Space(lr=Real(1.0, 1.0)), "parameter 'lr': Real low (1.0) must be less than high"),
    (lambda: Space(lr=Real(float("nan"), 1.0)), "parameter 'lr': Real low must be finite"),
    (lambda: Space(lr=Real(0.0, float("inf"))), "parameter 'lr': Real high must be finite"),
    (lambda: Space(lr=Real(0.0, 1.0, log=True)), "parameter 'lr': Real with log=True needs low > 0"),
    (lambda: Space(n=Int(0, 8, log=True)), "parameter 'n': Int with log=True needs low > 0"),
    (lambda: Space(n=Int(1.5, 4)), "parameter 'n': Int low must be an integer, got 1.5"),
    (lambda: Space(n=Int(1, "4")), "parameter 'n': Int high must be a number, got '4'"),
    (lambda: Space(n=Int(True, 4)), "parameter 'n': Int low must be a number, got True"),
    (lambda: Space(act=Choice([])), "parameter 'act': Choice needs at least one option"),
    (lambda: Space(act=Choice(["relu", "relu"])), "parameter 'act': Choice option 'relu' appears twice"),
    (lambda: Space(act=Choice([object()])), "parameter 'act': Choice option <object"),
    (lambda: Space(act=Choice("relu")), "parameter 'act': Choice options must be a list or tuple"),
    (lambda: Space(lr=Real(0.1, 1.0, lgo=True)),
     "parameter 'lr': unknown keyword 'lgo' (Real takes low, high, log, when)"),
    (lambda: Space(act=Choice(["a"], default="a")), "parameter 'act': unknown keyword 'default'"),
    (lambda: Space(lr=0.1), "parameter 'lr': expected Real, Int or Choice, got float 0.1"),
    (lambda: Space({"bad name": Real(0, 1)}), "parameter name 'bad name' must be an identifier"),
    (lambda: Space({"x": Real(0, 1)}, x=Real(0, 2)), "parameter 'x' is given twice"),
    # limits that float arithmetic can sample (these were accepted and failed later inside a sampler)
    (lambda: Space(w=Real(-1e308, 1e308)), "parameter 'w': Real span high - low overflows a float"),
    (lambda: Space(w=Real(0, 10**400)), "parameter 'w': Real high must be finite, got an integer of 1329 bits"),
    (lambda: Space(n=Int(0, 10**30)), "parameter 'n': Int high must lie within ±2**53, got 1" + "0" * 30),
    (lambda: Space(n=Int(-(2**53) - 1, 0)), "parameter 'n': Int low must lie within ±2**53"),
    (lambda: Space(w=Real(-1.0, 1.0, log=True)), "parameter 'w': Real with log=True needs low > 0"),
]


def test_the_widest_allowed_bounds_sample_inside():
    space = Space(w=Real(-1e307, 1e307), n=Int(-(2**53), 2**53), g=Real(1e-300, 1e300, log=True))
    for point in space.sample(0, n=50):
        assert space.contains(point) and all(math.isfinite(float(v)) for v in point.values())


@pytest.mark.parametrize(("build", "message"), INVALID)
def test_invalid_spaces_name_the_parameter(build, message):
    with pytest.raises(SpaceError) as info:
        build()
    assert message in str(info.value)


def make_space() -> Space:
    return Space(
        lr=Real(1e-4, 1e-1, log=True), drop=Real(0.0, 0.5), layers=Int(1, 4), units=Int(16, 512, log=True),
        act=Choice(["relu", "tanh"]), odd=Choice([None, True, 3, [1, 2]]),
    )


def test_json_round_trip():
    space = make_space()
    text = json.dumps(space.to_json())
    again = Space.from_json(json.loads(text))
    assert again == space
    assert again.fingerprint() == space.fingerprint()
    assert list(again) == list(space)


def test_seeded_sampling_is_deterministic_and_inside():
    space = make_space()
    first = space.sample(np.random.default_rng(3), n=50)
    second = space.sample(np.random.default_rng(3), n=50)
    assert first == second
    for params in first:
        assert space.contains(params)
        assert isinstance(params["layers"], int) and 1 <= params["layers"] <= 4
        assert isinstance(params["lr"], float)


def test_int_bounds_inclusive_and_log_scale():
    space = Space(n=Int(1, 3), lr=Real(1e-4, 1.0, log=True), k=Int(1, 1000, log=True))
    samples = space.sample(0, n=4000)
    assert {p["n"] for p in samples} == {1, 2, 3}
    lrs = np.array([p["lr"] for p in samples])
    assert abs(math.log10(np.median(lrs)) - (-2.0)) < 0.15  # log-uniform: median at the geometric mean
    ks = np.array([p["k"] for p in samples])
    assert np.mean(ks < 32) > 0.4 and ks.min() >= 1 and ks.max() <= 1000


def test_contains_and_project():
    space = Space(x=Real(0, 1), n=Int(1, 3), c=Choice(["a", "b"]))
    assert space.contains({"x": 0.5, "n": 2, "c": "a"})
    assert space.contains({"x": 0.5, "n": 2.0, "c": "a"})  # an integral float is an int
    assert not space.contains({"x": 1.5, "n": 2, "c": "a"})
    assert not space.contains({"x": 0.5, "n": 2.5, "c": "a"})
    assert not space.contains({"x": float("nan"), "n": 2, "c": "a"})
    assert not space.contains({"x": 0.5, "n": 2, "c": "z"})
    assert not space.contains({"x": 0.5, "n": 2})
    assert space.project({"x": 0.5, "n": 2, "c": "a", "gone": 1}) == {"x": 0.5, "n": 2, "c": "a"}
    assert space.project({"x": 0.5, "n": 2}) is None


def test_normalise_names_bad_parameter():
    space = Space(x=Real(0, 1), n=Int(1, 3))
    assert space.normalise({"x": 1, "n": 3.0}) == {"x": 1.0, "n": 3}
    with pytest.raises(SpaceError, match="parameter 'n'"):
        space.normalise({"x": 0.1, "n": 7})
    with pytest.raises(SpaceError, match="missing"):
        space.normalise({"x": 0.1})


def test_diff_added_removed_changed():
    old = Space(x=Real(0, 1), n=Int(1, 3), c=Choice(["a", "b"]))
    new = Space(x=Real(0, 2), c=Choice(["a", "b"]), m=Int(1, 5))
    diff = old.diff(new)
    assert diff.added == ("m",) and diff.removed == ("n",)
    assert set(diff.changed) == {"x"}
    assert diff.changed["x"][1]["high"] == 2.0
    assert not diff.empty and old.diff(old).empty
    kind = old.diff(Space(x=Choice([0, 1]), n=Int(1, 3), c=Choice(["a", "b"])))
    assert kind.changed["x"][0]["type"] == "real" and kind.changed["x"][1]["type"] == "choice"
    assert json.dumps(diff.to_json())


def test_standalone_invalid_dimension_refuses_to_sample():
    with pytest.raises(SpaceError):
        Real(2, 1).sample(np.random.default_rng(0))
