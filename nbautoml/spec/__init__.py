"""``hp`` and the reading of code that uses it: a ``%%automl`` cell or a spec file → a Space and an objective.

No IPython here: the CLI runs spec files with the same code as the magic. One module per job: ``_hp`` (what
cell code calls), ``_reading`` (code → Space), ``_running`` (a cell as a trial), ``_errors``.

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

from nbautoml.spec._errors import HPOutsideTrialWarning, SpecError, UndeclaredParameter
from nbautoml.spec._hp import HP, hp
from nbautoml.spec._reading import CellSpec, Declaration, parse_cell
from nbautoml.spec._running import CellObjective, cell_value

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
