"""direction: one rule for which value is better (modes, default mode, ranking, NaN and None)."""

from __future__ import annotations

import math

import pytest

from nbautoml.engine import direction


def test_default_mode_ignores_letter_case():
    assert [direction.default_mode(m) for m in ("val_acc", "AUC", "F1", "val_R2")] == ["max"] * 4
    assert [direction.default_mode(m) for m in ("val_loss", "value", "mae")] == ["min"] * 3


def test_sign_loss_and_a_bad_mode():
    assert direction.sign("max") == -1.0 and direction.loss(2.0, "min") == 2.0 and direction.loss(2.0, "max") == -2.0
    with pytest.raises(ValueError, match="'min' or 'max'"):
        direction.sign("maximise")


def test_better_with_none_and_nan():
    assert direction.better(1.0, None, "min") and direction.better(math.nan, None, "max")
    assert direction.better(1.0, math.nan, "min") and not direction.better(math.nan, 1.0, "min")
    assert direction.better(0.9, 0.8, "max") and not direction.better(0.9, 0.8, "min")
    assert not direction.better(0.5, 0.5, "min")  # a tie keeps the first


def test_best_rank_key_and_ranked():
    assert direction.best([None, 3.0, math.nan, 1.0, math.inf], "min") == 1.0
    assert direction.best([None, math.nan], "max") is None
    assert direction.rank_key(None, "min") == math.inf and direction.rank_key(2.0, "max") == -2.0
    items = [("a", 2.0), ("b", None), ("c", 3.0), ("d", 2.0), ("e", math.nan)]
    assert [k for k, _ in direction.ranked(items, "max", lambda i: i[1])] == ["c", "a", "d"]
    assert [k for k, _ in direction.ranked(items, "min", lambda i: i[1])] == ["a", "d", "c"]
