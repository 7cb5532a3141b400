"""Where a fused group's time goes on a GPU: per-epoch wall time with and without bf16 autocast, and the
torch profiler's top CPU ops and CUDA kernels for a K=256 digits MLP. A diagnostic for bench/fused.py.

Run: python bench/profile_fused.py [--k 256] [--epochs 6]
"""

from __future__ import annotations

import argparse
import time

import torch
from fused import configs, digits  # bench/fused.py's data and configurations

from nbautoml.torch.fused import train_fused


def timed(cfgs: list, data: tuple, epochs: int, amp: bool) -> float:
    torch.cuda.synchronize()
    began = time.perf_counter()
    train_fused(cfgs, data, n_outputs=10, epochs=epochs, batch_size=64, device="cuda", amp=amp, metric="val_acc")
    torch.cuda.synchronize()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    data, cfgs = digits("mlp"), configs(args.k, "mlp")
    timed(cfgs, data, 1, True)
    for amp in (True, False):
        one, more = timed(cfgs, data, 1, amp), timed(cfgs, data, args.epochs + 1, amp)
        print(f"amp={amp}: setup+1 epoch {one:.3f} s; per further epoch {(more - one) / args.epochs * 1e3:.1f} ms "
              f"({(more - one) / args.epochs / args.k * 1e3:.3f} ms per trial-epoch)")
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        timed(cfgs, data, 2, True)
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25))
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
