"""Trials on a Dask cluster: ``runner="dask"`` (an embedded LocalCluster), a ``distributed.Client``, or an address.

Only imported for those runners, so ``distributed`` and ``cloudpickle`` load lazily. This is the driver half; the
task a worker runs is in :mod:`nbautoml.engine.runners.dask_worker`. Why it looks like this:

- **The objective** is cloudpickled once and scattered to every worker (``broadcast=True``); each task gets the
  future, so a large array in the objective's closure crosses the network once per worker, not once per trial.
  Workers keep the unpickled objective (a few, by key), as the thread runner reuses one objective object.
- **Reports and outcomes** travel worker → driver as events on one topic per run (``Worker.log_event``:
  batched, ordered per worker, no round trip); the outcome comes last, as an "end" event, so a trial resolves
  with all its reports applied and without fetching the task's result (the task returns it too, as a fallback).
  One pump thread on the driver applies reports to the driver's own Trial with ``Study.on_report``, so only the
  driver writes the journal and the study's scheduler (ASHA, median) decides there.
- **Decisions** travel driver → worker through one ``distributed.Queue`` per worker and run, keyed by trial:
  "halt" (stop or prune) and, when the study has a scheduler, an answer to every report, which the worker waits
  for, so ``should_stop()`` right after ``report()`` sees a prune exactly as in-process (measured: a few ms a
  report; see bench/results/dask_overhead.md). A listener thread per worker long-polls it, so ``should_stop()``
  stays a local flag read and a trial costs no round trip of its own. Pub/Sub and per-trial Events were the
  alternatives: Pub/Sub has no delivery guarantee for a subscriber that joins late, Events carry no data.
- **A worker that dies** mid-trial: the trial becomes INTERRUPTED (the reason names the worker) and the study loop
  queues its re-run at once (``resumed_from``, ``resume_step`` from its checkpoint; the budget counts only the
  re-run); after :data:`MAX_WORKER_DEATHS` deaths of one trial's lineage it is FAILED instead, so a trial that
  kills its worker cannot loop forever. Dask itself would re-run such a task on another worker — a silent double
  run under the same trial number — so it is prevented, not embraced: the embedded cluster sets
  ``allowed_failures=0`` (the task errs with KilledWorker at once); on a cluster that retries, each trial gets a
  "go" token in its own queue before its task exists, and dask's re-run of the task finds the token taken and
  returns "lost" without running the objective.
- **Checkpoints**: ``trial.checkpoint_dir`` is a driver path. On a LocalCluster the file system is shared; on a
  remote cluster the study's checkpoint root (``.nbautoml/<name>/``) must be on storage that every worker sees
  at the same path. Remote workers also need nbautoml and what the objective imports.
- **Placement**: the embedded cluster has one single-threaded worker process per core, or one per GPU (each
  with its own ``CUDA_VISIBLE_DEVICES`` and a ``GPU`` resource, so one trial per GPU), at most ``parallel``;
  it listens on 127.0.0.1 only, without dashboards.
- **Security**: loopback alone lets any local process (another user's too) connect and run code on the workers,
  so the embedded cluster speaks TLS with mutual authentication and credentials made for this cluster alone
  (``distributed.security.Security.temporary()``: a fresh CA and key held in memory and handed to the workers it
  spawns; this needs the ``cryptography`` package, in the ``dask`` extra). A client without that key is refused
  at the handshake. A cluster the user gives (a Client or an address) keeps the security the user set up.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
import traceback
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from nbautoml.engine.runners.base import Objective
from nbautoml.engine.runners.dask_cluster import (
    LOOPBACK,
    WORKER_ENV,
    cluster_security,
    gpu_devices,
    gpu_worker_options,
    start_local_cluster,
)
from nbautoml.engine.runners.dask_worker import run_trial, worker_channel
from nbautoml.engine.trial import Report, Trial, TrialState
from nbautoml.engine.trialbook import TrialBook
from nbautoml.engine.values import Outcome, exception_outcome
from nbautoml.events import StopRequested

__all__ = ["LOOPBACK", "MAX_WORKER_DEATHS", "WORKER_ENV", "DaskExecutor", "cluster_security", "gpu_devices",
           "gpu_worker_options", "start_local_cluster"]

log = logging.getLogger(__name__)

MAX_WORKER_DEATHS = 3  # the same trial lineage dying this often is FAILED, not re-run again
_LATE_REPORTS = 5.0  # the driver waits this long for a finished trial's reports still on their way


# ---- the driver side -------------------------------------------------------------------------------------
@dataclass
class _Live:
    """A submitted trial, until its Future is resolved."""

    trial: Trial
    future: Future[Outcome]
    task: Any = None  # distributed.Future
    worker: str | None = None  # known from its "start" event
    pid: int | None = None
    applied: int = 0  # reports applied on the driver
    halts: set[str] = field(default_factory=set)  # "stop" / "prune", sent once its worker is known
    guard: Any = None  # the driver's hold on the trial's "go" queue (clusters that re-run dead workers' tasks)
    result: Any = None  # the worker's outcome dict, or the task's exception
    ended_at: float | None = None  # when the result came
    done_at: float | None = None  # when dask said the task finished


class DaskExecutor:
    """Runs trials as Dask tasks: an :class:`~nbautoml.engine.runners.base.Executor`."""

    def __init__(self, runner: Any, parallel: int, study: TrialBook) -> None:
        from distributed import Client

        self.study = study
        self._token = uuid.uuid4().hex[:12]
        self._topic = f"nbautoml-{self._token}"
        self._cluster: Any = None
        if getattr(runner, "asynchronous", False):
            raise ValueError("an asynchronous distributed.Client cannot run a study: pass a synchronous one")
        self._own_client = not hasattr(runner, "submit")
        if runner == "dask":
            self._cluster = start_local_cluster(parallel)
        try:
            if self._cluster is not None:
                self.client: Any = Client(self._cluster, set_as_default=False)
            elif isinstance(runner, str):
                self.client = Client(runner, set_as_default=False, timeout=30)
            else:
                self.client = runner
            try:
                workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
            except TypeError:  # distributed before 2025 lists every worker without being asked
                workers = self.client.scheduler_info().get("workers", {})
            self._gpu = any("GPU" in (w.get("resources") or {}) for w in workers.values())
            self._live: dict[int, _Live] = {}
            self._lock = threading.Lock()
            self._deaths: dict[int, int] = {}
            self._payload: Any = None
            self._payload_of: Any = None
            self._guard = self._cluster is None and self._retries_dead()  # may re-run the task of a dead worker
            self._channels: dict[str, Any] = {}  # worker address → distributed.Queue of decisions to it
            self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
            self.client.subscribe_topic(self._topic, lambda event: self._inbox.put(("event", event[1])))
            self._unsubscribe = study.events.subscribe(lambda _: self._inbox.put(("stop", None)), StopRequested)
            self._pump_thread = threading.Thread(target=self._pump, name=f"nbautoml-{study.name}-dask", daemon=True)
            self._pump_thread.start()
        except BaseException:
            self._close_cluster()
            raise

    def _retries_dead(self) -> bool:
        """Whether the scheduler re-runs a task whose worker died (dask's default; our own cluster never does)."""
        try:
            return int(self.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)) > 0
        except Exception:  # run_on_scheduler blocked or failing: assume it does
            return True

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    def submit(self, study: TrialBook, objective: Objective, trial: Trial) -> Future[Outcome]:
        from distributed import Queue

        payload = self._objective(objective)
        live = _Live(trial, Future())
        guard = f"{self._topic}-trial-{trial.number}"
        if self._guard:  # "go" is there before the task exists: dask's re-run of it finds "go" taken
            live.guard = Queue(guard, client=self.client)
            live.guard.put({"go": True})
        spec = {
            "number": trial.number, "params": dict(trial.params), "study": study.name, "topic": self._topic,
            "channel": guard, "objective": payload.key, "resumed_from": trial.resumed_from,
            "resume_step": trial.resume_step, "checkpoint_dir": str(trial.checkpoint_dir or ""),
            "space_version": trial.space_version, "metric": study.metric, "mode": study.mode, "seed": trial.seed,
            "sync": study.scheduler is not None, "guard": self._guard,
            "reports": [(r.step, dict(r.metrics), r.time) for r in trial.reports],  # a re-run continues a curve
        }
        live.future.set_running_or_notify_cancel()
        with self._lock:
            self._live[trial.number] = live
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", study.name)[:40]
        live.task = self.client.submit(
            run_trial, payload, spec, key=f"nbautoml-{name}-trial-{trial.number}-{uuid.uuid4().hex[:8]}",
            pure=False, retries=0, resources={"GPU": 1} if self._gpu else None,
        )
        live.task.add_done_callback(lambda _, n=trial.number: self._inbox.put(("done", n)))
        return live.future

    def _objective(self, objective: Any) -> Any:
        """The scattered, pickled objective (again if a lost worker took its last copy)."""
        if self._payload_of is not objective or self._payload.status != "finished":
            import cloudpickle

            data = cloudpickle.dumps(objective)
            [self._payload] = self.client.scatter([data], broadcast=True, hash=False)
            self._payload_of = objective
        return self._payload

    # ---- the pump: reports, results and halts, all on one thread -------------------------------------
    def _pump(self) -> None:
        while True:
            try:
                kind, payload = self._inbox.get(timeout=0.1)
            except queue.Empty:
                kind, payload = "tick", None
            if kind == "quit":
                return
            try:
                if kind == "event":
                    self._on_message(payload)
                elif kind == "done":
                    self._on_done(payload)
                if self.study.stopping:
                    self._halt_all("stop")
                self._resolve_ended()
            except Exception:
                log.exception("study %r: the Dask pump failed on %s", self.study.name, kind)

    def _on_message(self, message: dict[str, Any]) -> None:
        live = self._live.get(int(message.get("n", -1)))
        if live is None:
            return  # a trial already resolved (its late report waited too long)
        if message["kind"] == "start":
            live.worker, live.pid = message.get("worker"), message.get("pid")
            for kind in sorted(live.halts):  # asked for before its worker was known
                self._send(live, {"halt": kind})
            return
        if message["kind"] == "end":  # after the trial's reports, on the same ordered stream
            live.result, live.ended_at = message["result"], time.monotonic()
            return
        trial, step, metrics = live.trial, int(message["step"]), dict(message["metrics"])
        trial.reports.append(Report(step, metrics, float(message["time"])))
        try:
            self.study.on_report(trial, step, metrics)
        except Exception:
            log.exception("trial %d: recording report for step %d failed", trial.number, step)
        live.applied += 1
        halt = "prune" if trial.pruned else ("stop" if self.study.stopping else None)
        if message.get("sync"):
            self._send(live, {"ack": int(message["seq"]), "halt": halt})
        elif halt is not None and halt not in live.halts:
            self._send(live, {"halt": halt})
        if halt is not None:
            live.halts.add(halt)

    def _send(self, live: _Live, message: dict[str, Any]) -> None:
        """Tell the trial's worker (its listener opens the other end; either side may come first)."""
        from distributed import Queue

        if live.worker is None:
            return
        try:
            channel = self._channels.get(live.worker)
            if channel is None:
                name = worker_channel(self._topic, live.worker)
                channel = self._channels[live.worker] = Queue(name, client=self.client)
            channel.put({"n": live.trial.number, **message}, timeout=10)
        except Exception as error:
            log.warning("trial %d: telling its worker %s failed: %s", live.trial.number, message, error)

    def _halt_all(self, kind: str) -> None:
        with self._lock:
            lives = [live for live in self._live.values() if live.result is None and kind not in live.halts]
        for live in lives:
            live.halts.add(kind)
            self._send(live, {"halt": kind})

    def _on_done(self, number: int) -> None:
        live = self._live.get(number)
        if live is None or live.result is not None:
            return  # resolved or resolving from its "end" event
        live.done_at = time.monotonic()
        if live.task.status != "finished":
            self._fetch(live)  # KilledWorker, a lost cluster, an exception outside the objective

    def _fetch(self, live: _Live) -> None:
        try:
            live.result = live.task.result(timeout=60)
        except BaseException as error:
            live.result = error
        live.ended_at = time.monotonic()

    def _resolve_ended(self) -> None:
        """Resolve ended trials once their reports are all applied (or stopped coming)."""
        with self._lock:
            lives = list(self._live.values())
        now = time.monotonic()
        for live in lives:
            if live.result is None and live.done_at is not None and now - live.done_at > _LATE_REPORTS:
                self._fetch(live)  # the task finished but its "end" event never came
            if live.result is None:
                continue
            sent = live.result.get("reports", 0) if isinstance(live.result, dict) else live.applied
            if live.applied < sent and now - (live.ended_at or 0.0) < _LATE_REPORTS:
                continue
            if live.applied < sent:
                log.warning("trial %d: %d of its reports never arrived", live.trial.number, sent - live.applied)
            outcome = self._outcome(live)
            with self._lock:
                self._live.pop(live.trial.number, None)
            with contextlib.suppress(Exception):
                live.task.release()
                if live.guard is not None:
                    live.guard.close()
            live.future.set_result(outcome)

    def _outcome(self, live: _Live) -> Outcome:
        result, trial = live.result, live.trial
        if isinstance(result, dict) and "state" in result:
            trial.pruned = trial.pruned or bool(result["pruned"])
            trial.stop_seen = trial.stop_seen or bool(result["stop_seen"])
            return Outcome(
                TrialState(result["state"]), result["value"], result["reason"], dict(result["metrics"]),
                result["traceback"],
            )
        if isinstance(result, dict) and result.get("lost"):
            return self._death(live, f"; dask's retry on {result.get('worker')} ran nothing")
        if type(result).__name__ == "KilledWorker":
            last = getattr(result, "last_worker", None)
            live.worker = live.worker or getattr(last, "address", None)
            return self._death(live)
        if isinstance(result, BaseException):
            if self.client.status != "running":
                return Outcome(TrialState.INTERRUPTED, reason=f"the Dask cluster was lost ({type(result).__name__})")
            outcome = exception_outcome(result)
            outcome.traceback = "".join(traceback.format_exception(result))
            return outcome
        return Outcome(TrialState.FAILED, reason=f"the Dask task returned {type(result).__name__}")

    def _death(self, live: _Live, note: str = "") -> Outcome:
        trial = live.trial
        deaths = 1 + (self._deaths.get(trial.resumed_from, 0) if trial.resumed_from is not None else 0)
        self._deaths[trial.number] = deaths
        who = f"{live.worker or 'unknown address'}" + (f", pid {live.pid}" if live.pid else "")
        where = f"after step {trial.last_step}" if trial.last_step is not None else "before its first report"
        if deaths >= MAX_WORKER_DEATHS:
            why = f"its Dask worker died {deaths} times running these params (last: {who}, {where})"
            return Outcome(TrialState.FAILED, reason=why)
        return Outcome(TrialState.INTERRUPTED, reason=f"its Dask worker died ({who}) {where}{note}")

    def shutdown(self) -> None:
        self._inbox.put(("quit", None))
        self._pump_thread.join(timeout=30)
        self._unsubscribe()
        with self._lock:
            leftovers, self._live = list(self._live.values()), {}
        for live in leftovers:  # only after a loop error: the loop waits for every trial it started
            with contextlib.suppress(Exception):
                live.task.cancel()
            if not live.future.done():
                live.future.set_result(Outcome(TrialState.INTERRUPTED, reason="the Dask runner shut down"))
        for channel in self._channels.values():  # ends each worker's listener (or a dead one's poll)
            with contextlib.suppress(Exception):
                channel.put({"bye": True}, timeout=10)
                channel.close()
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self._topic)
        if self._payload is not None:
            with contextlib.suppress(Exception):
                self._payload.release()
        self._close_cluster()

    def _close_cluster(self) -> None:
        client = getattr(self, "client", None)
        if self._own_client and client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
