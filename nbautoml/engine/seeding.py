"""Each trial's seed, and the random generators it is set in before the objective runs.

A seeded study gives trial ``n`` the seed ``trial_seed(study_seed, n)`` (a re-run of an INTERRUPTED trial
keeps the seed of the trial it continues). Before the objective runs, :func:`seeded` sets Python's ``random``,
NumPy's global generator and — when torch is imported — torch's CPU and CUDA generators from it. That is what
makes a cell reproducible: a ``%%automl`` cell builds its model (the weight initialisation draws from torch's
global generator) before ``nbautoml.torch.train`` gets to seed anything, so the seed has to be in place when
the cell starts. The engine never imports torch for this: it seeds torch only where ``torch`` is already in
``sys.modules``, and :mod:`nbautoml.torch` seeds the current trial itself when it is first imported inside
one (a cell whose first trial imports it). With a study seed of None nothing is seeded.

Bitwise repeatable on a CPU with one torch thread and ``parallel=1``; trials running in parallel share torch's
global generator (its draws interleave in thread order), and GPU kernels or another thread count change the
floating-point sums.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator

import numpy as np

from nbautoml.engine.trial import Trial

__all__ = ["seed_generators", "seeded", "trial_seed"]


def trial_seed(study_seed: int | None, number: int) -> int | None:
    """A 32-bit seed for trial ``number`` of a study seeded ``study_seed`` (None when the study is unseeded)."""
    if study_seed is None:
        return None
    return int(np.random.SeedSequence([int(study_seed) & 0xFFFFFFFF, int(number)]).generate_state(1)[0])


def seed_generators(seed: int) -> None:
    """Seed ``random``, NumPy's global generator and, when imported, torch's (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    manual_seed = getattr(torch, "manual_seed", None)
    if callable(manual_seed):
        manual_seed(seed)


@contextlib.contextmanager
def seeded(trial: Trial) -> Iterator[None]:
    """Set the trial's seed in the global generators for the objective (nothing when ``trial.seed`` is None)."""
    if trial.seed is not None:
        seed_generators(trial.seed)
    yield
