"""What counts as a number: the one coercion behind trial values (values.py) and reported metrics (trial.py).

Accepted: ``int`` and ``float``, and any object with a no-argument ``item()`` that returns one (numpy scalars,
one-element arrays and tensors). Refused, with the reason: ``bool`` (``True`` is a flag, not a score: a
``return acc > 0.9`` is a bug to show, not a value of 1.0), strings and bytes, objects of more or fewer than one
element, integers beyond float range (``10**400``), and whatever else. Finiteness is the caller's rule: a NaN
report is kept (the scheduler prunes a diverged trial on it), a NaN trial value fails the trial.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_number"]


def to_number(value: Any) -> tuple[float | None, str | None]:
    """``(float, None)`` for a number, ``(None, why)`` for anything else (see the module docstring)."""
    if isinstance(value, bool):
        return None, f"bool {value!r}"
    if isinstance(value, (int, float)):
        try:
            return float(value), None
        except OverflowError:  # an int past ~1.8e308 (10**400)
            return None, f"an integer of {int(value).bit_length()} bits is beyond float range"
    if isinstance(value, (str, bytes)):
        return None, f"{type(value).__name__} {value!r:.60}"
    numel = getattr(value, "numel", None) or getattr(value, "size", None)
    count = numel() if callable(numel) else numel
    if isinstance(count, int) and count != 1:
        return None, f"{type(value).__name__} with {count} elements (need one number)"
    item = getattr(value, "item", None)
    if not callable(item):
        return None, f"{type(value).__name__} is not a number"
    try:
        raw = item()
    except (ValueError, RuntimeError, TypeError) as error:
        return None, f"{type(value).__name__}: {error}"
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None, f"{type(value).__name__} holding {raw!r}"
    return float(raw), None
