"""Strict readers of fields in a WHOOP JSON document, for the normalizer.

Each reader returns a typed value or raises ``NormalizationError`` whose reason names the JSON
path (``where`` + key) and what is wrong there. The rules are WHOOP's (whoop-api-v2.md §3, §6):
absent and ``null`` are the same thing, integral floats pass where an integer is documented
(``72.0``) but ``72.5`` does not, booleans are never numbers, timestamps are RFC 3339 within
2000-2099, offsets are ``+hh:mm``, ``-hh:mm`` or ``Z``. Reasons show numbers but never text
values (they may be long, or personal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import JsonValue

from processors.errors import NormalizationError
from processors.local_time import format_offset, parse_instant, parse_offset, whoop_instant

__all__ = [
    "EARLIEST",
    "INT64",
    "LATEST",
    "JsonObject",
    "float_value",
    "id_int",
    "id_str",
    "instant_at",
    "instant_or_none",
    "instant_value",
    "int_value",
    "kind",
    "object_at",
    "offset_at",
    "offset_value",
    "required",
    "text_at",
]

T = TypeVar("T")
JsonObject = Mapping[str, JsonValue]
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
INT64 = 2**63
_OFFSETS: dict[str, tuple[timedelta, str]] = {}  # offsets as WHOOP writes them, read once each
_OFFSETS_KEPT = 4096  # a few hundred exist; the bound is against a stream of made-up ones


def kind(value: object) -> str:
    """What a (non-null) JSON value is, for a reason: numbers are shown, text is not (it may be long)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return repr(value)[:32]
    return "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else "a string"


def required(obj: JsonObject, key: str, where: str) -> JsonValue:
    value = obj.get(key)
    if value is None:
        raise NormalizationError(f"{where}{key}: required, but absent or null")
    return value


def object_at(obj: JsonObject, key: str, where: str) -> JsonObject:
    value = obj.get(key)
    if type(value) is dict:  # the usual case; the readers' fast paths test the exact type
        return value
    value = required(obj, key, where)
    if not isinstance(value, dict):
        raise NormalizationError(f"{where}{key}: expected an object, got {kind(value)}")
    return value


def text_at(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if type(value) is str and 0 < len(value) <= 64:
        return value
    value = required(obj, key, "")
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise NormalizationError(f"{key}: expected a string of 1 to 64 characters, got {kind(value)}")
    return value


def id_str(obj: JsonObject, key: str) -> str:
    value = text_at(obj, key)
    if ":" in value or not value.isprintable() or value != value.strip():
        raise NormalizationError(f"{key}: not a WHOOP v2 id")
    return value


def id_int(obj: JsonObject, key: str) -> int:
    value = obj.get(key)
    if type(value) is int and 0 <= value < INT64:
        return value
    value = required(obj, key, "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise NormalizationError(f"{key}: expected an integer id, got {kind(value)}")
    return int_value(value, key, 0, INT64 - 1)


def int_value(value: JsonValue, where: str, low: float, high: float) -> int:
    if type(value) is int and low <= value <= high:  # the usual case (a bool is not of type int)
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 72.0 where WHOOP documents an integer: no information is lost
    if isinstance(value, bool) or not isinstance(value, int):
        raise NormalizationError(f"{where}: expected an integer, got {kind(value)}")
    if not low <= value <= high:
        raise NormalizationError(f"{where}: outside [{low}, {high}]")  # the value is health data: not said
    return value


def float_value(value: JsonValue, where: str, low: float, high: float) -> float:
    if type(value) is float and low <= value <= high and math.isfinite(value):  # the usual case
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NormalizationError(f"{where}: expected a number, got {kind(value)}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise NormalizationError(f"{where}: outside [{low}, {high}] or not finite")
    return number


def _parsed(value: JsonValue, where: str, expected: str, parse: Callable[[str], T]) -> T:
    """``parse(value)`` of a text ``value``; a reason naming ``where`` when it is not text or not valid."""
    if not isinstance(value, str):
        raise NormalizationError(f"{where}: expected {expected}, got {kind(value)}")
    try:
        return parse(value)
    except ValueError as exc:
        raise NormalizationError(f"{where}: {exc}") from exc


def instant_value(value: JsonValue, where: str) -> datetime:
    moment = _parsed(value, where, "an RFC 3339 date-time", parse_instant)
    if not EARLIEST <= moment < LATEST:
        raise NormalizationError(f"{where}: {moment.isoformat()} is outside 2000-2099")
    return moment


def instant_at(obj: JsonObject, key: str) -> datetime:
    value = obj.get(key)
    moment = whoop_instant(value) if type(value) is str else None  # the usual case, read at once
    if moment is not None and EARLIEST <= moment < LATEST:
        return moment
    return instant_value(required(obj, key, ""), key)


def instant_or_none(obj: JsonObject, key: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else instant_value(value, key)


def offset_value(value: JsonValue, where: str) -> tuple[timedelta, str]:
    known = _OFFSETS.get(value) if type(value) is str else None
    if known is not None:
        return known
    offset = _parsed(value, where, "+hh:mm, -hh:mm or Z", parse_offset)
    known = (offset, format_offset(offset))
    if isinstance(value, str) and len(_OFFSETS) < _OFFSETS_KEPT:
        _OFFSETS[value] = known
    return known


def offset_at(obj: JsonObject, key: str) -> tuple[timedelta, str]:
    value = obj.get(key)
    known = _OFFSETS.get(value) if type(value) is str else None  # the usual case: an offset read before
    return known if known is not None else offset_value(required(obj, key, ""), key)
