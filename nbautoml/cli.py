"""``python -m nbautoml`` / ``nbautoml``: headless runs of the same searches a notebook runs.

Commands: ``run SPEC.py`` (a file written like a ``%%automl`` cell), ``fit DATA.csv --target COL``, ``list``,
``status NAME``, ``export NAME PATH`` and ``demo``. No IPython is imported here; the magic imports the flag
table and the helpers below so both surfaces take the same flags with the same meaning.

A spec file may hold setup code and the cell in one file: everything above a line ``# %%automl [flags]`` runs
once (load data there), the code below it is the cell each trial runs (in a copy of the setup's namespace, as
in a notebook). Without that line the whole file is the cell. Flags on the marker line are the file's
defaults; flags on the command line win. The study is named after the file (``digits.py`` → ``digits``)
unless ``--name`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nbautoml.engine import direction
from nbautoml.engine.registry import sampler_names, scheduler_names

__all__ = ["SEARCH_FLAGS", "add_flags", "leaderboard", "main", "open_cell_study", "parse_duration",
           "search_options"]

DEFAULT_TRIALS = 20  # when neither --trials nor --timeout is given: a search always ends on its own
class DurationError(argparse.ArgumentTypeError, ValueError):
    """A bad --timeout (argparse shows the message as is)."""


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "10m", "1.5h" or "1h30m" (:func:`nbautoml.engine.durations.seconds`)."""
    from nbautoml.engine.durations import seconds

    try:
        return seconds(str(text))
    except ValueError as error:
        raise DurationError(str(error)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


class Registered:
    """argparse ``choices`` read from the registry at parse time, so an algorithm registered after the parser
    was made (in the notebook, after ``%load_ext``) is a choice too."""

    def __init__(self, names: Callable[[], tuple[str, ...]], *extra: str) -> None:
        self._names, self._extra = names, extra

    def __contains__(self, name: object) -> bool:
        return name in tuple(self)

    def __iter__(self) -> Iterator[str]:
        return iter((*self._names(), *self._extra))


def _family_names() -> tuple[str, ...]:
    """The registered model families (imports the torch layer: only when ``--model`` is given or helped)."""
    from nbautoml.torch.families import family_names

    return tuple(family_names())


# One table for the magic and the CLI: (flags, argparse keywords).
Flag = tuple[tuple[str, ...], dict[str, Any]]
SEARCH_FLAGS: dict[str, Flag] = {
    "name": (("--name",), dict(metavar="NAME", help="study name (default: from the cell's code, hp.* arguments "
                                                    "left out; a spec file's name)")),
    "trials": (("--trials",), dict(type=_positive_int, metavar="N",
                                   help=f"total finished trials of the study (default {DEFAULT_TRIALS} "
                                        "unless --timeout is given)")),
    "timeout": (("--timeout",), dict(type=parse_duration, metavar="T",
                                     help="stop starting trials after T (90, 90s, 10m, 1h)")),
    "metric": (("--metric",), dict(metavar="NAME", help="the metric to optimise (default val_loss)")),
    "mode": (("--mode",), dict(choices=direction.MODES,
                               help="min or max (default: max for names with acc/auc/r2/f1, else min)")),
    "sampler": (("--sampler",), dict(choices=Registered(sampler_names),
                                     help="search algorithm (default bayes)")),
    "scheduler": (("--scheduler",), dict(choices=Registered(scheduler_names, "none"),
                                         help="early stopping of weak trials (default asha; none turns it off)")),
    "parallel": (("--parallel",), dict(type=_positive_int, default=1, metavar="N",
                                       help="trials running at once (default 1)")),
    "runner": (("--runner",), dict(choices=("thread", "dask"), default="thread",
                                   help="thread (in this process) or dask (a LocalCluster on 127.0.0.1)")),
    "cluster": (("--cluster",), dict(metavar="ADDRESS",
                                     help="run on an existing Dask scheduler (tcp://host:port); implies dask")),
    "background": (("--background",), dict(action="store_true",
                                           help="return at once; the search goes on (notebook only)")),
    "fresh": (("--fresh",), dict(action="store_true", help="start the study over (the old journal is kept aside)")),
    "seed": (("--seed",), dict(type=_int, metavar="N", help="random seed of the sampler")),
    "storage": (("--storage",), dict(metavar="PATH", default="auto",
                                     help='journal path, ":memory:", or auto (.nbautoml/<name>.jsonl)')),
}
FIT_FLAGS: dict[str, Flag] = {
    **{key: SEARCH_FLAGS[key] for key in ("timeout", "sampler", "parallel", "background", "seed", "storage")},
    "name": (("--name",), dict(metavar="NAME", help="study name (default: from the task and the data's columns)")),
    "target": (("--target",), dict(required=True, metavar="COL", help="the column to predict")),
    "trials": (("--trials",), dict(type=_positive_int, default=40, metavar="N", help="total trials (default 40)")),
    "metric": (("--metric",), dict(metavar="NAME", help="val_loss (default), val_acc, val_r2 or val_mae")),
    "task": (("--task",), dict(default="auto", help="auto, classification, binary, multiclass or regression")),
    "cv": (("--cv",), dict(type=_positive_int, metavar="K", help="k-fold cross-validation instead of a holdout")),
    "model": (("--model",), dict(choices=Registered(_family_names, "auto"), default="auto", metavar="FAMILY",
                                 help="auto (from the data's layout) or a registered model family")),
    "epochs": (("--epochs",), dict(type=_positive_int, metavar="N", help="most epochs a trial trains")),
    "fused": (("--fused",), dict(choices=("auto", "on", "off"), default="auto",
                                 help="train trials that share an architecture as one fused model: auto (where "
                                      "it pays), on, off")),
    "group_size": (("--group-size",), dict(type=_positive_int, metavar="K",
                                           help="trials per fused group (default: from the budget and device)")),
}


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """nbautoml.fit keywords from parsed FIT_FLAGS (all but the data, ``trials`` and ``background``)."""
    return dict(target=args.target, task=args.task, timeout=args.timeout, metric=args.metric, cv=args.cv,
                model=args.model, name=args.name, storage=args.storage, parallel=args.parallel, epochs=args.epochs,
                seed=args.seed if args.seed is not None else 0, sampler=args.sampler or "bayes",
                fused={"on": True, "off": False}.get(args.fused, "auto"), group_size=args.group_size)


def add_flags(parser: argparse.ArgumentParser, flags: dict[str, Flag], skip: Sequence[str] = ()) -> None:
    for key, (names, options) in flags.items():
        if key not in skip:
            parser.add_argument(*names, **options)


def search_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Study keywords, optimize keywords) from parsed search flags."""
    scheduler = "asha" if args.scheduler is None else None if args.scheduler == "none" else args.scheduler
    study = dict(metric=args.metric or "val_loss", mode=args.mode, sampler=args.sampler, scheduler=scheduler,
                 storage=args.storage, seed=args.seed, fresh=args.fresh)
    trials = args.trials if args.trials is not None or args.timeout is not None else DEFAULT_TRIALS
    runner: Any = args.runner
    if getattr(args, "cluster", None):  # an address the dask runner connects to
        runner = args.cluster if "://" in args.cluster else f"tcp://{args.cluster}"
    run = dict(trials=trials, timeout=args.timeout, parallel=args.parallel, runner=runner)
    return study, run


def open_cell_study(spec: Any, name: str, study_options: dict[str, Any]) -> Any:
    """The study a parsed cell searches; SpecError when the code declares nothing to search."""
    from nbautoml.engine.study import Study
    from nbautoml.spec import SpecError

    if not spec.declarations:
        raise SpecError("no hp.float / hp.int / hp.choice in the code: nothing to search", filename=spec.filename)
    return Study(name, spec.space, **study_options)


def leaderboard(study: Any, top: int = 10) -> str:
    """The best ``top`` trials as text (value, state, params)."""
    by_value = direction.ranked(study.trials, study.mode, lambda t: t.value)  # pruned ones have values too
    ranked = sorted(by_value, key=lambda t: t.state.value != "COMPLETE")[:top]
    if not ranked:
        return "(no trial with a value yet)"
    names = list(ranked[0].params)
    rows = [["#", study.metric, "state", *names]]
    for t in ranked:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in (t.params.get(n) for n in names)]
        rows.append([str(t.number), f"{t.value:.6g}", t.state.value, *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def describe(study: Any) -> str:
    """A few lines: counts by state, best value and params, where the journal is."""
    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.value] = counts.get(t.state.value, 0) + 1
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no trials"
    lines = [f"study {study.name!r}: {study.state} · {study.n_finished} finished ({states}) · "
             f"{study.metric} ({study.mode}) · space v{study.space_version}"]
    best = study.best_summary(with_params=True)
    if best is not None:
        lines.append(best)
    if study.message:
        lines.append(study.message)
    where = getattr(study.storage, "location", None)
    if where:
        lines.append(f"journal: {where}")
    return "\n".join(lines)


def export_study(study: Any, path: str | os.PathLike[str]) -> Path:
    """Trials as .csv or .json, the journal as .jsonl, or the plots as a standalone .html report."""
    target = Path(path)
    suffix = target.suffix.lower()
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        study.trials_dataframe().to_csv(target, index=False)
    elif suffix == ".json":
        rows = [{"number": t.number, "state": t.state.value, "value": t.value, "reason": t.reason,
                 "params": t.params, "metrics": t.metrics, "duration": t.duration} for t in study.trials]
        target.write_text(json.dumps({"name": study.name, "metric": study.metric, "mode": study.mode,
                                      "trials": rows}, indent=1, default=str))
    elif suffix == ".jsonl" and getattr(study.storage, "path", None):
        shutil.copyfile(study.storage.path, target)
    elif suffix in (".html", ".htm"):
        from nbautoml.notebook.plots import save_report

        save_report(study, target)
    else:
        raise ValueError(f"cannot export a study to {target.name!r}: use .csv, .json, .jsonl or .html")
    return target


# ---- spec files ----------------------------------------------------------------------------------------
_MARKER = re.compile(r"^\s*(?:#\s*)?%%automl\b(.*)$")


def split_spec(text: str) -> tuple[str, str, int, str]:
    """(setup code, cell code, the cell's line offset in the file, the marker line's flags)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _MARKER.match(line)
        if match:
            return "\n".join(lines[:index]), "\n".join(lines[index + 1:]), index + 1, match.group(1).strip()
    return "", text, 0, ""


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    import shlex

    path = Path(args.spec)
    setup, cell, offset, marker = split_spec(path.read_text(encoding="utf-8"))
    if marker:  # the file's flags are defaults; the command line wins
        rest = list(argv[list(argv).index("run") + 1:])
        args = parser.parse_args(["run", *shlex.split(marker), *rest])
    sys.path.insert(0, str(path.parent.absolute()))
    return run_spec(setup, cell, str(path), offset, args.name or path.stem, args)


def run_spec(setup: str, cell: str, filename: str, offset: int, name: str, args: argparse.Namespace) -> int:
    """Run ``setup`` once, then search ``cell`` (the CLI's ``run`` and ``demo``)."""
    import nbautoml
    from nbautoml.spec import CellObjective, hp, parse_cell

    spec = parse_cell(cell, filename=filename, line_offset=offset)
    study_options, run_options = search_options(args)
    study = open_cell_study(spec, name, study_options)
    namespace: dict[str, Any] = {"__name__": "__nbautoml_spec__", "__file__": filename, "hp": hp,
                                 "nbautoml": nbautoml}
    if setup.strip():
        exec(compile(setup, filename, "exec"), namespace)
    study.optimize(CellObjective(spec, namespace), **run_options)
    return _report(study, args)


def _report(study: Any, args: argparse.Namespace) -> int:
    print(leaderboard(study))
    print(describe(study))
    report = getattr(args, "report", None)
    if report:
        print(f"report: {export_study(study, report)}")
    return 0 if study.best_trials else 1


def _fit(args: argparse.Namespace) -> int:
    import pandas as pd

    import nbautoml

    frame = pd.read_csv(args.data)
    result = nbautoml.fit(frame, trials=args.trials, **fit_options(args))
    print(result.leaderboard.head(10).to_string(index=False))
    print(describe(result.study))
    if args.export:
        print(f"model: {result.export(args.export)}")
    return 0


def saved_studies(skip: Sequence[str] = ()) -> list[str]:
    """One line per journal in ./.nbautoml (except the names in ``skip``)."""
    from nbautoml import load_study
    from nbautoml.engine.storage import STATE_DIR, study_name_of

    lines = []
    for journal in sorted(Path(STATE_DIR).glob("*.jsonl")):
        if study_name_of(journal) in skip:
            continue
        try:
            study = load_study(journal)
        except (ValueError, OSError) as error:
            lines.append(f"{study_name_of(journal)}: unreadable ({error})")
            continue
        summary = study.best_summary()
        best = "" if summary is None else f" {summary}"
        lines.append(f"{study.name}: {study.n_finished} finished{best} ({study.mode}) · "
                     f"space v{study.space_version}")
    return lines


def _list(args: argparse.Namespace) -> int:
    from nbautoml.engine.storage import STATE_DIR

    print("\n".join(saved_studies()) or f"no studies in ./{STATE_DIR}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from nbautoml import load_study

    study = load_study(args.name)
    print(describe(study))
    print(leaderboard(study, top=args.top))
    return 0


def _export(args: argparse.Namespace) -> int:
    from nbautoml import load_study

    print(export_study(load_study(args.name), args.path))
    return 0


DEMO_SETUP = """\
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")"""
DEMO_CELL = """\
model = nbautoml.torch.mlp(64, 10, layers=hp.int("layers", 1, 2), units=hp.choice("units", [128, 256, 512]),
                           dropout=hp.float("dropout", 0.0, 0.4))
nbautoml.torch.train(model, (X, y), lr=hp.float("lr", 3e-4, 3e-2, log=True), epochs=20, schedule="cosine",
                     seed=0)"""
# ASHA's rung at epoch 7 of 20. With the current GP: best val_acc 0.9805 in 28 s wall (47 s CPU) on 2 quiet cores;
# 20 trials gave 0.9749 (BENCHMARKS.md).
DEMO_TRIALS = 30


def _demo(args: argparse.Namespace) -> int:
    """A real search on embedded defaults: sklearn's digits, a torch MLP, ASHA, Bayesian optimisation."""
    print("nbautoml demo: searching this cell on sklearn's digits (1797 8x8 images, 10 classes)\n")
    print("\n".join(f"    {line}" for line in DEMO_CELL.splitlines()), "\n")
    options = argparse.Namespace(metric="val_acc", mode=None, sampler="bayes", scheduler="asha",
                                 storage=args.storage, seed=0, fresh=True, trials=args.trials, timeout=None,
                                 parallel=1, runner="thread", cluster=None, report=args.report)
    return run_spec(DEMO_SETUP, DEMO_CELL, "<demo>", 0, "demo-digits", options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbautoml", description="Headless nbautoml searches: spec files, CSV fits, saved studies, a demo.",
        epilog="A spec file is written like a %%automl cell; code above a line '# %%automl [flags]' runs "
               "once (setup), the code below it is what each trial runs. Studies live in ./.nbautoml/.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="search a spec file written like a %%%%automl cell")
    run.add_argument("spec", metavar="SPEC.py")
    add_flags(run, SEARCH_FLAGS, skip=("background",))
    run.add_argument("--report", metavar="PATH.html", help="write the plots to a standalone HTML report")
    fit = sub.add_parser("fit", help="automated search on a CSV file (nbautoml.fit)")
    fit.add_argument("data", metavar="DATA.csv")
    add_flags(fit, FIT_FLAGS, skip=("background",))
    fit.add_argument("--export", metavar="PATH", help="save the best model/ensemble there")
    sub.add_parser("list", help="the studies in ./.nbautoml")
    status = sub.add_parser("status", help="one study's state, best trial and leaderboard")
    status.add_argument("name")
    status.add_argument("--top", type=_positive_int, default=10)
    export = sub.add_parser("export", help="a study's trials (.csv, .json), journal (.jsonl) or report (.html)")
    export.add_argument("name")
    export.add_argument("path")
    demo = sub.add_parser("demo", help="a real search on sklearn's digits with a torch MLP")
    demo.add_argument("--trials", type=_positive_int, default=DEMO_TRIALS)
    demo.add_argument("--report", default="nbautoml-demo.html", metavar="PATH.html")
    demo.add_argument("--storage", default="auto")
    return parser


COMMANDS: dict[str, Callable[..., int]] = {"fit": _fit, "list": _list, "status": _status, "export": _export,
                                           "demo": _demo}


def main(argv: Sequence[str] | None = None) -> int:
    from nbautoml.spec import SpecError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args, parser, argv)
        return COMMANDS[args.command](args)
    except (SpecError, FileNotFoundError, ValueError) as error:
        print(f"nbautoml {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nbautoml {args.command}: interrupted", file=sys.stderr)
        return 130
