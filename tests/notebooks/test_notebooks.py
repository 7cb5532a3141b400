"""The demo notebooks run headless with the CI budget and tell their story; the stored files have no outputs.

Each notebook runs with nbclient in a real ipykernel of this interpreter (a kernelspec written to a temporary
folder, so the user's own ``python3`` kernelspec never matters), in this test's temporary working directory
(the notebook's folder: its journals land in ``.nbautoml/`` there), with ``NBAUTOML_BUDGET=ci``.
``OMP_NUM_THREADS=1``: on a 2-core machine shared with other processes, torch's default of one thread per core
made small MLP epochs 10-40x slower (threads spinning on a loaded CPU). The assertions read what the cells
print — the same lines a newcomer reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_quickstart", "02_custom_training", "03_tabular_automl", "04_interrupt_and_resume",
         "05_live_space_editing", "06_scale_out"]
CELL_TIMEOUT = 600


# ---- stored notebooks (fast) -----------------------------------------------------------------------------
def test_every_notebook_is_a_pair() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == NAMES  # one percent file per notebook, no other
    config = (NOTEBOOKS / "jupytext.toml").read_text(encoding="utf-8")
    assert 'formats = "ipynb,py:percent"' in config


@pytest.mark.parametrize("name", NAMES)
def test_the_pair_is_in_sync(name: str) -> None:
    """The stored .ipynb is exactly what ``jupytext --sync`` makes of the .py (the .ipynb keeps its cell ids and
    notebook metadata, which the .py leaves out)."""
    import jupytext
    from jupytext.combine import combine_inputs_with_outputs

    source = jupytext.read(NOTEBOOKS / f"{name}.py", fmt="py:percent")
    stored_text = (NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8")
    stored = nbformat.reads(stored_text, as_version=4)
    synced = jupytext.writes(combine_inputs_with_outputs(source, stored, fmt="py:percent"), fmt="ipynb")
    assert synced.rstrip("\n") == stored_text.rstrip("\n"), (
        f"{name}.ipynb and {name}.py differ: run `jupytext --sync notebooks/{name}.py` (or the .ipynb, whichever "
        "you edited) and commit both")


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs_with_a_parameters_cell(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "NBAUTOML_BUDGET" in tagged[0].source
    assert code.index(tagged[0]) == 0, "the parameters cell comes before any other code"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


# ---- executing them (slow) ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A kernelspec that runs this interpreter (the venv's), found by name in a private folder."""
    from jupyter_client.kernelspec import KernelSpecManager

    root = tmp_path_factory.mktemp("kernels")
    folder = root / "nbautoml-test"
    folder.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "nbautoml tests", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return KernelSpecManager(kernel_dirs=[str(root)])


class Executed:
    """A notebook after a run: its cells and the text each code cell showed (streams and text/plain)."""

    def __init__(self, nb: nbformat.NotebookNode) -> None:
        self.nb = nb
        self.texts: list[str] = []
        self.mimetypes: set[str] = set()
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            parts = []
            for out in cell.outputs:
                if out.output_type == "stream":
                    parts.append(out.text)
                elif out.output_type in ("execute_result", "display_data"):
                    self.mimetypes.update(out.data)
                    parts.append(out.data.get("text/plain", ""))
            self.texts.append("".join(parts))
        self.text = "\n".join(self.texts)

    def find(self, pattern: str) -> re.Match[str]:
        match = re.search(pattern, self.text)
        assert match is not None, f"no match for {pattern!r} in the notebook's output:\n{self.text}"
        return match


def execute(name: str, folder: Path, kernel_specs: Any) -> Executed:
    """Run notebooks/<name>.ipynb in ``folder`` (copied there once; later runs reuse what it left)."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    target = folder / f"{name}.ipynb"
    if not target.exists():
        shutil.copy(NOTEBOOKS / target.name, target)
    nb = nbformat.read(target, as_version=4)
    env = {**os.environ, "NBAUTOML_BUDGET": "ci", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    km = KernelManager(kernel_name="nbautoml-test", kernel_spec_manager=kernel_specs)
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(folder)}})
    try:
        client.execute(env=env)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return Executed(nb)


@pytest.mark.slow
def test_01_quickstart(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("01_quickstart", tmp_path, kernel_specs)
    run.find(r"quickstart: budget reached: 6 of 6 trials finished")
    run.find(r"study 'quickstart': FINISHED · 6 finished")  # %automl status: the leaderboard follows
    run.find(r"#\s+val_acc\s+state\s+layers\s+units")
    test_accuracy = float(run.find(r"test accuracy (\d\.\d+) on 450 unseen images").group(1))
    assert test_accuracy > 0.5  # ten classes: chance is 0.1 (quality bars live in bench/)
    assert "application/vnd.jupyter.widget-view+json" in run.mimetypes  # the live panel
    assert (tmp_path / ".nbautoml" / "quickstart.jsonl").is_file()


@pytest.mark.slow
def test_02_custom_training(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("02_custom_training", tmp_path, kernel_specs)
    run.find(r"custom-cnn: budget reached: 6 of 6 trials finished")
    curves = re.findall(r"trial \d+ (COMPLETE|PRUNED)\s+epochs=\s*(\d+)\s+val_acc:", run.text)
    assert len(curves) == 6
    assert all(1 <= int(epochs) <= 6 for _, epochs in curves)
    run.find(r"\d+ epochs trained of 36 without early stopping")
    run.find(r"best reported val_acc 0\.\d+; the network as the loop left it: 0\.\d+")


@pytest.mark.slow
def test_03_tabular_automl(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("03_tabular_automl", tmp_path, kernel_specs)
    run.find(r"569 rows, 34 columns, \d+ missing cells; 455 rows to fit on, 114 kept aside")
    run.find(r"AutoMLResult\(study='tabular-bc', task='binary', trials=6, best val_loss=")
    run.find(r"rank\s+trial\s+value\s+model")  # the leaderboard
    run.find(r"predict uses the (best_model|ensemble); validation val_loss: best_model ")
    run.find(r"dropped: \{'patient_id': 'id-like'\}")
    run.find(r"one-hot: \[.*'clinic")
    run.find(r"model: bc_model")
    assert (tmp_path / "bc_model" / "manifest.json").is_file()
    run.find(r"reloaded predictions equal the in-memory ones: True")
    accuracy = float(run.find(r"test accuracy on 114 unseen rows: (\d\.\d+)").group(1))
    assert accuracy > 0.6  # two classes, 63% benign


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_04_interrupt_and_resume_twice(tmp_path: Path, kernel_specs: Any) -> None:
    first = execute("04_interrupt_and_resume", tmp_path, kernel_specs)
    first.find(r"no journal at \.nbautoml/resume-demo\.jsonl yet")
    finished = int(first.find(r"resume-demo: STOPPED with (\d+) finished trials").group(1))
    assert finished >= 2
    interrupted = int(first.find(r"trial (\d+): INTERRUPTED after \d+ epochs").group(1))
    first.find(r"no re-runs yet")

    second = execute("04_interrupt_and_resume", tmp_path, kernel_specs)  # a fresh kernel: a restart
    second.find(rf"continuing from {finished} finished trials")
    second.find(rf"trial {interrupted} was interrupted after \d+ epochs: it will be re-run")
    rerun = second.find(rf"trial (\d+) re-ran trial {interrupted} from epoch (\d+): (COMPLETE|INTERRUPTED)")
    assert int(rerun.group(2)) >= 1  # continued from its checkpoint, not from scratch
    more = int(second.find(r"resume-demo: STOPPED with (\d+) finished trials").group(1))
    assert more >= finished + 2


@pytest.mark.slow
def test_05_live_space_editing(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("05_live_space_editing", tmp_path, kernel_specs)
    assert re.findall(r"space_version (\d+)", run.text) == ["0", "1", "2", "3"]
    reuse = [(int(a), int(b)) for a, b in re.findall(r"(\d+) of the (\d+) trials of earlier versions", run.text)]
    assert len(reuse) == 3
    (widened, before1), (narrowed, before2), (added, before3) = reuse
    assert widened == before1 == 4  # every trial lies inside a wider space
    assert narrowed < before2 == 6  # the one-layer trials fall outside "layers 2..3"
    assert added == 0 and before3 == 8  # no earlier trial chose a dropout
    run.find(r"~ lr: Real\(0\.001, 0\.003, log=True\) -> Real\(0\.0001, 0\.03, log=True\)")
    run.find(r"\+ dropout: Real\(0\.0, 0\.5\)")
    run.find(r"space-edit: budget reached: 10 of 10 trials finished")


@pytest.mark.slow
def test_06_scale_out(tmp_path: Path, kernel_specs: Any) -> None:
    run = execute("06_scale_out", tmp_path, kernel_specs)
    kernel_pid = int(run.find(r"the kernel's process id is (\d+)").group(1))
    found = run.find(r"4 trials finished in [\d.]+ s, run by (\d) worker processes \[([\d, ]+)\]")
    pids = {int(p) for p in found.group(2).split(",")}
    assert kernel_pid not in pids and 1 <= len(pids) <= 2
    run.find(r"scheduler at tcp://127\.0\.0\.1:\d+")
    run.find(r"2 more trials ran on tcp://127\.0\.0\.1:\d+; the study now has 6 finished trials")
