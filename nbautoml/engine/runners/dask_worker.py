"""The worker half of the Dask runner: the task that runs one trial, and the trial's TrialHost on the worker.

Kept apart from :mod:`nbautoml.engine.runners.dask` (the driver half) so that a worker imports only this and the
engine. The protocol, from the worker's side:

1. On a cluster that may re-run a task whose worker died (``guard``), take "go" from the trial's own channel
   first; none means this is such a re-run: run nothing and say "lost". (The embedded cluster never re-runs.)
2. Register the trial with this worker's listener — one thread per worker process and run that long-polls the
   run's channel for this worker (a ``distributed.Queue``) and hands "halt" and report answers to its trials —
   then send "start" and run the objective with ``execute_trial`` semantics; each report goes out as an event on
   the run's topic (``Worker.log_event``: batched, ordered, no round trip).
3. Send the outcome as an "end" event — after the reports on the same ordered stream, so the driver resolves the
   trial with all its reports applied and without fetching the task's result — and return it too (the driver's
   fallback). A trial thus costs no round trip of its own unless it asked for report answers (a scheduler).
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

__all__ = ["ACK_TIMEOUT", "run_trial", "worker_channel"]

log = logging.getLogger(__name__)

ACK_TIMEOUT = 10.0  # a worker waits this long for the driver's answer to a report, then goes on

_objectives: OrderedDict[str, Any] = OrderedDict()
_listeners: dict[str, _Listener] = {}
_lock = threading.Lock()


def worker_channel(topic: str, worker: str) -> str:
    """The name of the run's channel to one worker (driver → worker decisions)."""
    return f"{topic}-{worker}"


def _load_objective(key: str, payload: bytes) -> Any:
    with _lock:
        objective = _objectives.get(key)
        if objective is None:
            import cloudpickle

            objective = _objectives[key] = cloudpickle.loads(payload)
            while len(_objectives) > 4:
                _objectives.popitem(last=False)
        _objectives.move_to_end(key)
        return objective


class _Listener:
    """Long-polls one run's channel to this worker until the driver's "bye"; a poll with a timeout would make the
    scheduler log an error each time, so the poll has none."""

    def __init__(self, client: Any, name: str) -> None:
        self.client, self.name = client, name
        self.hosts: dict[int, _WorkerHost] = {}
        threading.Thread(target=self._run, name=f"nbautoml-{name}", daemon=True).start()

    @staticmethod
    def of(client: Any, name: str) -> _Listener:
        with _lock:
            listener = _listeners.get(name)
            if listener is None:
                listener = _listeners[name] = _Listener(client, name)
            return listener

    def _run(self) -> None:
        from distributed import Queue

        channel: Any = None
        try:
            channel = Queue(self.name, client=self.client)
            while True:
                message = channel.get()
                if message.get("bye"):
                    break
                host = self.hosts.get(int(message.get("n", -1)))
                if host is not None:
                    host.apply(message)
        except Exception as error:  # the client or the cluster is going away
            log.debug("nbautoml listener %s ended: %s", self.name, error)
        finally:
            with _lock:
                _listeners.pop(self.name, None)
            if channel is not None:
                with contextlib.suppress(Exception):
                    channel.close()


class _WorkerHost:
    """The TrialHost of a trial on a worker: reports go to the driver, stop and prune come back from it."""

    def __init__(self, worker: Any, spec: dict[str, Any]) -> None:
        self.worker, self.spec = worker, spec
        self.changed = threading.Condition()
        self.go = self.stop = self.prune = False
        self.sent = 0
        self.acked = 0

    def apply(self, message: dict[str, Any]) -> None:
        with self.changed:
            self.go = self.go or bool(message.get("go"))
            self.stop = self.stop or message.get("halt") == "stop"
            self.prune = self.prune or message.get("halt") == "prune"
            self.acked = max(self.acked, int(message.get("ack", 0)))
            self.changed.notify_all()

    def send(self, kind: str, **fields: Any) -> None:
        """An event to the driver; a lost "end" is made good by the task's result (the driver's fallback)."""
        try:
            self.worker.log_event(self.spec["topic"], {"kind": kind, "n": self.spec["number"], **fields})
        except Exception:
            log.exception("trial %d: sending %r to the driver failed", self.spec["number"], kind)

    # TrialHost
    def on_report(self, trial: Trial, step: int, metrics: dict[str, float]) -> None:
        self.sent += 1
        seq = self.sent
        self.send("report", seq=seq, step=step, metrics=metrics, time=time.time(), sync=self.spec["sync"])
        if self.spec["sync"]:
            with self.changed:
                if not self.changed.wait_for(lambda: self.acked >= seq, timeout=ACK_TIMEOUT):
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
    """The Dask task: one trial with ``execute_trial`` semantics; its outcome as plain data (and as an event)."""
    from distributed import Queue, get_client, get_worker

    worker, client = get_worker(), get_client()
    host = _WorkerHost(worker, spec)
    if spec["guard"]:
        channel = Queue(spec["channel"], client=client)
        try:
            for message in channel.get(batch=True):
                host.apply(message)
        finally:
            channel.close()
        if not host.go:  # dask re-ran the task after its first worker died: never run a trial twice
            result: dict[str, Any] = {"lost": True, "worker": worker.address}
            host.send("end", result=result)
            return result
    listener = _Listener.of(client, worker_channel(spec["topic"], worker.address))
    listener.hosts[spec["number"]] = host
    try:
        host.send("start", worker=worker.address, pid=os.getpid())
        trial, outcome = _run(payload, spec, host, worker.address)
    finally:
        listener.hosts.pop(spec["number"], None)
    result = {
        "state": outcome.state.value, "value": outcome.value, "reason": outcome.reason,
        "metrics": dict(outcome.metrics), "traceback": outcome.traceback, "pruned": trial.pruned,
        "stop_seen": trial.stop_seen, "reports": host.sent, "worker": worker.address,
    }
    host.send("end", result=result)
    return result


def _run(payload: bytes, spec: dict[str, Any], host: _WorkerHost, where: str) -> tuple[Trial, Outcome]:
    from nbautoml.engine.runners.thread import execute_trial

    trial = Trial(
        spec["number"], spec["params"], study_name=spec["study"], state=TrialState.RUNNING,
        resumed_from=spec["resumed_from"], resume_step=spec["resume_step"],
        checkpoint_dir=spec["checkpoint_dir"] or None, space_version=spec["space_version"],
        metric=spec["metric"], mode=spec["mode"], host=host, seed=spec.get("seed"),
    )
    trial.reports = [Report(int(step), dict(metrics), float(at)) for step, metrics, at in spec["reports"]]
    if host.stop:  # the study stopped while this task waited for a worker
        trial.stop_seen = True
        return trial, Outcome(TrialState.INTERRUPTED, reason="stopped before it started")
    try:
        objective = _load_objective(spec["objective"], payload)
    except Exception as error:
        outcome = exception_outcome(error)
        outcome.reason = f"{outcome.reason} (unpickling the objective on {where})"
        outcome.traceback = traceback.format_exc()
        return trial, outcome
    if trial.checkpoint_dir is not None:
        trial.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    return trial, execute_trial(objective, trial, spec["metric"], spec["mode"], lambda: host.stop)
