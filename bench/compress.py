"""``result.compress``: size, CPU latency and accuracy of quantized / pruned / distilled models (issue 16).
Not a test.

    python bench/compress.py                       # digits MLP and CNN, results to bench/results/compress.md
    python bench/compress.py --trials 8 --out -    # quicker, print only

Each model family: digits split 70/30 (stratified, seed 0); ``fit`` searches on the 70% (its own 20% holdout
picks the best trial and the ensemble), then ``result.compress`` makes every method's model and scores all of
them on the untouched 30%. Latency is the network's CPU time per row (one torch thread, median of interleaved
rounds: see nbautoml.torch.compress.report), batch 1 and 256. The goal checked: some model >= 4x smaller and
>= 2x faster at batch 1 than the uncompressed best, within 0.5 points of its accuracy; the distilled student
within 0.3 points of the ensemble.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("NBAUTOML_QUIET", "1")
RESULTS = Path(__file__).with_name("results") / "compress.md"
METHODS = ["quantize", "prune", "prune+quantize", "distill", "distill+prune", "distill+prune+quantize"]


def digits(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    if kind == "cnn2d":
        x = x.reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    return x_tr, y_tr, x_te, y_te


def goal(table: Any) -> list[str]:
    """The issue's two checks, read off one report's table."""
    rows = table.set_index("model")
    best, ensemble = rows.loc["best"], rows.loc["ensemble"]
    lines = []
    hits = [name for name, r in rows.iterrows() if name not in ("best", "ensemble")
            and r["size_ratio"] >= 4 and r["speedup_1"] >= 2 and r["score"] >= best["score"] - 0.005]
    lines.append(f"- >= 4x smaller, >= 2x faster at batch 1, within 0.5 points of best: "
                 f"{', '.join(hits) if hits else 'none'}")
    if "distill" in rows.index:
        gap = (rows.loc["distill"]["score"] - ensemble["score"]) * 100
        lines.append(f"- distilled student vs ensemble: {gap:+.2f} points "
                     f"({'within' if gap >= -0.3 else 'NOT within'} 0.3 of it)")
    return lines


def markdown(table: Any) -> str:
    """A pipe table (pandas' to_markdown needs the tabulate package, which the bench set does not install)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def run(kind: str, args: argparse.Namespace) -> tuple[str, Any]:
    import torch

    import nbautoml

    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te = digits(kind)
    start = time.perf_counter()
    result = nbautoml.fit(x_tr, target=y_tr, model=kind, trials=args.trials, ensemble=args.ensemble,
                          storage=":memory:", show=False, seed=0, metric="val_acc")
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    report = result.compress(METHODS, x=x_te, y=y_te, prune_amount=args.prune_amount,
                             finetune_epochs=args.finetune_epochs, distill_epochs=args.distill_epochs)
    compress_s = time.perf_counter() - start
    best = result.best_model.members[0].arch["params"]
    head = (f"### digits {kind}\n\nfit: {args.trials} trials in {fit_s:.0f} s; best architecture {best}; "
            f"ensemble of {len(result.ensemble)}; compress (all methods, measuring included) {compress_s:.0f} s; "
            f"scored on {len(y_te)} test rows.\n")
    table = report.table.copy()
    table["score"] = (table["score"] * 100).round(2)
    for col in ("latency_ms_1", "latency_ms_256"):
        table[col] = table[col].map(lambda v: f"{v:.4f}")
    for col in ("size_ratio", "speedup_1"):
        table[col] = table[col].map(lambda v: f"{v:.2f}")
    text = "\n".join([head, markdown(table), "", *goal(report.table), ""])
    return text, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="mlp,cnn2d")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--ensemble", type=int, default=5)
    parser.add_argument("--prune-amount", type=float, default=0.75)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--distill-epochs", type=int, default=30)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    import torch

    sections = [
        "# Compression: size, CPU latency, accuracy (bench/compress.py)\n",
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs (loaded: latencies are medians of interleaved rounds, "
        f"compare ratios within a table, not across runs); torch {torch.__version__}, one torch thread; "
        f"prune_amount {args.prune_amount}, finetune_epochs {args.finetune_epochs}, "
        f"distill_epochs {args.distill_epochs}.\n",
        "Columns: params = numbers stored; bytes = weight files as exported; latency_ms_B = ms per row at "
        "batch B (network only); score = test accuracy (%); size_ratio / speedup_1 = vs the uncompressed best.\n",
    ]
    for kind in args.kinds.split(","):
        text, _ = run(kind, args)
        print(text, flush=True)
        sections.append(text)
    if args.out != "-":
        Path(args.out).write_text("\n".join(sections))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
