"""WHOOP time values and the member's local dates: pure functions, no clock, no time-zone database.

WHOOP stamps every instant in UTC (RFC 3339 with milliseconds and ``Z``) and gives each record
its own ``timezone_offset`` (``+hh:mm``, ``-hh:mm`` or ``Z``): the member's UTC offset when that
record was recorded. A local date is therefore the UTC instant shifted by *that record's* offset;
we never look a member's zone up and never use one record's offset for another (DST and travel
change offsets between neighbouring records: whoop-api-v2.md §3, §12 items 11-12).

The "day" rules (§12 item 12):

- sleep (main or nap) and recovery: the local date of the sleep's ``end`` (the wake-up);
- workout: the local date of its ``start`` (a run from 23:30 to 00:40 belongs to the evening it
  began, as in WHOOP's own app);
- cycle: the local date of ``start + 12 h``. A cycle starts at sleep onset; the day it is labelled
  with is the day of the wake-up of that sleep, which the cycle document does not carry. Onsets
  from local noon to midnight are labelled with the next date, onsets from midnight to noon with
  their own date: a cycle starting 22:41 on Oct 13 is "Oct 14", one starting 01:30 on Oct 14 is
  "Oct 14" too. The offset is the cycle's own. Travel across many zones can give two neighbouring
  cycles the same label or skip a date; consumers must allow both.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from schemas.whoop import format_offset

__all__ = [
    "CYCLE_DAY_SHIFT",
    "MAX_OFFSET",
    "cycle_local_date",
    "format_offset",
    "local_date",
    "parse_instant",
    "parse_offset",
    "whoop_instant",
]

MAX_OFFSET = timedelta(hours=14)  # the widest offsets in use are -12:00 and +14:00
CYCLE_DAY_SHIFT = timedelta(hours=12)

_OFFSET = re.compile(r"(?:[Zz]|([+-])(\d{2}):?(\d{2}))")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})?")


def parse_offset(value: str) -> timedelta:
    """``"-04:00"`` -> -4 h, ``"Z"`` -> 0, also ``+hhmm``; ValueError otherwise or beyond ±14:00."""
    match = _OFFSET.fullmatch(value)
    if match is None:
        raise ValueError(f"not a UTC offset (+hh:mm, -hh:mm or Z): {value[:32]!r}")
    sign, hours, minutes = match.groups()
    if sign is None:
        return timedelta(0)
    if int(minutes) >= 60:
        raise ValueError(f"offset minutes out of range: {value!r}")
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > MAX_OFFSET:
        raise ValueError(f"offset beyond ±14:00: {value!r}")
    return -offset if sign == "-" else offset


def parse_instant(value: str) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime.

    Accepts WHOOP's ``2025-10-14T02:41:07.312Z`` and its relatives: any number of fractional
    digits (kept to the microsecond), ``Z``/``z`` or a numeric offset, and no offset at all, which
    WHOOP v2 defines as UTC. ValueError on anything else (a date alone, week dates, 24:00 ...).
    """
    moment = whoop_instant(value)
    if moment is not None:
        return moment
    if _INSTANT.fullmatch(value) is None:
        raise ValueError(f"not an RFC 3339 date-time: {value[:40]!r}")
    text = value.upper().replace(" ", "T")
    if "." in text:  # Python's parser takes at most 6 fractional digits: truncate, never round
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {value[:40]!r} ({exc})") from exc
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"date-time out of range: {value[:40]!r}") from exc


def whoop_instant(value: str) -> datetime | None:
    """``value`` in WHOOP's own form (``2025-10-14T02:41:07.312Z``: milliseconds, ``Z``) as an aware
    UTC datetime, read by the standard parser as it is; None for any other form (``parse_instant``
    reads those, or says what is wrong)."""
    if (
        len(value) == 24
        and value[23] == "Z"
        and value[19] == "."
        and value[10] == "T"
        and value[4] == "-"
        and value[7] == "-"
        and value[13] == ":"
        and value[16] == ":"
        and value.isascii()
    ):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def local_date(instant: datetime, offset: timedelta) -> date:
    """The calendar date at ``instant`` on a clock running at UTC``offset``."""
    try:
        return ((instant if instant.tzinfo is UTC else instant.astimezone(UTC)) + offset).date()
    except OverflowError as exc:
        raise ValueError(f"local date out of range for {instant.isoformat()}") from exc


def cycle_local_date(start: datetime, offset: timedelta) -> date:
    """The member's day label of a cycle starting at ``start``: the local date of ``start + 12 h``."""
    return local_date(start + CYCLE_DAY_SHIFT, offset)
