"""The worker half of the Dask runner: the task that runs one trial, and the trial's TrialHost on the worker.

Kept apart from :mod:`nbautoml.engine.runners.dask` (the driver half) so that a worker imports only this and the
engine. The protocol, from the worker's side: take "go" from the trial's channel (none: dask is re-running a task
whose first worker died, so run nothing and say "lost"), announce the start, run the objective with
``execute_trial`` semantics while a listener thread long-polls the channel for "halt" and report answers, send each
report as an event on the run's topic, and return the outcome as plain data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any

from nbautoml.engine.trial import Report, Trial, TrialState
from nbautoml.engine.values import Outcome, exception_outcome

__all__ = ["ACK_TIMEOUT", "run_trial"]

log = logging.getLogger(__name__)

ACK_TIMEOUT = 10.0  # a worker waits this long for the driver's answer to a report, then goes on

_objectives: OrderedDict[str, Any] = OrderedDict()
_objectives_lock = threading.Lock()


def _load_objective(key: str, payload: bytes) -> Any:
    with _objectives_lock:
        objective = _objectives.get(key)
        if objective is None:
            import cloudpickle

            objective = _objectives[key] = cloudpickle.loads(payload)
            while len(_objectives) > 4:
                _objectives.popitem(last=False)
        _objectives.move_to_end(key)
        return objective


class _WorkerHost:
    """The TrialHost of a trial on a worker: reports go to the driver, stop and prune come back on its channel."""

    def __init__(self, worker: Any, spec: dict[str, Any], channel: Any) -> None:
        self.worker, self.spec, self.channel = worker, spec, channel
        self.changed = threading.Condition()
        self.go = self.stop = self.prune = self.done = False
        self.sent = 0
        self.acked = 0

    def apply(self, message: dict[str, Any]) -> None:
        with self.changed:
            self.go = self.go or bool(message.get("go"))
            self.stop = self.stop or message.get("halt") == "stop"
            self.prune = self.prune or message.get("halt") == "prune"
            self.acked = max(self.acked, int(message.get("ack", 0)))
            self.changed.notify_all()

    def listen(self) -> None:
        """Long-poll the channel until the trial's own "bye" (a get with a timeout logs errors on the scheduler)."""
        while True:
            try:
                message = self.channel.get()
            except Exception:
                return  # the channel or the client is gone
            if message.get("bye"):
                return
            self.apply(message)

    def send(self, kind: str, **fields: Any) -> None:
        self.worker.log_event(self.spec["topic"], {"kind": kind, "n": self.spec["number"], **fields})

    # TrialHost
    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None:
        self.sent += 1
        seq = self.sent
        self.send("report", seq=seq, step=step, metrics=metrics, time=time.time(), sync=self.spec["sync"])
        if self.spec["sync"]:
            with self.changed:
                if not self.changed.wait_for(lambda: self.acked >= seq or self.done, timeout=ACK_TIMEOUT):
                    log.warning("trial %d: no answer from the driver to step %d's report", trial.number, step)
        if self.prune:
            trial.pruned = True
        if self.stop:
            trial.stop_seen = True  # as in-process: a report after a stop ends the trial INTERRUPTED

    def stop_requested(self, trial: Trial) -> bool:
        if self.prune:
            trial.pruned = True
        return self.stop or self.prune


def run_trial(payload: bytes, spec: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: one trial with ``execute_trial`` semantics; returns its outcome as plain data."""
    from distributed import Queue, get_client, get_worker

    from nbautoml.engine.runners.thread import execute_trial

    worker = get_worker()
    channel = Queue(spec["channel"], client=get_client())
    host = _WorkerHost(worker, spec, channel)
    listener: threading.Thread | None = None
    try:
        for message in channel.get(batch=True):
            host.apply(message)
        if not host.go:  # dask re-ran the task after its first worker died: never run a trial twice
            return {"lost": True, "worker": worker.address}
        host.send("start", worker=worker.address, pid=os.getpid())
        trial = Trial(
            spec["number"], spec["params"], study_name=spec["study"], state=TrialState.RUNNING,
            resumed_from=spec["resumed_from"], resume_step=spec["resume_step"],
            checkpoint_dir=spec["checkpoint_dir"] or None, space_version=spec["space_version"],
            metric=spec["metric"], mode=spec["mode"], host=host,
        )
        trial.reports = [Report(int(step), dict(metrics), float(at)) for step, metrics, at in spec["reports"]]
        if host.stop:
            trial.stop_seen = True
            outcome = Outcome(TrialState.INTERRUPTED, reason="stopped before it started")
        else:
            listener = threading.Thread(target=host.listen, name=f"nbautoml-trial-{trial.number}", daemon=True)
            listener.start()
            try:
                objective = _load_objective(spec["objective"], payload)
            except Exception as error:
                outcome = exception_outcome(error)
                outcome.reason = f"{outcome.reason} (unpickling the objective on {worker.address})"
                outcome.traceback = traceback.format_exc()
            else:
                if trial.checkpoint_dir is not None:
                    trial.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                outcome = execute_trial(objective, trial, spec["metric"], spec["mode"], lambda: host.stop)
        return {
            "state": outcome.state.value, "value": outcome.value, "reason": outcome.reason,
            "metrics": dict(outcome.metrics), "traceback": outcome.traceback, "pruned": trial.pruned,
            "stop_seen": trial.stop_seen, "reports": host.sent, "worker": worker.address,
        }
    finally:
        with host.changed:
            host.done = True
            host.changed.notify_all()
        with contextlib.suppress(Exception):
            if listener is not None:  # ends its long poll; no need to wait for it
                channel.put({"bye": True}, timeout=10)
        with contextlib.suppress(Exception):
            channel.close()
