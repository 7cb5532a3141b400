"""The terminal front end: a tqdm bar and one line per finished trial, drawn from a study's events.

It is the default outside IPython (scripts, the CLI); like the notebook panel it only reads events and the
study's public state.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from nbautoml.events import Event, StudyFinished, StudyStarted, TrialFinished

if TYPE_CHECKING:
    from nbautoml.engine.study import Study

__all__ = ["ConsoleProgress", "format_params"]


def format_params(params: dict[str, Any], width: int = 80) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 3] + "..."


class ConsoleProgress:
    def __init__(self, study: Study, file: IO[str] | None = None) -> None:
        self.study = study
        self.file = file if file is not None else sys.stderr
        self.bar: Any = None
        self._unsubscribe = study.events.subscribe(self.on_event, StudyStarted, TrialFinished, StudyFinished)

    def on_event(self, event: Event) -> None:
        if isinstance(event, StudyStarted):
            self.bar = tqdm(total=event.budget, initial=event.finished, desc=self.study.name, file=self.file,
                            unit="trial", dynamic_ncols=True, leave=True)
        elif isinstance(event, TrialFinished):
            value = "" if event.value is None else f" value={event.value:.6g}"
            reason = f" ({event.reason})" if event.reason else ""
            best = self.study.best_summary()
            best_text = "" if best is None else f" | {best}"
            line = f"trial {event.number} {event.state}{value}{reason}{best_text} | {format_params(dict(event.params))}"
            if self.bar is not None:
                self.bar.write(line, file=self.file)
                if event.state in ("COMPLETE", "PRUNED", "FAILED"):
                    self.bar.update(1)
            else:
                print(line, file=self.file)
        elif isinstance(event, StudyFinished):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            print(f"{self.study.name}: {self.study.message}", file=self.file)
            self._unsubscribe()
