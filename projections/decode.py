"""The projection's reader of the records topic: one Kafka record into what the fold needs, cheaply.

The normalizer validated every record against its canonical model before producing it; validating
it again here through pydantic cost the projection most of its CPU. :func:`decode_record` parses
the value once with orjson and checks each field against the constraints of the canonical model
that ``event_type`` names: required and unknown fields, JSON types, bounds, lengths and patterns,
all derived once from ``schemas.records`` (so the two cannot drift apart), plus what PostgreSQL
needs (integers within bigint, no NUL in a string). It then builds the table row directly, the
WHOOP document being the exact text the record carries (no second serialization).

It accepts only the canonical form, the one the normalizer's encoder writes (JSON integers for
integers, ISO 8601 timestamps with seconds); a record it is not sure about goes to the contract's
reader (``apply.read_record``), which alone decides a rejection and says why. Both readers give
the same row for a record either accepts.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson

from .apply import (
    ID_FIELDS,
    RESOURCE_TYPES,
    ROW_SOURCES,
    Decoded,
    Purge,
    ResourceType,
    created_at_of,
    decoded_of,
    document_text,
    has_nul,
    read_record,
)

__all__ = ["decode_record"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_KEY = b'"document":'


@dataclass(frozen=True)
class _Shape:
    """How to check one canonical model's records, and how to build its row."""

    resource_type: ResourceType
    id_field: str
    check: Callable[[dict[str, Any]], bool]
    source: str  # the generated check, for reading
    zones: str | None
    sources: tuple[str, ...] | None  # the record's field behind each row column; None: a deletion


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None`` and ``Annotated``, and whether it admits None."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        (annotation,) = args
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, nullable


def _bound(metadata: list[Any], name: str) -> Any:
    return next((getattr(item, name) for item in metadata if getattr(item, name, None) is not None), None)


def _field_check(model: Any, name: str, info: Any, constants: dict[str, object]) -> list[str]:
    """The lines that check (and convert) ``data[name]``, the value being in ``v``."""
    base, _ = _unwrap(info.annotation)
    meta = list(info.metadata)
    ge, le = _bound(meta, "ge"), _bound(meta, "le")
    if base is str:
        lines = ['if type(v) is not str or "\\x00" in v or "}" in v: return False']
        if _bound(meta, "min_length"):
            lines.append(f"if len(v) < {_bound(meta, 'min_length')}: return False")
        if _bound(meta, "max_length") is not None:
            lines.append(f"if len(v) > {_bound(meta, 'max_length')}: return False")
        if _bound(meta, "pattern") is not None:
            constants[f"P_{name}"] = re.compile(_bound(meta, "pattern"))
            lines.append(f"if P_{name}.match(v) is None: return False")
        return lines
    if base is int:
        low = _INT64_MIN if ge is None else max(ge, _INT64_MIN)
        high = _INT64_MAX if le is None else min(le, _INT64_MAX)
        return [f"if type(v) is not int or v < {low} or v > {high}: return False"]
    if base is float:
        lines = [
            f"if type(v) is int: v = data[{name!r}] = float(v)",
            "elif type(v) is not float: return False",
        ]
        if ge is not None:
            lines.append(f"if v < {ge!r}: return False")
        if le is not None:
            lines.append(f"if v > {le!r}: return False")
        return lines
    if base is bool:
        return ["if v is not True and v is not False: return False"]
    if get_origin(base) is Literal:
        constants[f"L_{name}"] = frozenset(get_args(base))
        return [f"if v not in L_{name}: return False"]
    if base is datetime:
        return [
            # YYYY-MM-DDTHH:MM:SS[.f]Z, as the normalizer writes it (UTC: the Z)
            'if type(v) is not str or len(v) < 20 or v[-1] != "Z" or v[10] != "T": return False',
            'if v[13] != ":" or v[16] != ":" or v[19] not in ".Z": return False',
            f"data[{name!r}] = datetime.fromisoformat(v)",
        ]
    if base is date:
        return [
            'if type(v) is not str or len(v) != 10 or v[4] != "-" or v[7] != "-": return False',
            f"data[{name!r}] = date.fromisoformat(v)",
        ]
    if get_origin(base) is tuple and set(get_args(base)) == {int}:
        size = len(get_args(base))
        return [
            f"if type(v) is not list or len(v) != {size}: return False",
            f"if not all(type(i) is int and {_INT64_MIN} <= i <= {_INT64_MAX} for i in v): return False",
        ]
    if name == "document":
        return ["if type(v) is not dict: return False"]
    raise TypeError(f"{model.__name__}.{name}: no fast check for {base!r}")


def _check_source(model: Any, constants: dict[str, object]) -> str:
    """Python source of a function that checks a parsed record against ``model``'s fields."""
    fields = model.model_fields
    required = {name for name, info in fields.items() if info.is_required()}
    constants["REQUIRED"], constants["ALLOWED"] = frozenset(required), frozenset(fields)
    body = ["keys = data.keys()", "if not (REQUIRED <= keys <= ALLOWED): return False"]
    for name, info in fields.items():
        lines = _field_check(model, name, info, constants)
        _, nullable = _unwrap(info.annotation)
        if nullable:
            body += [f"v = data.get({name!r})", "if v is not None:", *("    " + line for line in lines)]
        elif name in required:
            body += [f"v = data[{name!r}]", *lines]
        else:  # absent: the model's default
            body += [f"if {name!r} in keys:", f"    v = data[{name!r}]", *("    " + line for line in lines)]
    body.append("return True")
    return (
        "def check(data):\n    try:\n"
        + "".join(f"        {line}\n" for line in body)
        + ("    except ValueError:\n        return False\n")
    )


def _shape(model: Any, resource_type: ResourceType, recorded: bool) -> _Shape:
    constants: dict[str, object] = {
        "datetime": datetime,
        "date": date,
    }
    source = _check_source(model, constants)
    exec(source, constants)  # noqa: S102 - source generated above from the canonical models only
    zones = next(
        (n for n, i in model.model_fields.items() if get_origin(_unwrap(i.annotation)[0]) is tuple), None
    )
    return _Shape(
        resource_type=resource_type,
        id_field=ID_FIELDS[resource_type],
        check=constants["check"],  # type: ignore[arg-type]
        source=source,
        zones=zones,
        sources=ROW_SOURCES[resource_type] if recorded else None,
    )


_SHAPES: dict[str, _Shape] = {
    # a recorded resource carries its WHOOP document, a deletion does not
    model.model_fields["event_type"].default: _shape(model, resource_type, "document" in model.model_fields)
    for model, resource_type in RESOURCE_TYPES.items()
}


def decode_record(
    key: bytes | None, value: bytes | None, topic: str = "", partition: int = 0, offset: int = 0
) -> Decoded | Purge:
    """One Kafka record of the records topic as something to fold; RecordRejected otherwise."""
    if value is not None:
        decoded = _fast(value)
        if decoded is not None:
            return decoded
    event = read_record(key, value, topic, partition, offset)
    return event if isinstance(event, Purge | Decoded) else decoded_of(event)


def _fast(value: bytes) -> Decoded | None:
    """The record, when it is canonical and valid; None when the contract's reader must decide."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    event_type = data.get("event_type")
    shape = _SHAPES.get(event_type) if type(event_type) is str else None
    if shape is None or not shape.check(data):
        return None
    user_id: str = data["user_id"]
    if shape.sources is None:
        version = (data["occurred_at"], data["normalizer_version"])
        return Decoded(
            shape.resource_type,
            user_id,
            data[shape.id_field],
            version,
            None,
            data["whoop_user_id"],
            data["occurred_at"],
        )
    document = data["document"]
    if shape.resource_type == "recovery":
        data["created_at"] = created_at_of(document, data["whoop_updated_at"])
    if shape.zones is not None:
        zones = data.get(shape.zones)
        data["_zones"] = None if zones is None else "{" + ",".join(map(str, zones)) + "}"
    text = _document_span(value, data, shape)
    if "\\u0000" in text and has_nul(document):
        return None  # not storable: the contract's reader rejects it with its reason
    data["document"] = text
    return Decoded(
        shape.resource_type,
        user_id,
        data[shape.id_field],
        (data["whoop_updated_at"], data["normalizer_version"]),
        tuple(map(data.get, shape.sources)),
        data["whoop_user_id"],
        data["occurred_at"],
    )


def _document_span(value: bytes, data: dict[str, Any], shape: _Shape) -> str:
    """The document's JSON text exactly as the record carries it.

    The first ``"document":`` of a valid record is its top-level key (no other field is an object,
    and a string cannot hold an unescaped quote), and its value ends at the last ``}`` before the
    record's own, unless a string field after it holds a ``}``: then it is serialized again.
    """
    start = value.find(_KEY) + len(_KEY)
    if value[start : start + 1] != b"{":
        return document_text(data["document"])
    end = value.rfind(b"}", start, value.rfind(b"}"))
    return value[start : end + 1].decode()
