"""The only code that turns events into bytes and back (orjson).

``encode`` writes compact JSON. ``decode`` picks the model from ``event_type`` and validates
strictly; any failure raises ``SchemaError`` carrying the topic, partition and offset, which is
what a dead-letter record needs.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from schemas.events import EVENT_TYPES, Envelope
from schemas.records import RECORD_TYPES

__all__ = ["SchemaError", "decode", "decode_as", "encode"]

M = TypeVar("M", bound=BaseModel)
_MODELS: dict[str, type[Envelope]] = {**EVENT_TYPES, **RECORD_TYPES}


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


def encode(model: BaseModel) -> bytes:
    """Compact JSON bytes of a model."""
    return orjson.dumps(model.model_dump(mode="json"))


def _load(raw: bytes, topic: str | None, partition: int | None, offset: int | None) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"not JSON: {exc}", topic, partition, offset) from exc


def decode(
    raw: bytes, topic: str | None = None, partition: int | None = None, offset: int | None = None
) -> Envelope:
    """The event in ``raw``, of the model its ``event_type`` names."""
    data = _load(raw, topic, partition, offset)
    if not isinstance(data, dict):
        raise SchemaError("not a JSON object", topic, partition, offset)
    event_type = data.get("event_type")
    model = _MODELS.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise SchemaError(f"unknown event_type {str(event_type)[:64]!r}", topic, partition, offset)
    return decode_as(model, raw, topic, partition, offset, _parsed=data)


def decode_as(
    model: type[M],
    raw: bytes,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    *,
    _parsed: object = None,
) -> M:
    """``raw`` validated as ``model``."""
    data = _parsed if _parsed is not None else _load(raw, topic, partition, offset)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise SchemaError(f"invalid {model.__name__}: {errors}", topic, partition, offset) from exc
