"""One journal line: a record as strict JSON with its CRC32, and back.

A line is the record's compact JSON with one more key at the end, ``"crc"``: the CRC32 (8 hex digits) of the
JSON text without it. ``zlib.crc32`` is the ecosystem's checksum (SQLite's WAL and PNG use the same kind); it
catches every single-bit flip and every burst up to 32 bits, which JSON parsing alone does not (a flipped digit
is still a number). Lines of format 1 (no checksum) stay readable; a format-2 record without a valid checksum is
refused.

JSON has no NaN or infinity: non-finite floats are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``,
which ``float()`` reads back exactly (format 1 wrote ``null`` and reads back as NaN).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any

from nbautoml.engine.storage.base import Record

__all__ = ["decode_line", "encode_line", "plain"]

CHECKSUMMED = 2  # the first record format whose lines carry a checksum
_CRC = re.compile(rb',"crc":"([0-9a-f]{8})"\}\s*$')


def encode_line(record: Record) -> bytes:
    """The line for ``record`` (newline included)."""
    body = json.dumps(plain(record), allow_nan=False, separators=(",", ":")).encode("ascii")
    return body[:-1] + b',"crc":"%08x"}\n' % zlib.crc32(body)


def decode_line(line: bytes) -> Record:
    """The record of one line; ValueError saying what is wrong (bad JSON, not a record, checksum)."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(record, dict) or "type" not in record:
        raise ValueError("not a record object")
    match = _CRC.search(line)
    if match is not None:
        body = line[: match.start()] + b"}"
        if zlib.crc32(body) != int(match.group(1), 16):
            raise ValueError(f"checksum mismatch (stored {match.group(1).decode()}, computed {zlib.crc32(body):08x})")
        del record["crc"]
    elif "crc" in record or not isinstance(record.get("v", 1), int) or record.get("v", 1) >= CHECKSUMMED:
        raise ValueError("its checksum is missing or malformed")
    return record


def plain(value: Any) -> Any:
    """``value`` with non-finite floats as strings, so every line stays strict JSON and inf stays inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
