"""Subprocess programs for the journal tests (run as scripts: real processes, real files)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import nbautoml as na
from nbautoml.engine.storage.journal import JournalStorage
from nbautoml.engine.storage.records import make_record

SPACE = na.Space(x=na.Real(0.0, 1.0), n=na.Int(1, 5))
STEPS = 5


def objective(trial):
    """5 steps; a JSON 'checkpoint' per step written atomically; a resumed trial must find its checkpoint."""
    ckpt = trial.checkpoint_dir / "state.json"
    total = 0.0
    if trial.resume_step > 0:
        state = json.loads(ckpt.read_text())
        assert state["step"] == trial.resume_step - 1, (state, trial.resume_step)
        total = state["total"]
    for step in range(trial.resume_step, STEPS):
        time.sleep(0.03)
        total += trial.params["x"] * (step + 1)
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step, "total": total}))
        os.replace(tmp, ckpt)
        trial.report(step, value=total)
        if trial.should_stop():
            return None
    (trial.checkpoint_dir / "resume_step.txt").write_text(str(trial.resume_step))
    return total


def study_run(journal: str, trials: int) -> None:
    study = na.Study("killme", SPACE, sampler="random", seed=1, storage=journal, keep_checkpoints=None)
    study.optimize(objective, trials=trials, show=False)
    print(json.dumps({"finished": study.n_finished}), flush=True)


def hammer(journal: str, tag: str, count: int) -> None:
    storage = JournalStorage(journal)

    def work(thread: int) -> None:
        for i in range(count):
            record = storage.append_trial(
                lambda n, t=thread, i=i: make_record("trial", number=n, params={"tag": tag, "t": t, "i": i})
            )
            storage.append(make_record("report", number=record["number"], step=0, metrics={"v": float(i)}))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def hold_lock(journal: str, seconds: float) -> None:
    storage = JournalStorage(journal)
    with storage._locked():
        print("locked", flush=True)
        time.sleep(seconds)
        storage._write(make_record("stop", source="holder"))


def read(journal: str) -> None:
    records = JournalStorage(journal).read()
    print(json.dumps([r["type"] for r in records]), flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    Path(".").resolve()
    if command == "study":
        study_run(args[0], int(args[1]))
    elif command == "hammer":
        hammer(args[0], args[1], int(args[2]))
    elif command == "hold":
        hold_lock(args[0], float(args[1]))
    elif command == "read":
        read(args[0])
