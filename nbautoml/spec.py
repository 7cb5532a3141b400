"""``hp`` and the reading of code that uses it: a ``%%automl`` cell or a spec file → a Space and an objective.

No IPython here: the CLI runs spec files with the same code as the magic.

Reading (before any trial runs): the code is parsed with :mod:`ast`; every ``hp.float(name, low, high,
log=False)``, ``hp.int(name, low, high, log=False)`` and ``hp.choice(name, options)`` call with literal
arguments becomes a dimension, so the sampler knows the whole space before the first trial. ``hp`` may also
be written ``nbautoml.hp`` or imported under another name in the same code. A non-literal argument, one name
declared twice with different specs, an invalid range or a syntax error raises :class:`SpecError`, which
quotes the line number and its source.

Running (semantics shared by ``%%automl`` and ``nbautoml run``):

- Each trial executes the cell in a *fresh shallow copy* of the namespace as it was when the search (or its
  resume) started: the user's data and imports are readable, assignments stay in the trial, so trials never
  see each other's variables and the user's own variables are never rebound. Objects are shared, not copied:
  an in-place change (``X.append``, ``tensor.mul_``) is visible outside — don't mutate shared data in a cell.
- The trial's namespace also holds ``trial`` (the running :class:`~nbautoml.Trial`, for custom loops that call
  ``trial.report``) and ``hp``.
- The trial's value (docs/ARCHITECTURE.md "Trial value"): the cell's last expression when it is a number or a dict
  (dict-like results such as ``nbautoml.torch.train``'s ``TrainResult`` included), otherwise ``None``, which
  makes the engine take the best reported value of the study's metric.
- Of the trials run in this process, the variables that the best one assigned are kept
  (:attr:`CellObjective.best_namespace`); the magic exposes them as ``study_best``. Nothing else is written
  back. On Dask workers the namespace travels pickled (IPython's internals, studies and what cannot be
  pickled stay behind, with a warning), and no best namespace comes back.

Naming: :attr:`CellSpec.key` hashes the normalised AST (comments and layout ignored) with the hp.* arguments
left out, so editing a range continues the same study while another cell is another study
(``cell-<8 hex digits>``).

Outside a trial, ``hp.*`` returns a default so a cell can be debugged by running it plainly: the midpoint of a
range (the geometric midpoint when ``log=True``; rounded for ints) or the first option, with an
:class:`HPOutsideTrialWarning`. ``with hp.using(study.best_params): ...`` fixes the values instead (re-running
the best configuration by hand).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import math
import numbers
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from nbautoml.engine import direction
from nbautoml.engine.trial import Trial, current_trial, using_trial
from nbautoml.engine.values import result_outcome
from nbautoml.space import Choice, Dimension, Int, Real, Space

__all__ = [
    "HP",
    "CellObjective",
    "CellSpec",
    "Declaration",
    "HPOutsideTrialWarning",
    "SpecError",
    "UndeclaredParameter",
    "cell_value",
    "hp",
    "parse_cell",
]

KINDS = ("float", "int", "choice")
_SIGNATURES = {"float": ("name", "low", "high", "log"), "int": ("name", "low", "high", "log"),
               "choice": ("name", "options")}


class SpecError(ValueError):
    """Code that cannot become a search: the message names the line and quotes it."""

    def __init__(self, message: str, *, line: int | None = None, source: str | None = None,
                 filename: str = "cell") -> None:
        self.reason, self.line, self.source, self.filename = message, line, source, filename
        where = f"{filename} line {line}: " if line is not None else f"{filename}: "
        text = where + message
        if source:
            text += f"\n    {source.strip()}"
        super().__init__(text)


class UndeclaredParameter(LookupError):
    """``hp.*`` ran in a trial for a name the code read before the search did not declare."""


class HPOutsideTrialWarning(UserWarning):
    """``hp.*`` was called with no running trial; it returned a default value."""


# ---- hp: what cell code calls ---------------------------------------------------------------------------
_fixed: ContextVar[Mapping[str, Any] | None] = ContextVar("nbautoml_hp_fixed", default=None)


def _default(dim: Dimension) -> Any:
    if isinstance(dim, Choice):
        return dim.options[0]
    assert isinstance(dim, (Real, Int))
    low, high = float(dim.low), float(dim.high)
    middle = math.sqrt(low * high) if dim.log else (low + high) / 2
    return round(middle) if isinstance(dim, Int) else middle


class HP:
    """Declares a hyperparameter where it is used; returns the running trial's value for it."""

    def float(self, name: str, low: float, high: float, log: bool = False) -> float:
        """A float in [low, high]; ``log=True`` searches it on a log scale (learning rates, weight decay)."""
        return float(self._value(name, Real(low, high, log=log)))

    def int(self, name: str, low: int, high: int, log: bool = False) -> int:
        """An integer in [low, high], both inclusive."""
        return int(self._value(name, Int(low, high, log=log)))

    def choice(self, name: str, options: list[Any] | tuple[Any, ...]) -> Any:
        """One of ``options`` (JSON-serialisable: str, number, bool, None)."""
        return self._value(name, Choice(options))

    @contextlib.contextmanager
    def using(self, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Outside a trial, make ``hp.*`` return these values (e.g. ``study.best_params``)."""
        token = _fixed.set(dict(params))
        try:
            yield params
        finally:
            _fixed.reset(token)

    def _value(self, name: str, dim: Dimension) -> Any:
        dim.validate(name)
        trial = current_trial()
        if trial is not None:
            if name in trial.params:
                return trial.params[name]
            known = ", ".join(sorted(trial.params)) or "none"
            kind = "float" if dim.kind == "real" else dim.kind
            raise UndeclaredParameter(
                f"hp.{kind}({name!r}) is not in trial {trial.number}'s search space (its params: {known}). "
                f"hp.* calls must be written literally in the %%automl cell or spec file itself (not in a "
                f"function defined elsewhere) so the space is known before the first trial"
            )
        fixed = _fixed.get()
        if fixed is not None and name in fixed:
            return dim.normalise(fixed[name])
        value = _default(dim)
        warnings.warn(
            f"hp {name!r} called outside a trial: using the default {value!r} (run the cell under %%automl "
            f"to search it, or fix values with `with hp.using({{...}}):`)",
            HPOutsideTrialWarning,
            stacklevel=3,
        )
        return value

    def __repr__(self) -> str:
        return "nbautoml.hp (hp.float, hp.int, hp.choice)"


hp = HP()


# ---- reading code --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Declaration:
    name: str
    dim: Dimension
    line: int
    source: str


@dataclass
class CellSpec:
    """A parsed cell: its search space, where each parameter is declared, and the study key."""

    source: str
    filename: str
    tree: ast.Module
    line_offset: int
    declarations: dict[str, Declaration] = field(default_factory=dict)

    @property
    def space(self) -> Space:
        return Space({name: decl.dim for name, decl in self.declarations.items()})

    @property
    def key(self) -> str:
        """Hash of the code without hp.* arguments: an edited range keeps the key, other code changes it."""
        stripped = _StripHP(_hp_aliases(self.tree)).visit(copy.deepcopy(self.tree))
        dump = ast.dump(stripped, annotate_fields=False, include_attributes=False)
        return hashlib.sha1(dump.encode()).hexdigest()[:8]

    @property
    def default_name(self) -> str:
        return f"cell-{self.key}"


def _hp_aliases(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names bound to ``hp`` and to the ``nbautoml`` module in this code (besides ``hp`` and ``nbautoml``)."""
    hp_names, modules = {"hp"}, {"nbautoml"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("nbautoml", "nbautoml.spec"):
            hp_names.update(a.asname or a.name for a in node.names if a.name == "hp")
        elif isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.name == "nbautoml" and a.asname)
    return hp_names, modules


def _hp_attr(node: ast.AST, aliases: tuple[set[str], set[str]]) -> str | None:
    """``float`` for a call ``hp.float(...)`` / ``nbautoml.hp.float(...)``; None when not an hp call."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    owner = node.func.value
    hp_names, modules = aliases
    if isinstance(owner, ast.Name) and owner.id in hp_names:
        return node.func.attr
    if (isinstance(owner, ast.Attribute) and owner.attr == "hp" and isinstance(owner.value, ast.Name)
            and owner.value.id in modules):
        return node.func.attr
    return None


class _StripHP(ast.NodeTransformer):
    def __init__(self, aliases: tuple[set[str], set[str]]) -> None:
        self.aliases = aliases

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if _hp_attr(node, self.aliases) in KINDS:
            node.args, node.keywords = [], []
            return node
        return self.generic_visit(node)


def parse_cell(source: str, *, filename: str = "cell", line_offset: int = 0) -> CellSpec:
    """Parse ``source`` and collect its hp.* declarations; :class:`SpecError` on the first problem.

    ``line_offset`` is added to line numbers in messages (a cell magic's body starts on the cell's line 2).
    """
    lines = source.splitlines()

    def quote(line: int | None) -> str | None:
        return lines[line - 1] if line is not None and 0 < line <= len(lines) else None

    try:
        tree = ast.parse(source, filename=filename)
        compile(tree, filename, "exec", dont_inherit=True)  # what the parser allows and compile refuses: 'return'
    except SyntaxError as error:  # or 'await' outside a function, refused here before any journal is written
        line = error.lineno
        raise SpecError(f"syntax error: {error.msg}", line=None if line is None else line + line_offset,
                        source=quote(line), filename=filename) from None
    spec = CellSpec(source, filename, tree, line_offset)
    aliases = _hp_aliases(tree)
    for node in ast.walk(tree):
        attr = _hp_attr(node, aliases)
        if attr is None or attr == "using":
            continue
        assert isinstance(node, ast.Call)
        line = node.lineno + line_offset

        def fail(message: str, node: ast.AST = node, line: int = line) -> SpecError:
            return SpecError(message, line=line, source=quote(node.lineno), filename=filename)  # type: ignore[attr-defined]

        if attr not in KINDS:
            raise fail(f"hp.{attr} does not exist; use hp.float, hp.int or hp.choice")
        decl = _declaration(node, attr, source, line, quote(node.lineno) or "", fail)
        previous = spec.declarations.get(decl.name)
        if previous is None:
            spec.declarations[decl.name] = decl
        elif previous.dim != decl.dim:
            raise fail(
                f"parameter {decl.name!r} is declared twice with different specs: {decl.dim!r} here, "
                f"{previous.dim!r} on line {previous.line} ({previous.source.strip()})"
            )
    return spec


def _declaration(node: ast.Call, kind: str, source: str, line: int, text: str, fail: Any) -> Declaration:
    names = _SIGNATURES[kind]
    call = f"hp.{kind}"
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise fail(f"{call}(...): *args and **kwargs cannot be read before the search; write arguments out")
    if len(node.args) > len(names):
        raise fail(f"{call} takes {', '.join(names)}; got {len(node.args)} positional arguments")
    given: dict[str, ast.expr] = dict(zip(names, node.args, strict=False))
    for keyword in node.keywords:
        assert keyword.arg is not None
        if keyword.arg not in names:
            raise fail(f"{call} got an unknown argument {keyword.arg!r} (it takes {', '.join(names)})")
        if keyword.arg in given:
            raise fail(f"{call} got {keyword.arg!r} twice")
        given[keyword.arg] = keyword.value
    missing = [n for n in names if n not in given and n != "log"]
    if missing:
        raise fail(f"{call} needs {', '.join(missing)}")
    values: dict[str, Any] = {}
    for label, expr in given.items():
        try:
            values[label] = ast.literal_eval(expr)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            segment = ast.get_source_segment(source, expr) or ast.unparse(expr)
            raise fail(
                f"{call}: {label} must be a literal (a number, string, True/False or a list of them) so the "
                f"space is known before the first trial; got `{segment}`"
            ) from None
    name = values["name"]
    if not isinstance(name, str) or not name.isidentifier():
        raise fail(f"{call}: the name must be a string that is a Python identifier, got {name!r}")
    dim: Dimension
    if kind == "choice":
        options = values["options"]
        if not isinstance(options, (list, tuple)):
            raise fail(f"hp.choice({name!r}): options must be a list or tuple, got {options!r}")
        dim = Choice(list(options))
    else:
        cls = Real if kind == "float" else Int
        dim = cls(values["low"], values["high"], log=values.get("log", False))
    problems = dim.problems()
    if problems:
        raise fail(f"{call}({name!r}): {problems[0]}")
    return Declaration(name, dim, line, text)


# ---- running a cell as a trial -------------------------------------------------------------------------
def cell_value(value: Any) -> Any:
    """What a cell's last expression contributes: a number or dict(-like) as is, anything else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (numbers.Real, Mapping)):
        return value
    if callable(getattr(value, "keys", None)) and hasattr(value, "__getitem__"):
        return {key: value[key] for key in value.keys()}  # noqa: SIM118  (a dict-like, e.g. TrainResult)
    size = getattr(value, "numel", None) or getattr(value, "size", None)
    count = size() if callable(size) else size
    if count == 1 and callable(getattr(value, "item", None)):
        return value  # a one-element tensor / array: the engine takes .item()
    return None


class CellObjective:
    """A compiled cell as an objective: ``objective(trial)`` runs it in a copy of ``namespace``."""

    def __init__(self, spec: CellSpec, namespace: Mapping[str, Any] | None = None, *,
                 compile_name: str | None = None, hp_object: Any = None, hidden: Iterable[str] = ()) -> None:
        self.spec = spec
        self.namespace: dict[str, Any] = dict(namespace or {})
        self.hidden = frozenset(hidden)  # names a remote worker needs not (IPython's In, Out, _i1, ...)
        self._hp = hp if hp_object is None else hp_object
        filename = compile_name or spec.filename
        body = copy.deepcopy(spec.tree).body
        last = body.pop().value if body and isinstance(body[-1], ast.Expr) else None  # type: ignore[attr-defined]
        module = ast.increment_lineno(ast.Module(body=body, type_ignores=[]), spec.line_offset)
        try:
            self._body = compile(module, filename, "exec")
            self._last = None
            if last is not None:
                expression = ast.increment_lineno(ast.Expression(body=last), spec.line_offset)
                self._last = compile(expression, filename, "eval")
        except SyntaxError as error:  # e.g. 'return' or 'await' outside a function
            line = error.lineno
            lines = spec.source.splitlines()
            local = None if line is None else line - spec.line_offset
            text = lines[local - 1] if local is not None and 0 < local <= len(lines) else None
            raise SpecError(f"syntax error: {error.msg}", line=line, source=text,
                            filename=spec.filename) from None
        self._lock = threading.Lock()
        self.best_number: int | None = None
        self.best_value: float | None = None
        self.best_namespace: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """For Dask workers: what of the namespace can travel (IPython's internals and studies stay)."""
        state = dict(self.__dict__)
        state["_lock"] = state["best_namespace"] = None
        state["namespace"] = _portable(self.namespace, self.hidden)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def with_namespace(self, namespace: Mapping[str, Any]) -> CellObjective:
        """The same cell against a new snapshot (resume), keeping what it knows of the best trial."""
        clone = object.__new__(CellObjective)  # not copy.copy: that would go through __getstate__
        clone.__dict__.update(self.__dict__, namespace=dict(namespace))
        return clone

    def __call__(self, trial: Trial) -> Any:
        ns = dict(self.namespace)
        ns["trial"], ns["hp"] = trial, self._hp
        with contextlib.ExitStack() as stack:
            if current_trial() is not trial:  # runners set it; a direct call (tests, debugging) may not
                stack.enter_context(using_trial(trial))
            exec(self._body, ns)
            result = cell_value(eval(self._last, ns)) if self._last is not None else None
        self._consider(trial, ns, result)
        return result

    def _consider(self, trial: Trial, ns: dict[str, Any], result: Any) -> None:
        """Keep this trial's assigned variables when it is the best complete one so far."""
        if trial.stop_seen:
            return
        outcome = result_outcome(result, trial, trial.metric, trial.mode)
        if outcome.value is None:
            return
        assigned = {k: v for k, v in ns.items()
                    if k not in ("trial", "hp") and not k.startswith("__")
                    and (k not in self.namespace or self.namespace[k] is not v)}
        with self._lock:
            if direction.better(outcome.value, self.best_value, trial.mode):
                self.best_number, self.best_value, self.best_namespace = trial.number, outcome.value, assigned


_DATA_MODULES = ("numpy", "pandas", "torch", "builtins", "scipy")


def _portable(namespace: Mapping[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    """The entries a remote worker can unpickle; the others are dropped with a warning naming them."""
    import types

    import cloudpickle

    from nbautoml.engine.study import Study

    out: dict[str, Any] = {}
    dropped = []
    for key, value in namespace.items():
        if key in hidden or key in ("In", "Out", "get_ipython", "exit", "quit") or isinstance(value, Study):
            continue
        if isinstance(value, types.ModuleType) or type(value).__module__.split(".")[0] in _DATA_MODULES:
            out[key] = value  # modules go by reference; arrays, tensors, frames and builtins pickle
            continue
        try:
            cloudpickle.dumps(value)
        except Exception:
            dropped.append(key)
        else:
            out[key] = value
    if dropped:
        warnings.warn(f"not sent to the Dask workers (cannot be pickled): {', '.join(dropped)}", stacklevel=3)
    return out
