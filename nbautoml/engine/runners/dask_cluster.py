"""The embedded Dask cluster ``runner="dask"`` starts: placement, the workers' environment, mutual TLS.

Split from :mod:`nbautoml.engine.runners.dask` (the driver that runs trials on any cluster); the module docstring
there says why placement and security are as they are. Only imported for the Dask runner, so ``distributed``
loads lazily.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from typing import Any

__all__ = ["LOOPBACK", "WORKER_ENV", "cluster_security", "gpu_devices", "gpu_worker_options", "start_local_cluster"]

LOOPBACK = "127.0.0.1"
_HTTP = f"{LOOPBACK}:0"  # the scheduler's health/metrics server (no dashboard): any free loopback port, not 8787


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def gpu_devices() -> list[str]:
    """The driver's visible CUDA devices, as CUDA_VISIBLE_DEVICES entries.

    The engine never imports torch (tests/test_import_rule.py): it asks the torch the user already imported, or
    else ``nvidia-smi``.
    """
    torch = sys.modules.get("torch")
    try:
        if torch is not None:
            count = int(torch.cuda.device_count())
        elif shutil.which("nvidia-smi"):
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True)
            count = sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
        else:
            count = 0
    except Exception:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": 64 * 2**20}
"""Set before our workers start. Dask's nanny gives them ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory
back), which also freezes glibc's mmap threshold at 128 KiB: every tensor above it is mmap'ed and faulted in
anew, and a torch CPU trial costs about a third more CPU (0.75 s vs 0.56 s for the same matmuls here). A high
mmap threshold keeps the trim and drops that cost."""


def start_local_cluster(parallel: int, devices: list[str] | None = None) -> Any:
    """A cluster on 127.0.0.1 with ``min(parallel, cores or GPUs)`` single-threaded worker processes."""
    import dask

    devices = gpu_devices() if devices is None else devices
    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    with dask.config.set(env):  # read by each Nanny when it is made (and kept for its restarts)
        return _start(parallel, devices)


def cluster_security() -> Any:
    """Fresh TLS credentials for one embedded cluster (mutual TLS; see the module docstring)."""
    from distributed.security import Security

    try:
        return Security.temporary()
    except ImportError as error:  # Security.temporary() imports cryptography
        raise ImportError(
            "the embedded Dask cluster authenticates its clients with TLS, which needs the 'cryptography' "
            "package: pip install 'nbautoml[dask]' (or pip install cryptography)"
        ) from error


def _start(parallel: int, devices: list[str]) -> Any:
    security = cluster_security()
    if not devices:
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=max(1, min(parallel, _cores())), threads_per_worker=1, processes=True, host=LOOPBACK,
            protocol="tls://", security=security, dashboard_address=None,
            scheduler_kwargs={"allowed_failures": 0, "dashboard_address": _HTTP},
        )
    from distributed import Nanny, Scheduler, SpecCluster

    scheduler = {
        "cls": Scheduler,
        "options": {"host": LOOPBACK, "protocol": "tls://", "security": security, "dashboard": False,
                    "dashboard_address": _HTTP, "allowed_failures": 0},
    }
    workers = {f"gpu-{device}": {"cls": Nanny, "options": gpu_worker_options(device, security)}
               for device in devices[:parallel]}
    return SpecCluster(scheduler=scheduler, workers=workers, security=security, silence_logs=logging.WARN)


def gpu_worker_options(device: str, security: Any = None) -> dict[str, Any]:
    """One worker per GPU: it sees only its device and holds one ``GPU`` resource (one trial at a time)."""
    return {
        "host": LOOPBACK, "protocol": "tls://" if security is not None else "tcp://", "security": security,
        "nthreads": 1, "dashboard": False, "dashboard_address": None, "resources": {"GPU": 1},
        "env": {"CUDA_VISIBLE_DEVICES": device}, "silence_logs": logging.WARN,
    }
