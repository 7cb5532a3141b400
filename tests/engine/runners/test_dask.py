"""The Dask runner on real LocalClusters of 2 worker processes on 127.0.0.1: reports, stop + resume, a killed
worker, ASHA across processes, loopback-only listening, one trial per (pretend) GPU.

Objectives are module-level functions pickled by value (pytest's importlib mode leaves this module unimportable
on the workers), so they may refer only to importable modules and module constants.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
psutil = pytest.importorskip("psutil")

import nbautoml as na  # noqa: E402
from nbautoml.engine.runners.dask import (  # noqa: E402
    MAX_WORKER_DEATHS,
    WORKER_ENV,
    gpu_devices,
    gpu_worker_options,
    start_local_cluster,
)
from nbautoml.engine.schedulers import ASHA  # noqa: E402
from nbautoml.engine.study import StudyState  # noqa: E402
from nbautoml.engine.trial import Trial, TrialState  # noqa: E402
from nbautoml.events import TrialReported  # noqa: E402

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SPACE = na.Space(x=na.Real(-2.0, 2.0))
LOOPBACK = {"127.0.0.1", "::1"}


# ---- objectives (run on the workers) ---------------------------------------------------------------------
def curve(trial: Trial, steps: int = 3, delay: float = 0.05) -> None:
    """A learning curve; a checkpoint each step, so a stopped or killed trial resumes after its last step."""
    assert na.current_trial() is trial, "the worker sets the current trial"
    for step in range(trial.resume_step, steps):
        time.sleep(delay)
        assert trial.checkpoint_dir is not None
        (trial.checkpoint_dir / "state.json").write_text(json.dumps({"step": step}))
        trial.report(step, loss=(trial.params["x"] - 0.5) ** 2 + 1.0 / (step + 1), pid=os.getpid())
        if trial.should_stop():
            break
    return None


def long_curve(trial):
    return curve(trial, steps=6, delay=0.1)


def asha_curve(trial):
    return curve(trial, steps=6, delay=0.03)


def suicide(trial):
    trial.report(0, loss=1.0, pid=os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


def device_objective(trial):
    time.sleep(0.2)
    return {"loss": trial.params["x"], "device": float(os.environ["CUDA_VISIBLE_DEVICES"])}


# ---- helpers ---------------------------------------------------------------------------------------------
def wait_for(predicate, timeout=60.0, every=0.02):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def journal(name: str) -> list[dict]:
    path = Path(".nbautoml") / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def listening_addresses() -> list[str]:
    """Listening TCP sockets of this process and its children (the cluster's scheduler, nannies, workers)."""
    me = psutil.Process()
    found = []
    for process in [me, *me.children(recursive=True)]:
        try:
            found += [c.laddr.ip for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    return found


def reported(study, when):
    """A threading.Event set (with the TrialReported event in .hit) the first time ``when(event)`` is true."""
    flag = threading.Event()

    def check(event):
        if not flag.is_set() and when(event):
            flag.hit = event  # type: ignore[attr-defined]
            flag.set()

    study.events.subscribe(check, TrialReported)
    return flag


def study_of(name, **options):
    options.setdefault("sampler", "random")
    options.setdefault("seed", 0)
    return na.Study(name, SPACE, metric="loss", **options)


@pytest.fixture(scope="module")
def client():
    """The embedded runner's own cluster (allowed_failures=0), shared by the tests that pass a Client."""
    with start_local_cluster(2, devices=[]) as cluster, distributed.Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


# ---- tests -----------------------------------------------------------------------------------------------
def test_embedded_cluster_runs_ten_trials_with_learning_curves_in_order():
    study = study_of("ten")
    started = reported(study, lambda e: True)
    study.optimize(curve, trials=10, parallel=2, runner="dask", background=True, show=False)
    assert started.wait(60)
    listening = listening_addresses()  # while the embedded cluster runs
    assert listening and set(listening) <= LOOPBACK, listening
    assert study.wait(90) and study.state is StudyState.FINISHED, study.message
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 10
    pids = {r.metrics["pid"] for t in trials for r in t.reports}
    assert len(pids) == 2 and os.getpid() not in pids  # both worker processes ran trials
    for trial in trials:
        assert [r.step for r in trial.reports] == [0, 1, 2]
        assert trial.value == pytest.approx((trial.params["x"] - 0.5) ** 2 + 1.0 / 3)
    records = journal("ten")
    for trial in trials:  # the driver wrote each trial's reports, in order, before its finish
        mine = [r for r in records if r.get("number") == trial.number and r["type"] in ("report", "finish")]
        assert [r.get("step") for r in mine] == [0, 1, 2, None] and mine[-1]["type"] == "finish"


def test_cluster_listens_on_loopback_only(client):
    info = client.scheduler_info(n_workers=-1)
    assert client.scheduler.address.startswith("tls://127.0.0.1:")  # TLS: see the authentication tests
    assert len(info["workers"]) == 2
    for address, worker in info["workers"].items():
        assert address.startswith("tls://127.0.0.1:") and worker["nanny"].startswith("tls://127.0.0.1:")
    listening = listening_addresses()
    assert len(listening) >= 5 and set(listening) <= LOOPBACK, listening  # scheduler, 2 nannies, 2 workers


def test_workers_start_with_a_high_mmap_threshold(client):
    """Dask's MALLOC_TRIM_THRESHOLD_ would otherwise mmap every tensor over 128 KiB anew (runners/dask_cluster.py)."""
    seen = client.run(lambda: (os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("MALLOC_TRIM_THRESHOLD_")))
    assert set(seen.values()) == {(str(WORKER_ENV["MALLOC_MMAP_THRESHOLD_"]), "65536")}


def test_stop_mid_run_interrupts_running_trials_and_resume_reruns_them(client):
    study = study_of("stop")
    second_step = reported(study, lambda e: e.step >= 1)
    study.optimize(long_curve, trials=10, parallel=2, runner=client, background=True, show=False)
    assert second_step.wait(60)
    study.stop()
    assert study.wait(60) and study.state is StudyState.STOPPED
    interrupted = [t for t in study.trials if t.state is TrialState.INTERRUPTED]
    assert interrupted and study.n_finished < 10
    assert all(t.reason.startswith("stopped") for t in interrupted)
    assert any(len(t.reports) < 6 for t in interrupted)  # they stopped early, at a report
    study.optimize(long_curve, trials=10, parallel=2, runner=client, show=False)
    assert study.state is StudyState.FINISHED and study.n_finished == 10
    for old in interrupted:
        [rerun] = [t for t in study.trials if t.resumed_from == old.number]
        assert rerun.params == old.params and rerun.state is TrialState.COMPLETE
        assert rerun.resume_step == (old.last_step + 1 if old.reports else 0)
        assert [r.step for r in rerun.reports] == list(range(6))  # the old curve, continued where it stopped
        assert rerun.value == min(r.metrics["loss"] for r in rerun.reports)


def test_a_killed_worker_interrupts_its_trial_and_it_is_rerun(client):
    pids = set(client.run(os.getpid).values())
    study = study_of("killed")
    second_step = reported(study, lambda e: e.step >= 1)
    study.optimize(long_curve, trials=10, parallel=2, runner=client, background=True, show=False)
    assert second_step.wait(60)
    victim, pid = second_step.hit.number, int(second_step.hit.metrics["pid"])
    assert pid in pids
    os.kill(pid, signal.SIGKILL)
    assert study.wait(90) and study.state is StudyState.FINISHED, study.message
    old = next(t for t in study.trials if t.number == victim)
    assert old.state is TrialState.INTERRUPTED
    assert "Dask worker died (tls://127.0.0.1:" in old.reason and f"pid {pid}" in old.reason
    assert "retry" not in old.reason  # allowed_failures=0: dask did not try again
    [rerun] = [t for t in study.trials if t.resumed_from == victim]
    assert rerun.params == old.params and rerun.state is TrialState.COMPLETE
    assert rerun.resume_step == old.last_step + 1 and [r.step for r in rerun.reports] == list(range(6))
    interrupted = [t for t in study.trials if t.state is TrialState.INTERRUPTED]  # a task queued there too, maybe
    assert study.n_finished == 10 and len(study.trials) == 10 + len(interrupted)  # they did not count
    assert all(sum(t.resumed_from == i.number for t in study.trials) == 1 for i in interrupted)
    wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 30)  # the nanny restarted it


def test_a_trial_that_keeps_killing_its_worker_fails_instead_of_looping(client, monkeypatch):
    assert MAX_WORKER_DEATHS == 3
    monkeypatch.setattr("nbautoml.engine.runners.dask.MAX_WORKER_DEATHS", 2)  # one worker restart less to wait for
    study = study_of("suicide")
    study.optimize(suicide, trials=1, parallel=1, runner=client, show=False)
    assert [t.state for t in study.trials] == [TrialState.INTERRUPTED, TrialState.FAILED]
    assert study.trials[1].resumed_from == 0 and "died 2 times" in study.trials[1].reason
    wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 30)


def test_asha_prunes_across_processes_at_the_report_that_decided_it(client):
    study = study_of("asha", scheduler=ASHA(min_steps=1, reduction_factor=2, max_steps=6))
    study.optimize(asha_curve, trials=10, parallel=2, runner=client, show=False)
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert pruned and study.n_finished == 10
    for trial in pruned:  # the worker learned at once: no step ran after the deciding report
        assert trial.reason.startswith(f"pruned: rung {trial.last_step + 1} epochs:") and trial.last_step < 5
        assert all(r.metrics["pid"] != os.getpid() for r in trial.reports)


def test_errors_become_failed_trials_and_the_objective_is_scattered_once(client):
    big = list(range(200_000))

    def objective(trial):
        if trial.params["x"] < 0:
            raise ValueError("negative x")
        return trial.params["x"] + big[0]

    study = study_of("errors", storage=":memory:")
    study.optimize(objective, trials=8, parallel=2, runner=client, background=True, show=False)
    assert wait_for(lambda: study.n_finished >= 2)
    keys = {k for held in client.has_what().values() for k in held if "-trial-" not in k}
    assert study.wait(60) and study.n_finished == 8
    assert len(keys) <= 1  # one scattered objective, not one per trial
    for trial in study.trials:
        if trial.params["x"] < 0:
            assert trial.state is TrialState.FAILED and trial.reason == "exception: ValueError: negative x"
            assert "negative x" in (trial.traceback or "")
        else:
            assert trial.state is TrialState.COMPLETE and trial.value == trial.params["x"]


@pytest.fixture(scope="module")
def user_client():
    """A cluster the user started: plain TCP on loopback, dask's defaults (a dead worker's task is re-run)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, distributed.Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def test_an_address_uses_an_existing_cluster_and_its_retry_of_a_dead_workers_task_runs_nothing(user_client):
    """A cluster left at dask's default re-runs a task whose worker died: that re-attempt must not run the trial."""
    client = user_client
    assert client.cluster.scheduler.allowed_failures > 0
    study = study_of("address")
    second_step = reported(study, lambda e: e.step >= 1)
    study.optimize(long_curve, trials=4, parallel=2, runner=client.scheduler.address, background=True, show=False)
    assert second_step.wait(60)
    victim, pid = second_step.hit.number, int(second_step.hit.metrics["pid"])
    os.kill(pid, signal.SIGKILL)
    assert study.wait(90) and study.state is StudyState.FINISHED, study.message
    old = next(t for t in study.trials if t.number == victim)
    assert old.state is TrialState.INTERRUPTED and f"pid {pid}" in old.reason
    assert "dask's retry on tcp://127.0.0.1:" in old.reason and old.reason.endswith("ran nothing")
    assert [r.step for r in old.reports] == sorted({r.step for r in old.reports})  # no second run's reports
    assert study.n_finished == 4 and any(t.resumed_from == victim for t in study.trials)
    assert client.status == "running"  # the study's own client closed; the user's cluster stays
    wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 30)


def test_gpus_are_counted_by_the_users_torch_without_importing_it(monkeypatch):
    cuda = type("cuda", (), {"device_count": staticmethod(lambda: 2)})
    monkeypatch.setitem(sys.modules, "torch", type("torch", (), {"cuda": cuda}))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_devices() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert gpu_devices() == ["3", "5"]


def test_one_trial_per_gpu_worker_each_seeing_its_own_device():
    """The GPU layout, on CPU: each worker gets CUDA_VISIBLE_DEVICES and one GPU resource per trial."""
    options = gpu_worker_options("3")
    assert options["env"] == {"CUDA_VISIBLE_DEVICES": "3"} and options["resources"] == {"GPU": 1}
    with start_local_cluster(2, devices=["0", "1"]) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert [w["resources"] for w in workers] == [{"GPU": 1}, {"GPU": 1}]
        study = study_of("gpus", storage=":memory:")
        study.optimize(device_objective, trials=6, parallel=2, runner=client, show=False)
    assert study.n_finished == 6 and {t.metrics["device"] for t in study.trials} == {0.0, 1.0}


# ---- authentication (the embedded cluster speaks mutual TLS with credentials of its own) -----------------
INTRUDER = """
import sys, distributed
address = sys.argv[1]
try:
    with distributed.Client(address, timeout=5, set_as_default=False) as client:
        print("RAN", client.submit(sum, [1, 2]).result(timeout=10))
except Exception as error:
    print("REFUSED", type(error).__name__)
"""


def intruder(address: str) -> str:
    """A separate process (an unrelated local user) trying to run a task on the cluster at ``address``."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", INTRUDER, address], capture_output=True, text=True, timeout=120)
    return done.stdout.strip().splitlines()[-1]


def test_the_embedded_cluster_refuses_a_client_without_its_credentials():
    seen: dict[str, str] = {}

    def objective(trial):
        return trial.params["x"] ** 2

    with start_local_cluster(1, devices=[]) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:"), address
        port = address.rsplit(":", 1)[1]
        seen["tcp"] = intruder(f"tcp://127.0.0.1:{port}")  # plain TCP to the same port
        seen["tls"] = intruder(address)  # TLS, but without the cluster's key and CA
        with distributed.Client(cluster, set_as_default=False) as client:  # the owner's client is let in
            study = study_of("tls", storage=":memory:")
            study.optimize(objective, trials=2, runner=client, show=False)
    assert seen["tcp"].startswith("REFUSED") and seen["tls"].startswith("REFUSED"), seen
    assert study.n_finished == 2


def test_a_users_own_cluster_keeps_its_own_security(user_client):
    """runner=Client(...) on a plain-TCP cluster the user started: nbautoml adds no TLS and runs there."""
    assert user_client.scheduler.address.startswith("tcp://")
    study = study_of("own", storage=":memory:")
    study.optimize(curve, trials=2, runner=user_client, show=False)
    assert study.n_finished == 2 and user_client.scheduler.address.startswith("tcp://")
