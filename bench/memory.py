"""Memory drift over a long search: process RSS (and CUDA allocated memory) across 200 trials of a small torch
objective run through a Study (journal on disk, epoch checkpoints, best.pt, checkpoint pruning: the real path).

Each trial builds an MLP from its params and trains it with ``nbautoml.torch.train`` for a few epochs on
sklearn digits (reports, checkpoints). ``--batch K`` runs the same search through the fused batch objective
(``nbautoml.torch.fused.batch_objective`` with ``group_size=K``: fused groups of K). RSS is read after every
trial finishes (no forced garbage collection: what a user would see); drift = RSS at the end minus RSS after
the warm-up trials.
On CUDA, ``torch.cuda.memory_allocated`` is read the same way (goal: back to its baseline after each trial).

Run: python bench/memory.py [--trials 200] [--warmup 20] [--device cpu|cuda] [--batch K] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile

import numpy as np
import psutil
import torch
from sklearn.datasets import load_digits

import nbautoml as na
from nbautoml.engine.trial import Trial
from nbautoml.events import TrialFinished
from nbautoml.torch import models
from nbautoml.torch.fused import batch_objective, structural
from nbautoml.torch.train import train

SPACE = na.Space(lr=na.Real(1e-4, 1e-1, log=True), weight_decay=na.Real(1e-6, 1e-2, log=True),
                 layers=na.Int(1, 3), units=na.Choice([32, 64, 128]), dropout=na.Real(0.0, 0.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="fused groups of this size")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    data = ((x[:1400], y[:1400]), (x[1400:], y[1400:]))
    proc = psutil.Process()
    cuda = args.device.startswith("cuda")
    rss: list[float] = []
    alloc: list[float] = []

    def objective(trial: Trial) -> object:
        torch.manual_seed(trial.number)
        model = models.build("mlp", trial.params, (64,), 10)
        return train(model, data, epochs=args.epochs, batch_size=64, lr=trial.params["lr"],
                     weight_decay=trial.params["weight_decay"], seed=trial.number, device=args.device)

    def sample(event: TrialFinished) -> None:
        rss.append(proc.memory_info().rss / 2**20)
        if cuda:
            alloc.append(torch.cuda.memory_allocated() / 2**20)

    base_alloc = torch.cuda.memory_allocated() / 2**20 if cuda else 0.0
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # the journal and checkpoints go to .nbautoml/ here, as in a notebook's folder
        study = na.Study("memory", SPACE, metric="val_acc", sampler="random", seed=0)
        study.events.subscribe(sample, TrialFinished)
        if args.batch:
            fused = batch_objective(data, n_outputs=10, epochs=args.epochs, batch_size=64, device=args.device,
                                    group_size=args.batch)  # whole groups of K sharing an architecture
            study.optimize(fused, trials=args.trials, batch=args.batch, group_by=structural(SPACE.names),
                           show=False)
        else:
            study.optimize(objective, trials=args.trials, show=False)
        states = {s: sum(1 for t in study.trials if t.state.value == s) for s in ("COMPLETE", "FAILED")}
    warm = rss[args.warmup - 1] if len(rss) >= args.warmup else rss[0]
    tail = rss[args.warmup:]
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) * 100 if len(tail) > 2 else float("nan")
    when = datetime.datetime.now().isoformat(timespec="minutes")
    mode = f"fused batch={args.batch}" if args.batch else "one trial at a time"
    print(f"{when} {platform.node()} torch={torch.__version__} device={args.device} threads={args.threads} "
          f"{mode}: {len(rss)} trials {states}, load {os.getloadavg()[0]:.1f}")
    print(f"RSS MB: first {rss[0]:.1f}, after warm-up ({args.warmup}) {warm:.1f}, end {rss[-1]:.1f}, "
          f"max {max(rss):.1f}, median after warm-up {statistics.median(tail):.1f}")
    print(f"RSS drift after warm-up: {rss[-1] - warm:+.1f} MB (max {max(tail) - warm:+.1f}); "
          f"trend {slope:+.2f} MB per 100 trials")
    if cuda:
        warm_alloc = alloc[args.warmup - 1] if len(alloc) >= args.warmup else alloc[0]
        torch._C._cuda_clearCublasWorkspaces()
        cleared = torch.cuda.memory_allocated() / 2**20
        print(f"CUDA allocated MB: before the search {base_alloc:.1f}, after warm-up {warm_alloc:.1f} (cuBLAS "
              f"workspaces, allocated once per process), max after a trial {max(alloc):.1f}, end "
              f"{alloc[-1]:.1f}; back to the post-warm-up baseline: {abs(alloc[-1] - warm_alloc) < 1.0}; "
              f"after clearing cuBLAS workspaces {cleared:.1f} (back to before the search: "
              f"{abs(cleared - base_alloc) < 1.0})")
    else:
        print("CUDA: not measured (no GPU on this machine)")
    print("rss_mb=" + ",".join(f"{v:.1f}" for v in rss))


if __name__ == "__main__":
    main()
