"""``nbautoml.fit`` with fused groups vs one trial at a time: same data, budget and seed (issue 7). Not a test.

    python bench/fit_fused.py                                   # digits MLP + breast_cancer, CPU
    python bench/fit_fused.py --sets digits_cnn --trials 64     # on a GPU: CNN groups too
    python bench/fit_fused.py --out -                           # print only

Each set is cut into stratified outer splits (shuffled, seed 0); both fits see only the training part, use the
same trial budget, seed, epochs and sampler, and are scored on the held-out part. Reported per set: wall time of
each fit (and the ratio), trials per second, the mean test score, and how many distinct architectures each
tried (fused groups share one, so a budget explores fewer). Fused ``group_size`` is fit's default for the
device unless ``--group-size`` is given. Results go to bench/results/fit_fused.md (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("NBAUTOML_QUIET", "1")
sys.path.insert(0, str(Path(__file__).parent))
from automl_bar import load, splits

RESULTS = Path(__file__).with_name("results") / "fit_fused.md"


def one_fit(x: np.ndarray, y: np.ndarray, test: tuple[np.ndarray, np.ndarray], fused: bool,
            args: argparse.Namespace) -> dict[str, Any]:
    import nbautoml
    from nbautoml.torch.fused import structural

    began = time.perf_counter()
    result = nbautoml.fit(x, target=y, trials=args.trials, epochs=args.epochs, seed=0, storage=":memory:",
                          show=False, fused=fused, group_size=args.group_size)
    wall = time.perf_counter() - began
    space = result.study.space
    assert space is not None
    archs = {json.dumps([t.params.get(k) for k in structural(space.names)], default=str)
             for t in result.study.trials}
    states = [t.state.value for t in result.study.trials]
    return {"wall": wall, "score": float(result.score(*test)), "archs": len(archs),
            "pruned": states.count("PRUNED"), "trials": len(states), "best": result.study.best_value}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["digits_mlp", "breast_cancer"])
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--group-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    lines = ["# fit: fused groups vs one trial at a time", "",
             f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.platform()}; {device}; "
             f"torch {torch.__version__}; threads {args.threads}; load average at start "
             f"{os.getloadavg()[0]:.1f}",
             f"- Command: `python bench/fit_fused.py {' '.join(sys.argv[1:])}`; budget {args.trials} trials, "
             f"epochs {args.epochs or 'fit default'}, group size {args.group_size or 'fit default'}, "
             f"{args.splits} outer splits (mean over them)", "",
             "| set | mode | wall s/fit | trials/s | speed-up | test score | architectures tried | pruned |",
             "|---|---|---|---|---|---|---|---|"]
    for name in args.sets:
        x, y, task = load(name)
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for train_idx, test_idx in splits(y, task, args.splits):
            for fused in (False, True):  # alternate, so drifting load hits both sides alike
                got = one_fit(x[train_idx], y[train_idx], (x[test_idx], y[test_idx]), fused, args)
                runs[fused].append(got)
                print(name, "fused" if fused else "one-by-one", got, flush=True)
        eager_wall = statistics.mean(r["wall"] for r in runs[False])
        for fused in (False, True):
            rs = runs[fused]
            wall = statistics.mean(r["wall"] for r in rs)
            lines.append(
                f"| {name} | {'fused' if fused else 'one by one'} | {wall:.1f} | "
                f"{statistics.mean(r['trials'] for r in rs) / wall:.2f} | x{eager_wall / wall:.2f} | "
                f"{statistics.mean(r['score'] for r in rs):.4f} | {statistics.mean(r['archs'] for r in rs):.1f} | "
                f"{statistics.mean(r['pruned'] for r in rs):.1f} |")
            print(lines[-1], flush=True)
    lines.append(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")
    text = "\n".join(lines) + "\n"
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
