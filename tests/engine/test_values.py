from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nbautoml.engine.trial import Trial, TrialState
from nbautoml.engine.values import exception_outcome, result_outcome, settle


def trial_with(reports=()):
    trial = Trial(0, {})
    for step, value in reports:
        trial.report(step, loss=value)
    return trial


@pytest.mark.parametrize(
    ("result", "state", "value", "reason"),
    [
        (0.5, TrialState.COMPLETE, 0.5, None),
        (3, TrialState.COMPLETE, 3.0, None),
        (np.float32(0.25), TrialState.COMPLETE, 0.25, None),
        (torch.tensor(0.75), TrialState.COMPLETE, 0.75, None),
        ({"loss": 0.1, "acc": 0.9}, TrialState.COMPLETE, 0.1, None),
        (math.nan, TrialState.FAILED, None, "invalid value: nan"),
        (math.inf, TrialState.FAILED, None, "invalid value: inf"),
        (-math.inf, TrialState.FAILED, None, "invalid value: -inf"),
        ("0.5", TrialState.FAILED, None, "invalid value: str"),
        (torch.ones(3), TrialState.FAILED, None, "invalid value: Tensor with 3 elements"),
        (np.ones(2), TrialState.FAILED, None, "invalid value: ndarray with 2 elements"),
        ({"loss": math.nan}, TrialState.FAILED, None, "invalid value: nan (the 'loss' entry)"),
        ({"acc": 0.9}, TrialState.FAILED, None, "no value: the result has no 'loss' (keys: acc)"),
        (None, TrialState.FAILED, None, "no value: returned None and reported no finite 'loss'"),
        (True, TrialState.FAILED, None, "invalid value: bool"),
    ],
)
def test_result_table(result, state, value, reason):
    outcome = result_outcome(result, trial_with(), "loss", "min")
    assert outcome.state is state
    assert outcome.value == value
    if reason is None:
        assert outcome.reason is None
    else:
        assert outcome.reason is not None and outcome.reason.startswith(reason)


def test_none_takes_the_best_report_by_mode():
    trial = trial_with([(0, 0.5), (1, 0.2), (2, 0.3)])
    assert result_outcome(None, trial, "loss", "min").value == 0.2
    assert result_outcome(None, trial, "loss", "max").value == 0.5
    assert result_outcome({"other": 1.0}, trial, "loss", "min").value == 0.2


def test_exceptions_and_oom():
    outcome = exception_outcome(ValueError("bad shape\nmore lines"))
    assert outcome.state is TrialState.FAILED and outcome.reason == "exception: ValueError: bad shape"
    assert exception_outcome(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried")).reason == "oom"

    class OutOfMemoryError(RuntimeError):  # recognised by name: the engine never imports torch
        pass

    assert exception_outcome(OutOfMemoryError("x")).reason == "oom"


def test_settle_stop_and_prune():
    trial = trial_with([(0, 0.4), (1, 0.3)])
    done = result_outcome(0.3, trial, "loss", "min")
    assert settle(done, trial, "loss", "min", user_stopped=True).state is TrialState.COMPLETE  # never looked
    trial.stop_seen = True
    stopped = settle(done, trial, "loss", "min", user_stopped=True)
    assert stopped.state is TrialState.INTERRUPTED and stopped.reason == "stopped after step 1"
    trial.pruned = True
    pruned = settle(result_outcome(None, trial, "loss", "min"), trial, "loss", "min", user_stopped=False)
    assert pruned.state is TrialState.PRUNED and pruned.value == 0.3 and pruned.reason == "pruned at step 1"
