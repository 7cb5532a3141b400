"""The kernel's interrupt stops a blocking %%automl search cleanly; the next cell reads the stopped study.

A real ipykernel started by jupyter_client: SIGINT arrives as KeyboardInterrupt in the main thread while the
magic waits on the study's worker thread (docs/ARCHITECTURE.md "Stopping").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

pytestmark = pytest.mark.slow

LONG_CELL = """\
%%automl --name longrun --trials 5 --sampler random
x = hp.float("x", 0.0, 1.0)
open("started", "w").close()
for step in range(trial.resume_step, 600):
    pause(0.05)
    trial.report(step, val_loss=x + 1 / (step + 1))
    if trial.should_stop():
        break
"""


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    km, kc = start_new_kernel(startup_timeout=60, cwd=str(tmp_path))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: BlockingKernelClient, code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
    """Execute ``code``; (the reply's content, everything it printed)."""
    printed: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            printed.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(printed)


def wait_reply(kc: BlockingKernelClient, msg_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.1, deadline - time.time()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return dict(msg["content"])


def test_interrupt_stops_a_blocking_search_and_the_next_cell_sees_it(
        kernel: tuple[KernelManager, BlockingKernelClient], tmp_path: Path) -> None:
    km, kc = kernel
    setup = "%load_ext nbautoml\nimport time\npause = time.sleep\nnbautoml.set_frontend(None)"
    reply, _ = run(kc, setup)
    assert reply["status"] == "ok"
    msg_id = kc.execute(LONG_CELL)
    deadline = time.time() + 60
    while not (tmp_path / "started").exists():
        assert time.time() < deadline, "the trial never started"
        time.sleep(0.05)
    time.sleep(0.3)  # a few reports in
    km.interrupt_kernel()
    reply = wait_reply(kc, msg_id, timeout=30)
    assert reply["status"] == "ok"  # the magic turned the interrupt into a stop and returned
    code = ("import json\nprint(json.dumps({'state': str(study.state), 'states': [t.state.value for t in "
            "study.trials], 'finished': study.n_finished, 'message': study.message}))")
    reply, printed = run(kc, code)
    assert reply["status"] == "ok", printed
    seen = json.loads(printed.strip().splitlines()[-1])
    assert seen["state"] == "STOPPED" and seen["states"] == ["INTERRUPTED"] and seen["finished"] == 0
    assert seen["message"].startswith("stopped")
    journal = [json.loads(line) for line in (tmp_path / ".nbautoml" / "longrun.jsonl").read_text().splitlines()]
    assert any(r["type"] == "stop" and r["source"] == "interrupt" for r in journal)
    # the kernel is healthy and the study continues: the interrupted trial is re-run first
    run(kc, "pause = lambda seconds: None")
    reply, printed = run(kc, LONG_CELL.replace("--trials 5", "--trials 1"))
    assert reply["status"] == "ok", printed
    reply, printed = run(kc, "print(study.n_finished, study.trials[-1].resumed_from, study.state)")
    assert printed.split() == ["1", "0", "FINISHED"]


def test_blocking_search_under_nbclient(tmp_path: Path) -> None:
    """Headless execution (nbclient, as papermill does): the next cell sees the finished study."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbautoml\noffset = 0.5"),
        nbformat.v4.new_code_cell("%%automl --trials 3 --sampler random --metric value\n"
                                  "x = hp.float('x', 0.0, 1.0)\n(x - offset) ** 2"),
        nbformat.v4.new_code_cell("print(study.n_finished, study.state, round(study_best.x, 6) == "
                                  "round(study.best_params['x'], 6))"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs if o.get("output_type") == "stream")
    assert printed.split() == ["3", "FINISHED", "True"]
    assert (tmp_path / ".nbautoml").is_dir()
