"""Running a cell as a trial: a fresh shallow copy of the namespace, the cell's value, the best trial's variables,
the namespace made portable for Dask workers."""

from __future__ import annotations

import ast
import contextlib
import copy
import numbers
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from nbautoml.engine import direction
from nbautoml.engine.trial import Trial, current_trial, using_trial
from nbautoml.engine.values import result_outcome
from nbautoml.spec._errors import SpecError
from nbautoml.spec._hp import hp
from nbautoml.spec._reading import CellSpec


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
