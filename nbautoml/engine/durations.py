"""Durations: the one reading of a time budget, for ``optimize(timeout=...)``, the magic and the CLI alike.

A number of seconds (positive, finite; not a bool) or a string: ``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"``,
``"1h30m"``, ``"2d"``. Anything else is a ValueError that names the argument, before anything is written.
"""

from __future__ import annotations

import math
import re

__all__ = ["seconds"]

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(sec|min|s|m|h|d)?")


def seconds(value: object, what: str = "duration") -> float:
    """Seconds from a number or a duration string; ValueError naming ``what`` otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{what} must be positive finite seconds or a string like '90s', '10m', '1h'; "
                             f"got {value!r}")
        return number
    if not isinstance(value, str):
        raise ValueError(f"{what} must be seconds (a number) or a string like '90s', '10m', '1h'; "
                         f"got {type(value).__name__} {value!r}")
    cleaned = value.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(cleaned):
        match = _PART.match(cleaned, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2) or ""]
        pos = match.end()
    if not cleaned or pos != len(cleaned) or not 0 < total < math.inf:
        raise ValueError(f"invalid {what} {value!r} (use e.g. 90, 90s, 10m, 1h or 1h30m)")
    return total
