"""WHOOP's own wire conventions, written once for our client and for the simulator that stands in for WHOOP.

Pure values and functions of the WHOOP API v2 reference (``whoop-api-v2.md``): the OAuth scopes and the
text of a record's ``timezone_offset``.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["SCOPES", "format_offset"]

SCOPES: tuple[str, ...] = (
    "read:recovery",
    "read:cycles",
    "read:workout",
    "read:sleep",
    "read:profile",
    "read:body_measurement",
    "offline",
)
"""Every OAuth scope WHOOP defines, in the order our authorization URL asks for them."""


def format_offset(offset: timedelta) -> str:
    """A UTC offset as WHOOP writes it: ``-04:00``, ``+05:30``, or ``Z`` for zero."""
    total_minutes = int(offset.total_seconds()) // 60
    if total_minutes == 0:
        return "Z"
    sign = "-" if total_minutes < 0 else "+"
    hours, minutes = divmod(abs(total_minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"
