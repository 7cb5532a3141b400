"""coerce.to_number: the one number rule for trial values and reported metrics."""

from __future__ import annotations

import math

import numpy as np

from nbautoml.engine.coerce import to_number
from nbautoml.engine.trial import Trial


def test_numbers_and_one_element_objects():
    assert to_number(3) == (3.0, None) and to_number(0.5) == (0.5, None)
    assert to_number(np.float32(0.25)) == (0.25, None) and to_number(np.array([2.0])) == (2.0, None)
    number, why = to_number(math.nan)
    assert math.isnan(number) and why is None  # finiteness is the caller's rule


def test_what_is_not_a_number_says_why():
    assert to_number(True) == (None, "bool True")
    assert to_number("0.5")[1] == "str '0.5'"
    assert "2 elements" in str(to_number(np.array([1.0, 2.0]))[1])
    assert "not a number" in str(to_number(object())[1])


def test_a_report_drops_a_bool_like_the_value_rule(caplog):
    trial = Trial(0, {})
    trial.report(0, acc=True, loss=np.float64(0.5))
    assert trial.reports[0].metrics == {"loss": 0.5}
    assert "bool True" in caplog.text
