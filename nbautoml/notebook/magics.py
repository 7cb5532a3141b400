"""``%load_ext nbautoml``, the ``%%automl`` cell magic and the ``%automl`` line commands.

What the magic does with the user's namespace (the exact rules live in :mod:`nbautoml.spec`):

- each trial runs the cell in a fresh shallow copy of the namespace as it was when the search started: it reads
  the user's data and imports, its assignments stay in the trial; the namespace itself is never rebound;
- after a search (at once with ``--background``) ``study`` is the Study; when the study's best trial ran in
  this kernel, ``study_best`` holds the variables that trial assigned (``study_best.model``), else None;
- ``%automl fit`` sets ``study`` and ``fit_result`` (the :class:`~nbautoml.torch.automl.AutoMLResult`,
  also returned).

A study is named by ``--name`` or, by default, from the cell's code with the hp.* arguments left out: re-running
the cell continues the same study (``--trials`` stays the study's total), an edited range becomes a new space
version, ``--fresh`` starts over. ``%automl resume NAME`` re-runs the last search of NAME in this kernel (after
a kernel restart, re-run the cell instead: the journal continues it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser

from nbautoml import cli
from nbautoml.engine.study import Study, StudyState, get_frontend, set_frontend
from nbautoml.events import StudyFinished
from nbautoml.spec import CellObjective, SpecError, hp, parse_cell

__all__ = ["REGISTRY", "AutoMLMagics", "load_ipython_extension", "notebook_frontend",
           "unload_ipython_extension"]

log = logging.getLogger(__name__)
_ACTIVE = (StudyState.RUNNING, StudyState.STOPPING)


@dataclass
class Entry:
    """What this kernel knows of a study it ran: enough to resume it."""

    study: Study
    objective: CellObjective | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the last optimize() keywords
    result: Any = None  # an AutoMLResult for `%automl fit`
    refit: Callable[..., Any] | None = None  # re-calls fit() for `resume`


REGISTRY: dict[str, Entry] = {}  # per kernel: name → Entry; the last one run is last


# ---- parsers (IPython's magic_arguments: errors are UsageErrors naming the flag) -------------------------
def _parser(prog: str, description: str) -> MagicArgumentParser:
    """IPython's help formatter adds one "%" to ``prog``."""
    return MagicArgumentParser(prog=prog, description=description, add_help=False)


CELL = _parser("%automl", "Search the hyperparameters the cell declares with hp.float / hp.int / hp.choice.")
cli.add_flags(CELL, cli.SEARCH_FLAGS)
LINE: dict[str, MagicArgumentParser] = {}
LINE["fit"] = _parser("automl fit", "nbautoml.fit on a DataFrame (or any expression: (X, y), df[cols]).")
LINE["fit"].add_argument("data", metavar="DATA")
cli.add_flags(LINE["fit"], cli.FIT_FLAGS)
for _command, _about in (("status", "a study's state and leaderboard (all studies without NAME)"),
                         ("stop", "stop a running search (all of this kernel's without NAME)"),
                         ("best", "the best trial of NAME (default: the last study run) as a dict")):
    LINE[_command] = _parser(f"automl {_command}", _about)
    LINE[_command].add_argument("name", nargs="?", metavar="NAME")
LINE["resume"] = _parser("automl resume", "continue this kernel's last search of NAME")
LINE["resume"].add_argument("name", metavar="NAME")
cli.add_flags(LINE["resume"], {k: cli.SEARCH_FLAGS[k] for k in ("trials", "timeout", "background")})
LINE["list"] = _parser("automl list", "the studies of this kernel and of ./.nbautoml")
LINE["export"] = _parser("automl export", "trials (.csv, .json), journal (.jsonl), report (.html) or, for a "
                                            "fit study, the model (any other path)")
LINE["export"].add_argument("name", metavar="NAME")
LINE["export"].add_argument("path", metavar="PATH")
LINE["compress"] = _parser("automl compress", "quantized / pruned / distilled models of a fit study, measured "
                                                "next to its best model and ensemble (result.compress)")
LINE["compress"].add_argument("name", metavar="NAME")
LINE["compress"].add_argument("--methods", default="quantize,prune,distill",
                              help="comma-separated steps or chains such as prune+quantize")

HELP = "\n\n".join([
    "%%automl [flags] — search the cell's hp.* hyperparameters; %automl COMMAND — manage studies.",
    (__doc__ or "").split("\n\n", 1)[1],
    CELL.format_help(),
    *(parser.format_help() for parser in LINE.values()),
])


def _parse(parser: MagicArgumentParser, line: str) -> argparse.Namespace:
    """Flags split as a POSIX shell would (``--name "a b"`` is ``a b``, quotes gone); an empty name is refused."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError as error:  # an unclosed quote
        raise UsageError(f"{parser.prog}: {error} in {line!r}") from None
    args = parser.parse_args(words)
    if getattr(args, "name", None) is not None and not args.name.strip():
        raise UsageError(f"{parser.prog}: --name needs a non-empty name")
    return args


def _need(study_name: str | None) -> Entry:
    if study_name is None:
        if not REGISTRY:
            raise UsageError("no study has run in this kernel yet; name one")
        return REGISTRY[list(REGISTRY)[-1]]
    entry = REGISTRY.get(study_name)
    if entry is None:
        raise UsageError(_unknown(study_name))
    return entry


def _unknown(name: str) -> str:
    from nbautoml.engine.storage import default_journal_path

    if default_journal_path(name).exists():
        return (f"study {name!r} has not run in this kernel (restarted?): re-run its cell — the same cell "
                f"continues the same study from its journal")
    known = ", ".join(REGISTRY) or "none"
    return f"no study named {name!r} (this kernel's: {known}; `%automl list` shows the saved ones)"


@magics_class
class AutoMLMagics(Magics):
    @line_cell_magic
    def automl(self, line: str, cell: str | None = None) -> Any:
        if cell is None:
            return self._line(line)
        self._cell(line, cell)
        return None

    automl.__doc__ = HELP

    # ---- %%automl ---------------------------------------------------------------------------------------
    def _cell(self, line: str, cell: str) -> None:
        args = _parse(CELL, line)
        shell = self.shell
        assert shell is not None
        code = shell.transform_cell(cell)
        try:
            spec = parse_cell(code, filename="cell", line_offset=1)
        except SpecError as error:
            raise UsageError(str(error)) from None
        name = args.name or spec.default_name
        previous = REGISTRY.get(name)
        if previous is not None and previous.study.state in _ACTIVE:
            raise UsageError(f"study {name!r} is still running: `%automl stop {name}` first, or wait for it")
        study_options, run_options = cli.search_options(args)
        try:
            if previous is not None and args.storage == ":memory:" and not args.fresh:
                study = previous.study  # nothing on disk to reopen: continue the object itself
                study.set_space(spec.space)
            else:
                study = cli.open_cell_study(spec, name, study_options)
            objective = CellObjective(spec, shell.user_ns, compile_name=self._cache(line, cell),
                                      hidden=shell.user_ns_hidden)
        except (SpecError, ValueError) as error:
            raise UsageError(str(error)) from None
        if previous is not None and previous.objective is not None and not args.fresh:
            old = previous.objective
            objective.best_number, objective.best_value = old.best_number, old.best_value
            objective.best_namespace = old.best_namespace
        if study.space_note:  # an edited hp.* range: say what changed and what history is reused
            print(f"{study.name}: {study.space_note}")
            study.space_note = ""
        REGISTRY.pop(name, None)
        REGISTRY[name] = entry = Entry(study, objective, run_options)
        self._run(entry, background=args.background)

    def _cache(self, line: str, cell: str) -> str | None:
        """A linecache name for the cell, so tracebacks of failed trials show its lines."""
        try:
            shell = self.shell
            assert shell is not None
            return str(shell.compile.cache(f"%%automl {line}\n{cell}", shell.execution_count))
        except Exception:
            return None

    def _run(self, entry: Entry, *, background: bool, show: bool = True) -> None:
        study, shell = entry.study, self.shell
        assert shell is not None and entry.objective is not None
        shell.user_ns["study"] = study
        first = max((t.number for t in study.trials), default=-1) + 1
        if background:
            unsubscribe: Callable[[], None] = lambda: None  # noqa: E731

            def finished(event: Any) -> None:
                unsubscribe()
                self._publish(entry)

            unsubscribe = study.events.subscribe(finished, StudyFinished)
        try:
            study.optimize(entry.objective, background=background, show=show, **entry.options)
        except ValueError as error:
            raise UsageError(str(error)) from None
        self._hook_panel(entry)
        if not background:
            self._publish(entry)
            self._summary(study, first)
            ran = [t for t in study.trials if t.number >= first and t.state.finished]
            if ran and all(t.state.value == "FAILED" for t in ran):
                # every trial failed: something in the cell is broken, so "Run All" / papermill must stop here
                raise RuntimeError(f"all {len(ran)} trials of {study.name!r} failed; last: {ran[-1].reason}")

    def _hook_panel(self, entry: Entry) -> None:
        """The panel's Resume button continues through this magic (fresh namespace snapshot, study_best)."""
        panel = entry.study.frontend
        if entry.objective is None or not hasattr(panel, "resume_callback"):
            return  # a fit study re-opens its Study on each call: the panel's own Resume path applies

        def resume(trials: int | None) -> None:
            shell = self.shell
            assert shell is not None and entry.objective is not None
            entry.objective = entry.objective.with_namespace(shell.user_ns)
            entry.options["trials"] = trials
            self._run(entry, background=True, show=False)

        panel.resume_callback = resume

    def _publish(self, entry: Entry) -> None:
        shell, objective = self.shell, entry.objective
        best = None if entry.study.objectives.multi else entry.study.best_trial  # several objectives: no one best
        assert shell is not None
        here = objective is not None and best is not None and objective.best_number == best.number
        shell.user_ns["study_best"] = (types.SimpleNamespace(**objective.best_namespace or {})
                                       if here and objective is not None else None)

    @staticmethod
    def _summary(study: Study, first: int) -> None:
        print(f"{study.name}: {study.message}")
        best = study.best_summary(with_params=True)
        if best is not None:
            print(best)
        ran = [t for t in study.trials if t.number >= first and t.state.finished]
        failed = [t for t in ran if t.state.value == "FAILED"]
        if failed:
            print(f"{len(failed)} of {len(ran)} trials failed; last: trial {failed[-1].number}: {failed[-1].reason}")
            if len(failed) == len(ran) and failed[-1].traceback:
                print(failed[-1].traceback, file=sys.stderr)

    # ---- %automl COMMAND ------------------------------------------------------------------------------
    def _line(self, line: str) -> Any:
        command, _, rest = line.strip().partition(" ")
        parser = LINE.get(command)
        if parser is None:
            known = ", ".join(LINE)
            raise UsageError(f"unknown command {command!r}: %automl takes {known} (see %automl?)"
                             if command else f"%automl needs a command: {known} (see %automl?)")
        args = _parse(parser, rest)
        return getattr(self, f"_do_{command}")(args)

    def _do_fit(self, args: argparse.Namespace) -> Any:
        import nbautoml

        shell = self.shell
        assert shell is not None
        try:
            data = shell.ev(args.data)
        except Exception as error:
            raise UsageError(f"fit: cannot evaluate DATA {args.data!r}: {type(error).__name__}: {error}") from None
        options = cli.fit_options(args)

        def refit(trials: int, timeout: float | None, background: bool) -> Any:
            return nbautoml.fit(data, **{**options, "timeout": timeout}, trials=trials, background=background)

        try:
            result = refit(args.trials, args.timeout, args.background)
        except (ValueError, KeyError) as error:
            raise UsageError(f"fit: {error}") from None
        study = result.study
        REGISTRY.pop(study.name, None)
        REGISTRY[study.name] = Entry(study, result=result, refit=refit,
                                     options=dict(trials=args.trials, timeout=args.timeout))
        shell.user_ns.update(study=study, fit_result=result)
        return result

    def _do_resume(self, args: argparse.Namespace) -> Any:
        entry, shell = _need(args.name), self.shell
        assert shell is not None
        if entry.study.state in _ACTIVE:
            raise UsageError(f"study {args.name!r} is running already")
        trials = args.trials if args.trials is not None else entry.options.get("trials")
        timeout = args.timeout if args.timeout is not None else entry.options.get("timeout")
        entry.options.update(trials=trials, timeout=timeout)
        if entry.refit is not None:  # fit re-opens the study from its journal and continues it
            entry.result = entry.refit(trials, timeout, args.background)
            entry.study = entry.result.study
            shell.user_ns.update(study=entry.study, fit_result=entry.result)
            return entry.result
        assert entry.objective is not None
        entry.objective = entry.objective.with_namespace(shell.user_ns)
        self._run(entry, background=args.background)
        return None

    def _do_status(self, args: argparse.Namespace) -> None:
        if args.name is None:
            self._do_list(args)
            return
        study = self._study(args.name)
        print(cli.describe(study))
        print(cli.leaderboard(study))

    def _do_list(self, args: argparse.Namespace) -> None:
        lines = []
        for name, entry in REGISTRY.items():
            study = entry.study
            summary = study.best_summary()
            best = "" if summary is None else f" {summary}"
            lines.append(f"{name}: {study.state} · {study.n_finished} finished{best} (this kernel)")
        print("\n".join(lines + cli.saved_studies(skip=list(REGISTRY))) or "no studies yet")

    def _do_stop(self, args: argparse.Namespace) -> None:
        targets = [_need(args.name)] if args.name else [e for e in REGISTRY.values() if e.study.state in _ACTIVE]
        if not targets:
            print("nothing is running")
        for entry in targets:
            entry.study.stop(source="magic")
            print(f"{entry.study.name}: {entry.study.state}")

    def _do_best(self, args: argparse.Namespace) -> dict[str, Any] | None:
        study = self._study(args.name) if args.name else _need(None).study
        if study.objectives.multi:  # several objectives: the Pareto front, each with its values
            return {"front": [{"number": t.number, "values": dict(t.values or {}), "params": dict(t.params)}
                              for t in study.best_trials]}
        best = study.best_trial
        if best is None:
            print(f"{study.name}: no complete trial yet")
            return None
        return {"number": best.number, "value": best.value, "params": dict(best.params)}

    def _do_export(self, args: argparse.Namespace) -> None:
        entry = REGISTRY.get(args.name)
        try:
            if entry is not None and entry.result is not None and not args.path.lower().endswith(
                    (".csv", ".json", ".jsonl", ".html", ".htm")):
                print(f"model: {entry.result.export(args.path)}")
            else:
                print(cli.export_study(self._study(args.name), args.path))
        except (ValueError, OSError) as error:
            raise UsageError(f"export: {error}") from None

    def _do_compress(self, args: argparse.Namespace) -> Any:
        entry = _need(args.name)
        if entry.result is None:
            raise UsageError(f"compress: {args.name!r} is not a `%automl fit` study (it has no models)")
        try:
            report = entry.result.compress([m for m in args.methods.split(",") if m.strip()])
        except (ValueError, RuntimeError) as error:
            raise UsageError(f"compress: {error}") from None
        assert self.shell is not None
        self.shell.user_ns["compress_report"] = report
        return report

    @staticmethod
    def _study(name: str) -> Study:
        entry = REGISTRY.get(name)
        if entry is not None:
            return entry.study
        from nbautoml import load_study

        try:
            return load_study(name)
        except FileNotFoundError:
            raise UsageError(_unknown(name)) from None


# ---- the front end ---------------------------------------------------------------------------------------
def notebook_frontend(study: Study, background: bool) -> Any:
    """The live panel (nbautoml.notebook.panel); the console bar when the panel cannot load."""
    try:
        from nbautoml.notebook.panel import notebook_frontend as panel
    except ImportError as error:
        log.warning("nbautoml: the notebook panel is unavailable (%s); showing a text progress bar", error)
        from nbautoml.console import ConsoleProgress

        return ConsoleProgress(study, file=sys.stdout)
    return panel(study, background)


_previous: list[Any] = []


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbautoml``: ``hp`` and ``nbautoml`` in the namespace, the magics, the panel, Study display."""
    import nbautoml

    ipython.push({"hp": hp, "nbautoml": nbautoml})
    ipython.register_magics(AutoMLMagics)
    if get_frontend() is not notebook_frontend:
        _previous.append(set_frontend(notebook_frontend))
    try:
        from nbautoml.notebook.panel import register_display
    except ImportError as error:
        log.warning("nbautoml: no rich display for Study (%s)", error)
    else:
        register_display(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    if _previous and get_frontend() is notebook_frontend:
        set_frontend(_previous.pop())
