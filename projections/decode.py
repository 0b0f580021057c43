"""The projection's reader of the records topic: one Kafka record into what the fold needs, in one pass.

:func:`decode_record` decodes the value with the contract's own types (``schemas.records``, through
``schemas.serde``'s msgspec decoder of the records union), so types, bounds, lengths, patterns,
unknown fields and aware UTC datetimes are checked in the pass that parses it. Then what PostgreSQL
needs (``rows.Storable``: integers within bigint, no NUL in a string; no NUL in the document), and
the table row is built directly from the decoded record.

The decoded types are the canonical ones with a single change, made here from them (so the two
cannot drift): the WHOOP document is kept as ``msgspec.Raw``, the exact JSON text the record
carries. The row's ``document`` column is that text, neither parsed into objects nor written again.
:func:`projections.rows.decoded_of` gives the same row for the same canonical record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any

import msgspec

from schemas.serde import SchemaError, decode_one_of

from .errors import RecordRejected
from .rows import (
    ID_FIELDS,
    RESOURCE_TYPES,
    ROW_SOURCES,
    Decoded,
    Purge,
    ResourceType,
    Storable,
    has_nul,
    instant_or,
    purge_of,
    zones_text,
)

__all__ = ["decode_record"]

_NUL = "\\u0000"  # the only way a JSON string holds a NUL (a raw control character is not JSON)
_KINDS = {list: "array", str: "str", int: "int", float: "float", bool: "bool", type(None): "null"}
_STAND_IN = {"created_at": "whoop_updated_at", "_zones": "zone_ms"}  # row columns the reader makes


class _CreatedAt(msgspec.Struct):
    """The one field of a recovery's WHOOP document that the row needs; the others are skipped."""

    created_at: Any = None


_CREATED_AT = msgspec.json.Decoder(_CreatedAt)


@dataclass(frozen=True)
class _Shape:
    """How to check one record type and build its row."""

    resource_type: ResourceType
    event_type: str
    storable: Storable  # what PostgreSQL needs of the fields
    resource_id: Callable[[Any], Any]
    columns: Callable[[Any], tuple[Any, ...]] | None  # the row's sources; None: a deletion
    document_at: int = -1
    created_at_at: int = -1
    zones_at: int = -1


def _as_text(model: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """``model`` with its ``document`` kept as raw JSON text (a subclass: every other field, tag,
    constraint and check is the contract's own)."""
    if "document" not in model.__struct_fields__:
        return model
    return msgspec.defstruct(
        f"{model.__name__}AsText",
        [("document", msgspec.Raw)],
        bases=(model,),
        tag=model.__struct_config__.tag,
        frozen=True,
        kw_only=True,
        module=__name__,
    )


def _shape(model: type[msgspec.Struct], resource_type: ResourceType) -> _Shape:
    shape = _Shape(
        resource_type=resource_type,
        event_type=str(model.__struct_config__.tag),
        storable=Storable(model),
        resource_id=attrgetter(ID_FIELDS[resource_type]),
        columns=None,
    )
    if "document" not in model.__struct_fields__:
        return shape
    sources = ROW_SOURCES[resource_type]
    return replace(
        shape,
        columns=attrgetter(*(_STAND_IN.get(source, source) for source in sources)),
        document_at=sources.index("document"),
        created_at_at=sources.index("created_at") if "created_at" in sources else -1,
        zones_at=sources.index("_zones") if "_zones" in sources else -1,
    )


_SHAPES: dict[type, _Shape] = {
    _as_text(model): _shape(model, resource_type) for model, resource_type in RESOURCE_TYPES.items()
}
_TYPES: tuple[type[msgspec.Struct], ...] = tuple(_SHAPES)


def decode_record(
    key: bytes | None, value: bytes | None, topic: str = "", partition: int = 0, offset: int = 0
) -> Decoded | Purge:
    """One Kafka record of the records topic as something to fold; RecordRejected otherwise."""
    if value is None:
        return purge_of(key)
    try:
        record: Any = decode_one_of(_TYPES, value, topic, partition, offset)
    except SchemaError as exc:
        raise RecordRejected(exc.reason) from exc
    shape = _SHAPES[type(record)]
    shape.storable(record)
    if shape.columns is None:
        return Decoded(
            shape.resource_type,
            record.user_id,
            shape.resource_id(record),
            (record.occurred_at, record.normalizer_version),
            None,
            record.whoop_user_id,
            record.occurred_at,
        )
    row = list(shape.columns(record))
    raw: msgspec.Raw = record.document
    text = str(raw, "utf-8")
    if text[:1] != "{":
        kind = _KINDS.get(type(msgspec.json.decode(raw)), "a value")
        raise RecordRejected(f"invalid {shape.event_type}: Expected `object`, got `{kind}` - at `$.document`")
    if _NUL in text and has_nul(msgspec.json.decode(raw)):
        raise RecordRejected(f"{shape.event_type}.document cannot be stored (NUL)")
    row[shape.document_at] = text
    if shape.created_at_at >= 0:
        row[shape.created_at_at] = instant_or(_CREATED_AT.decode(raw).created_at, record.whoop_updated_at)
    if shape.zones_at >= 0:
        row[shape.zones_at] = zones_text(record.zone_ms)
    return Decoded(
        shape.resource_type,
        record.user_id,
        shape.resource_id(record),
        (record.whoop_updated_at, record.normalizer_version),
        tuple(row),
        record.whoop_user_id,
        record.occurred_at,
    )
