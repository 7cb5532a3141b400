"""The records a study writes, and the replay that turns a list of them back into a study's state.

Record types (each a JSON object with ``"v"`` = :data:`FORMAT_VERSION`, ``"type"`` and ``"time"``):

- ``study``: name, metric, mode, sampler, seed, scheduler (its JSON settings): written once, first (a second one,
  from a writer that lost a race to create the study with an older nbautoml, is ignored).
  For several objectives ``metric`` and ``mode`` are lists; ``constraints`` (strings) only when there are some.
- ``settings``: the study was reopened with another sampler / seed / scheduler (allowed, recorded).
- ``space``: version (0, 1, ...), the space as JSON, and the diff from the previous version. Versions are
  their order in the journal; a stored number out of order (two writers of nbautoml before format 2 that
  numbered from their own memory) is read as its place in the file, so such journals open again.
- ``run``: an ``optimize`` began (budget, timeout, owner).
- ``trial``: a trial started: number, params, space_version, resumed_from, resume_step, owner.
- ``report``: number, step, metrics (non-finite values as "nan" / "inf" / "-inf"; format 1 wrote null).
- ``finish``: number, state, value, reason, metrics; ``values`` (metric -> value) and ``constraints`` (a list)
  when the study has several objectives or constraints (older journals have neither: the reader copes).
- ``stop``: the user asked to stop (source).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from nbautoml.engine.storage.base import Owner, Record
from nbautoml.engine.trial import Report, Trial, TrialState
from nbautoml.space import Space

__all__ = ["FORMAT_VERSION", "JournalError", "Replayed", "make_record", "replay"]

FORMAT_VERSION = 2  # 2: each journal line carries a CRC32 (storage/lines.py); non-finite floats as strings


class JournalError(ValueError):
    """A stored study that cannot be read (a bad record in the middle, an unknown format version)."""


def make_record(kind: str, **fields: Any) -> Record:
    return {"v": FORMAT_VERSION, "type": kind, "time": time.time(), **fields}


@dataclass
class Replayed:
    """A study's state as its records describe it."""

    meta: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    spaces: list[Space] = field(default_factory=list)
    trials: dict[int, Trial] = field(default_factory=dict)
    owners: dict[int, Owner] = field(default_factory=dict)  # RUNNING trial -> who runs it
    stops: int = 0

    @property
    def space(self) -> Space | None:
        return self.spaces[-1] if self.spaces else None


def replay(records: list[Record], into: Replayed | None = None) -> Replayed:
    """Apply ``records`` in order (onto ``into`` when given: incremental reads from other writers)."""
    state = into if into is not None else Replayed()
    for index, record in enumerate(records):
        try:
            _apply(state, record)
        except (KeyError, TypeError, ValueError) as error:
            raise JournalError(f"record {index + 1} ({record.get('type')!r}) is malformed: {error}") from None
    return state


def _apply(state: Replayed, record: Record) -> None:
    version = record.get("v", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise JournalError(f"record format version {version!r} is newer than this nbautoml reads ({FORMAT_VERSION})")
    kind = record["type"]
    if kind == "study":
        if state.meta is not None:
            return  # a writer that lost the race to create the study (see the module docstring)
        state.meta = {k: record.get(k) for k in ("name", "metric", "mode", "sampler", "seed", "scheduler",
                                                  "constraints")}
        state.settings = {k: record.get(k) for k in ("sampler", "seed", "scheduler")}
    elif kind == "settings":
        state.settings.update({k: v for k, v in record.items() if k in ("sampler", "seed", "scheduler")})
    elif kind == "space":
        int(record["version"])  # present and a number; its place in the file is the version (module docstring)
        state.spaces.append(Space.from_json(record["space"]))
    elif kind == "trial":
        _start_trial(state, record)
    elif kind == "report":
        trial = state.trials[int(record["number"])]
        metrics = {str(k): math.nan if v is None else float(v) for k, v in record["metrics"].items()}
        trial.reports.append(Report(int(record["step"]), metrics, float(record.get("time", 0.0))))
    elif kind == "finish":
        trial = state.trials[int(record["number"])]
        trial.state = TrialState(record["state"])
        value = record.get("value")
        trial.value = None if value is None else float(value)
        trial.reason = record.get("reason")
        trial.metrics = {str(k): float(v) for k, v in (record.get("metrics") or {}).items()}
        values = record.get("values")
        trial.values = {str(k): float(v) for k, v in values.items()} if values else None
        constraints = record.get("constraints")
        trial.constraints = [float(c) for c in constraints] if constraints else None
        trial.finished_at = float(record.get("time", 0.0))
        trial.pruned = trial.state is TrialState.PRUNED
        state.owners.pop(trial.number, None)
    elif kind == "stop":
        state.stops += 1
    elif kind == "run":
        pass
    else:
        raise ValueError(f"unknown record type {kind!r}")


def _start_trial(state: Replayed, record: Record) -> None:
    number = int(record["number"])
    if number in state.trials:
        raise ValueError(f"trial {number} started twice")
    trial = Trial(
        number,
        record["params"],
        state=TrialState.RUNNING,
        resumed_from=record.get("resumed_from"),
        resume_step=int(record.get("resume_step", 0)),
        space_version=int(record.get("space_version", 0)),
    )
    trial.started_at = float(record.get("time", 0.0))
    old = state.trials.get(trial.resumed_from) if trial.resumed_from is not None else None
    if old is not None:  # a re-run continues the old curve: its learning curve and best-so-far stay whole
        trial.reports = [r for r in old.reports if r.step < trial.resume_step]
    state.trials[number] = trial
    if record.get("owner"):
        state.owners[number] = dict(record["owner"])


def rerun_candidates(trials: dict[int, Trial]) -> list[Trial]:
    """INTERRUPTED trials that no later trial re-ran yet, oldest first."""
    superseded = {t.resumed_from for t in trials.values() if t.resumed_from is not None}
    return sorted(
        (t for t in trials.values() if t.state is TrialState.INTERRUPTED and t.number not in superseded),
        key=lambda t: t.number,
    )
