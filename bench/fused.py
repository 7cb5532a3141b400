"""One-at-a-time eager training vs fused training of K configurations of a digits MLP or CNN.

``--model mlp``: the MLP 64-128-128-10. ``--model cnn2d``: digits as (N, 1, 8, 8) images,
``models.build("cnn2d", {"blocks": 2, "channels": 16})`` (3x3 convs with 16 and 32 channels, batch norm, ReLU,
2x max pooling, global average pooling, linear head); fused, each layer's K convolutions are one grouped conv.

Both sides train the same K configurations (Adam, batch 64, different lr / weight decay / seed) on the same
sklearn-digits split with nbautoml's own loops: ``nbautoml.torch.train`` per model, and
``nbautoml.torch.fused.train_fused`` for all K at once (no trials, so no checkpoint files on either side).
Both run after a warm-up and under the same ``torch.set_num_threads``. On CUDA the clock is synchronised.
The eager side may time only the first ``--eager-k`` configurations (per-trial time is what is compared).

Run: python bench/fused.py --device cpu --k 16 --epochs 10 [--model cnn2d] [--threads 2] [--eager-k K]
The last line printed is ``ratio=<eager per-trial / fused per-trial>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from nbautoml.torch import models
from nbautoml.torch.fused import train_fused
from nbautoml.torch.train import train

ARCH = {"mlp": {"layers": 2, "units": 128}, "cnn2d": {"blocks": 2, "channels": 16}}
SHAPE = {"mlp": (64,), "cnn2d": (1, 8, 8)}


def digits(model: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, *SHAPE[model])
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return (x_tr, y_tr), (x_va, y_va)


def configs(k: int, model: str) -> list[dict[str, float]]:
    rng = np.random.default_rng(0)
    return [{"lr": float(10 ** rng.uniform(-4, -2)), "weight_decay": float(10 ** rng.uniform(-6, -3)),
             "seed": i, **ARCH[model]} for i in range(k)]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def eager(cfgs: list[dict[str, float]], data: tuple, epochs: int, device: str,
          model_kind: str) -> tuple[list[float], list[float], float]:
    times, accs = [], []
    cpu = time.process_time()
    for c in cfgs:
        sync(device)
        began = time.perf_counter()
        torch.manual_seed(int(c["seed"]))
        model = models.build(model_kind, c, SHAPE[model_kind], 10)
        result = train(model, data, epochs=epochs, batch_size=64, optimizer="adam", lr=c["lr"],
                       weight_decay=c["weight_decay"], seed=int(c["seed"]), device=device, metric="val_acc")
        sync(device)
        times.append(time.perf_counter() - began)
        accs.append(result["val_acc"])
    return times, accs, (time.process_time() - cpu) / len(cfgs)


def fused(cfgs: list[dict[str, float]], data: tuple, epochs: int, device: str,
          model_kind: str) -> tuple[float, list[float], float]:
    sync(device)
    began, cpu = time.perf_counter(), time.process_time()
    results = train_fused(cfgs, data, kind=model_kind, n_outputs=10, epochs=epochs, batch_size=64,
                          optimizer="adam", device=device, metric="val_acc")
    sync(device)
    return time.perf_counter() - began, [r["val_acc"] for r in results], (time.process_time() - cpu) / len(cfgs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--model", choices=sorted(ARCH), default="mlp", help="the family benchmarked")
    parser.add_argument("--k", type=int, default=16, help="configurations fused together")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both sides "
                        "(default: the cores this process may use)")
    parser.add_argument("--eager-k", type=int, default=None, help="time only this many eager trials")
    parser.add_argument("--repeat", type=int, default=3, help="alternate eager and fused runs this often; "
                        "medians are compared (the machine may be shared)")
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    data = digits(args.model)
    cfgs = configs(args.k, args.model)
    eager_cfgs = cfgs[: args.eager_k or args.k]
    eager(cfgs[:1], data, 1, args.device, args.model)  # warm-up: imports, allocator, kernels
    fused(cfgs[:2], data, 1, args.device, args.model)
    load = os.getloadavg()[0]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"model={args.model} device={args.device} ({name}) torch={torch.__version__} threads={threads} k={args.k} "
          f"epochs={args.epochs} load_before={load:.1f}")
    eager_runs, fused_runs, eager_cpu, fused_cpu = [], [], [], []
    for r in range(args.repeat):
        e_times, e_acc, e_cpu = eager(eager_cfgs, data, args.epochs, args.device, args.model)
        f_total, f_acc, f_cpu = fused(cfgs, data, args.epochs, args.device, args.model)
        eager_runs.append(statistics.mean(e_times))
        fused_runs.append(f_total / args.k)
        eager_cpu.append(e_cpu)
        fused_cpu.append(f_cpu)
        print(f"run {r}: eager per-trial s: " + " ".join(f"{t:.3f}" for t in e_times))
        print(f"run {r}: eager {eager_runs[-1] * 1e3:.1f} ms/trial (cpu {e_cpu * 1e3:.1f}); fused {args.k} trials "
              f"in {f_total:.3f} s = {fused_runs[-1] * 1e3:.1f} ms/trial (cpu {f_cpu * 1e3:.1f})", flush=True)
    per_eager, per_fused = statistics.median(eager_runs), statistics.median(fused_runs)
    n = len(e_acc)
    print(f"median over {args.repeat} runs: eager {per_eager * 1e3:.1f} ms/trial ({n} trials a run), "
          f"fused {per_fused * 1e3:.1f} ms/trial")
    cpu_ratio = statistics.median(eager_cpu) / statistics.median(fused_cpu)
    print(f"process cpu time per trial: eager {statistics.median(eager_cpu) * 1e3:.1f} ms, fused "
          f"{statistics.median(fused_cpu) * 1e3:.1f} ms, cpu_ratio={cpu_ratio:.2f} (steadier than wall time "
          "on a shared machine; wall time is the ratio below)")
    gap = max(abs(a - b) for a, b in zip(e_acc, f_acc[:n], strict=True))
    print(f"val_acc eager mean {statistics.mean(e_acc):.4f}, fused mean {statistics.mean(f_acc[:n]):.4f}, "
          f"max |diff| per config {gap:.2e}; load_after={os.getloadavg()[0]:.1f}")
    print(f"ratio={per_eager / per_fused:.2f}")


if __name__ == "__main__":
    main()
