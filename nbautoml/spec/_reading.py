"""Reading code before any trial runs: ``hp.*`` calls with literal arguments → a Space, errors quoting the line;
the study key from the code with the hp.* arguments left out."""

from __future__ import annotations

import ast
import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from nbautoml.space import Choice, Dimension, Int, Real, Space
from nbautoml.spec._errors import SpecError

KINDS = ("float", "int", "choice")
_SIGNATURES = {"float": ("name", "low", "high", "log"), "int": ("name", "low", "high", "log"),
               "choice": ("name", "options")}


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
