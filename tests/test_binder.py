"""binder/: what mybinder.org builds the demo environment from.

The launch itself cannot be tried here (no network beyond package registries, no Docker). What can be checked:
the files parse the way repo2docker reads them, they name every dependency of the package at versions its
pyproject accepts, and — slow — they install into a fresh venv the way Binder would (requirements, then
``binder/postBuild``), which then imports the package, its torch layer and its magics. Torch comes from this
machine's disk wheel (``torch==2.13.0``, a CPU build); on Binder it comes from the PyTorch CPU index.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def read_requirements() -> tuple[list[str], list[Requirement]]:
    """(option lines, requirements) of binder/requirements.txt; comments and blank lines skipped."""
    options, requirements = [], []
    for raw in (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
        else:
            requirements.append(Requirement(line))
    return options, requirements


def pinned(requirements: list[Requirement]) -> dict[str, Version]:
    out = {}
    for req in requirements:
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{req}: pin an exact version for Binder"
        out[canonicalize_name(req.name)] = Version(specs[0].version)
    return out


def test_runtime_is_the_python_ci_runs() -> None:
    text = (BINDER / "runtime.txt").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"python-3\.\d+", text), text
    assert text == "python-3.11"  # the disk's CPU torch wheel and CI are 3.11 (tests/torch_layer and CI run 3.11)


def test_requirements_pin_every_dependency_of_the_package() -> None:
    options, requirements = read_requirements()
    assert f"--extra-index-url {CPU_INDEX}" in options  # a CPU torch, not PyPI's multi-GB CUDA build
    assert all(o.startswith("--extra-index-url ") for o in options)
    versions = pinned(requirements)
    assert len(versions) == len(requirements), "a package is named twice"
    assert versions["torch"] == Version("2.13.0")

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    needed = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dask"]]
    for req in needed:
        name = canonicalize_name(req.name)
        assert name in versions, f"binder/requirements.txt lacks {req.name} (postBuild installs with --no-deps)"
        assert req.specifier.contains(versions[name], prereleases=True), (
            f"binder pins {name}=={versions[name]}, pyproject.toml asks {req}")


def test_post_build_installs_the_repository_without_dependencies() -> None:
    script = BINDER / "postBuild"
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n") and os.access(script, os.X_OK)
    assert re.search(r"^python -m pip install .*--no-deps \.$", text, re.M)
    subprocess.run(["bash", "-n", str(script)], check=True)  # syntax


def _copy_package(target: Path) -> Path:
    """What building the package needs, copied out of the working tree (a build writes into its source)."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "nbautoml", target / "nbautoml",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return target


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_binder_files_install_into_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)

    def pip(*args: str, cwd: Path = tmp_path) -> None:
        # --no-compile: byte-compiling torch's thousands of modules tripled the time of this test
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", *args], cwd=cwd, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"pip install {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"

    # torch first, from this machine's disk wheel: Binder gets the same version from the CPU index instead
    pip("torch==2.13.0")
    _, requirements = read_requirements()
    offline = tmp_path / "requirements.txt"  # the file minus its index option (that index is not reachable here)
    offline.write_text("\n".join(str(r) for r in requirements) + "\n", encoding="utf-8")
    pip("-r", str(offline))
    source = _copy_package(tmp_path / "repo")
    build = subprocess.run(["bash", str(BINDER / "postBuild")], cwd=source, env=env, capture_output=True, text=True)
    assert build.returncode == 0, f"postBuild failed:\n{build.stdout}\n{build.stderr}"

    check = subprocess.run([str(python), "-m", "pip", "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    probe = ("import nbautoml, nbautoml.torch, nbautoml.notebook.magics, torch, distributed; "
             "m = nbautoml.torch.mlp(4, 2); print(nbautoml.__file__, torch.__version__, type(m).__name__)")
    result = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    where, torch_version, model = result.stdout.split()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the working tree
    assert torch_version.startswith("2.13.0") and model == "Sequential"
