"""WHOOP timestamp formats: RFC 3339 UTC with milliseconds and ``Z``, and per-record offsets.

Internally every instant is an ``int`` of milliseconds since the Unix epoch (UTC); these pure
functions convert at the edges.
"""

from __future__ import annotations

import datetime as dt

from schemas.whoop import format_offset

__all__ = ["format_ms", "format_offset", "parse_query_datetime"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def format_ms(epoch_ms: int) -> str:
    """``1760409667312`` -> ``"2025-10-14T02:41:07.312Z"``."""
    seconds, millis = divmod(epoch_ms, 1000)
    moment = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def parse_query_datetime(value: str) -> int:
    """Parse a ``start``/``end`` query value to epoch ms; raise ``ValueError`` if it is not a date-time.

    Date-only values are rejected (WHOOP reportedly does); a value without an offset is UTC.
    """
    if "T" not in value and "t" not in value:
        raise ValueError(f"not a date-time: {value!r}")
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
