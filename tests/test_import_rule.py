"""The import rule (docs/ARCHITECTURE.md): engine ← torch ← notebook, never back; heavy front ends stay lazy."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nbautoml"
HEAVY = ("torch", "IPython", "ipywidgets", "bokeh", "jupyter_bokeh")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return {name.split(".")[0] for name in json.loads(out.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("statement", ["import nbautoml", "import nbautoml.engine", "import nbautoml.engine.study"])
def test_engine_loads_no_torch_or_front_end(statement):
    loaded = loaded_after(statement)
    assert not loaded & set(HEAVY), f"{statement} loaded {sorted(loaded & set(HEAVY))}"


def test_torch_layer_loads_no_front_end():
    if not (PACKAGE / "torch" / "__init__.py").exists():
        pytest.skip("torch layer not present")
    loaded = loaded_after("import nbautoml.torch")
    assert "torch" in loaded
    assert not loaded & {"IPython", "ipywidgets", "bokeh", "jupyter_bokeh"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_never_imports_upwards_and_only_bayes_imports_skopt():
    for path in (PACKAGE / "engine").rglob("*.py"):
        for name in imports_of(path):
            assert not name.startswith(("nbautoml.torch", "nbautoml.notebook", "nbautoml.console", "nbautoml.cli")), (
                f"{path.relative_to(PACKAGE)} imports {name}"
            )
            assert name.split(".")[0] not in HEAVY, f"{path.relative_to(PACKAGE)} imports {name}"
    for path in PACKAGE.rglob("*.py"):
        if path.name != "bayes.py":
            assert not any(n.split(".")[0] == "skopt" for n in imports_of(path)), f"{path} imports skopt"


def test_torch_layer_never_imports_the_front_end():
    for path in (PACKAGE / "torch").rglob("*.py"):
        for name in imports_of(path):
            forbidden = ("nbautoml.notebook", "IPython", "ipywidgets", "bokeh")
            assert not name.startswith(forbidden), f"{path} imports {name}"
