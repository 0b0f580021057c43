"""The query API's parameters, parsed and checked without I/O.

Times (``start``, ``end``) are ISO-8601 as ``datetime.fromisoformat`` reads it (with ``Z`` or an
offset, with or without fractional seconds, a date alone meaning its midnight). **A time without an
offset means UTC** (the phone often sends local time without one: it is read as UTC, never as the
server's zone). A window selects records that overlap it, as WHOOP's collections do: ``start_at <
end`` and (``end_at`` is null or ``end_at >= start``); either bound may be omitted. ``limit`` is 1 to
25, default 25; anything else is refused (400), never clamped. Every value that cannot be used is a
``BadRequest`` naming the parameter (never echoing the value).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..errors import BadRequest

__all__ = [
    "DEFAULT_LIMIT",
    "KINDS",
    "MAX_LIMIT",
    "Kind",
    "Window",
    "parse_date",
    "parse_id",
    "parse_instant",
    "parse_limit",
    "parse_window",
]

DEFAULT_LIMIT = 25
MAX_LIMIT = 25
Kind = str
KINDS: tuple[Kind, ...] = ("recovery", "sleep", "workouts", "cycles")
_INT64_MAX = 2**63 - 1
_MAX_LENGTH = 64


@dataclass(frozen=True)
class Window:
    """A time window; a bound that is None is open."""

    start: datetime | None
    end: datetime | None

    def days(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start) / timedelta(days=1)


def parse_instant(raw: str, name: str) -> datetime:
    """An aware UTC datetime from ISO-8601; a naive value is UTC."""
    if not raw or len(raw) > _MAX_LENGTH:
        raise BadRequest(f"{name} must be an ISO-8601 date-time", "invalid_parameter")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 date-time", "invalid_parameter") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise BadRequest(f"{name} is out of range", "invalid_parameter") from None


def parse_window(start: str | None, end: str | None) -> Window:
    """The window of ``start``/``end``; ``start`` must come before ``end`` when both are given."""
    window = Window(
        None if start is None else parse_instant(start, "start"),
        None if end is None else parse_instant(end, "end"),
    )
    if window.start is not None and window.end is not None and window.start >= window.end:
        raise BadRequest("start must be before end", "invalid_window")
    return window


def parse_limit(raw: str | None) -> int:
    """The page size: 1 to 25, 25 when absent."""
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", "invalid_limit")
    return int(raw)


def parse_date(raw: str, name: str) -> date:
    """A calendar date ``YYYY-MM-DD``."""
    if len(raw) != 10:
        raise BadRequest(f"{name} must be a date YYYY-MM-DD", "invalid_parameter")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a date YYYY-MM-DD", "invalid_parameter") from None


def parse_id(kind: Kind, raw: str) -> tuple[str, int | str]:
    """The column and value a single-record id names: cycle id (integer) or sleep/workout UUID.

    A recovery is found by its cycle id (an integer, WHOOP's key) or by its sleep's UUID.
    """
    if kind in ("cycles", "recovery") and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        value = int(raw)
        if value <= _INT64_MAX:
            return "cycle_id", value
    if kind in ("sleep", "workouts", "recovery") and len(raw) <= 36 + 4:
        try:
            canonical = str(uuid.UUID(raw))
        except ValueError:
            pass
        else:
            return ("sleep_id" if kind != "workouts" else "workout_id"), canonical
    expected = {"cycles": "an integer cycle id", "recovery": "a cycle id or a sleep UUID"}.get(kind, "a UUID")
    raise BadRequest(f"the id must be {expected}", "invalid_id")
