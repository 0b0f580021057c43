"""The only code that turns events into bytes and back (msgspec).

``encode`` writes compact JSON, ``event_type`` first, and checks it as a reader would (a Struct
built in Python is not checked when it is built). ``decode`` reads any event or record with
one tagged-union decoder (the type picked by ``event_type``), ``decode_as`` reads one expected
type; both validate strictly in the same pass as they parse (types, ``Meta`` constraints, unknown
fields, aware UTC datetimes). Any failure raises ``SchemaError`` carrying the topic, partition and
offset, which is what a dead-letter record needs, and a reason naming the field (``- at `$.field```).
Decoders are built once per type and kept.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, TypeVar

import msgspec

from schemas.events import EVENT_TYPES, Envelope
from schemas.records import RECORD_TYPES

__all__ = ["SchemaError", "decode", "decode_as", "decode_one_of", "encode"]

M = TypeVar("M", bound=msgspec.Struct)
_MODELS: dict[str, type[Envelope]] = {**EVENT_TYPES, **RECORD_TYPES}
_ENCODER = msgspec.json.Encoder()


class SchemaError(ValueError):
    """A record value that is not a valid event; says where it came from."""

    def __init__(
        self, reason: str, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ):
        where = f" at {topic}[{partition}]@{offset}" if topic is not None else ""
        super().__init__(f"{reason}{where}")
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset


def encode(event: msgspec.Struct, *, validate: bool = True) -> bytes:
    """Compact JSON bytes of an event (deterministic: fields in declaration order).

    A Struct built in Python is not checked against its constraints (msgspec checks when it decodes
    or converts), so by default the bytes are read back with the type's decoder before they are
    returned: what we write is what our readers accept, else SchemaError names the field.
    ``validate=False`` is for an event already checked (``msgspec.convert``, or decoded).
    """
    raw = _ENCODER.encode(event)
    if validate:
        model = type(event)
        try:
            _decoder((model,)).decode(raw)
        except msgspec.DecodeError as exc:
            raise SchemaError(f"invalid {model.__name__}: {exc}") from exc
    return raw


@functools.cache
def _decoder(models: tuple[type[msgspec.Struct], ...]) -> msgspec.json.Decoder[Any]:
    """The JSON decoder of one type, or of the tagged union of several, built once."""
    union: Any = models[0]
    for model in models[1:]:
        union = union | model
    return msgspec.json.Decoder(union)


_ANY: msgspec.json.Decoder[Envelope] = _decoder(tuple(_MODELS.values()))


def decode(
    raw: bytes, topic: str | None = None, partition: int | None = None, offset: int | None = None
) -> Envelope:
    """The event in ``raw``, of the type its ``event_type`` names."""
    try:
        return _ANY.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise SchemaError(_reason(None, raw, exc), topic, partition, offset) from exc


def decode_as(
    model: type[M],
    raw: bytes,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> M:
    """``raw`` validated as ``model``."""
    return decode_one_of((model,), raw, topic, partition, offset)


def decode_one_of(
    models: tuple[type[M], ...],
    raw: bytes,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> M:
    """``raw`` validated as the one of ``models`` (tagged events) that its ``event_type`` names."""
    try:
        return _decoder(models).decode(raw)  # type: ignore[no-any-return] # the decoder of models
    except msgspec.DecodeError as exc:
        raise SchemaError(_reason(models, raw, exc), topic, partition, offset) from exc


# --- reasons (the cold path: only a failed decode comes here) ---------------------------------------


def _reason(models: tuple[type[msgspec.Struct], ...] | None, raw: bytes, exc: msgspec.DecodeError) -> str:
    """What is wrong with ``raw``, naming its type (by ``event_type``) and the field msgspec names.

    msgspec validates while it parses, so a value can be refused for a field before the parser
    reaches a syntax error further on: whether it is JSON at all is asked first.
    """
    if not isinstance(exc, msgspec.ValidationError):
        return _malformed(raw, exc)
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as untyped:
        if not isinstance(untyped, msgspec.ValidationError):  # a syntax error after the refused field
            return _malformed(raw, untyped)
        data = json.loads(raw)  # JSON, with a number beyond float (1e999): read here as infinity
    if not isinstance(data, dict):
        return "not a JSON object"
    if models is not None and len(models) == 1:
        return f"invalid {models[0].__name__}: {exc}"
    event_type = data.get("event_type")
    named = _MODELS.get(event_type) if isinstance(event_type, str) else None
    if named is None:
        return f"unknown event_type {str(event_type)[:64]!r}"
    if models is not None and not any(getattr(m, "event_type", None) == named.event_type for m in models):
        expected = ", ".join(sorted(str(getattr(m, "event_type", m.__name__)) for m in models))
        return f"{named.event_type} does not belong here: expected one of {expected}"
    return f"invalid {named.__name__}: {exc}"


def _malformed(raw: bytes, exc: msgspec.DecodeError) -> str:
    """Not JSON; a non-finite number literal (``NaN``, ``Infinity``) is named with its field."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return f"not JSON: {exc}"
    path = _non_finite(data, "$")
    return f"not JSON: {path} is not a finite number" if path else f"not JSON: {exc}"


def _non_finite(value: object, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"`{path}`"
    items: Any = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            return found
    return None
