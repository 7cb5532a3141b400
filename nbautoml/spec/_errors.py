"""What goes wrong reading or running code that uses ``hp``: the errors and the warning."""

from __future__ import annotations


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
