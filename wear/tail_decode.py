"""What ``wear tail`` prints for one Kafka record (pure): which topics it may tail, and each record decoded
as one JSON line or one human line.

A value reaches here as plaintext (opened with its member's data key by :mod:`wear.tail`), ``ERASED``
(its member's key was destroyed) or ``None`` (a tombstone). Events and records are decoded with
``schemas.serde.decode`` (the type named by ``event_type``); dead-letter topics hold ``DeadLetter`` s.
A value that does not decode is shown with the reason, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from infra.member_keys import Erased
from schemas.events import DeadLetter
from schemas.serde import SchemaError, decode, decode_as
from schemas.topics import DLQ_SUFFIX, GENERATION_SEPARATOR, TOPICS

__all__ = ["TailRecord", "describe", "human_line", "pipeline_topics", "resolve_topic"]


def pipeline_topics(configured: Iterable[str]) -> frozenset[str]:
    """The registry's topics, the topics the stages are configured with, and their dead-letter twins."""
    names = {spec.name for spec in TOPICS} | set(configured)
    return frozenset(names | {name + DLQ_SUFFIX for name in names if not name.endswith(DLQ_SUFFIX)})


def resolve_topic(name: str, known: frozenset[str]) -> str | None:
    """``name`` when it is a pipeline topic: one of ``known``, or a records generation of one of them
    (``<records topic>.g<N>``, and its ``.dlq``); None otherwise."""
    if name in known:
        return name
    base = name.removesuffix(DLQ_SUFFIX)
    found = re.fullmatch(rf"(.+){re.escape(GENERATION_SEPARATOR)}([2-9]|[1-9]\d+)", base)
    if found and found.group(1) in known and not found.group(1).endswith(DLQ_SUFFIX):
        return name
    return None


@dataclass(frozen=True)
class TailRecord:
    """One Kafka record as read: where it is, its key, and its value opened (or ERASED, or None)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | Erased | None
    unopenable: str | None = None  # why a sealed value did not open (then ``value`` is None)


def _decoded(record: TailRecord, value: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The decoded value as plain data, or the reason it does not decode."""
    try:
        if record.topic.endswith(DLQ_SUFFIX):
            event: msgspec.Struct = decode_as(
                DeadLetter, value, record.topic, record.partition, record.offset
            )
        else:
            event = decode(value, record.topic, record.partition, record.offset)
    except SchemaError as exc:
        return None, str(exc)
    data: dict[str, Any] = msgspec.to_builtins(event)
    return data, None


def describe(record: TailRecord) -> dict[str, Any]:
    """The JSON line of one record: ``topic``, ``partition``, ``offset``, ``timestamp``, ``key``,
    ``kind`` (``event``, ``dead_letter``, ``tombstone``, ``erased``, ``unopenable`` or ``undecodable``),
    ``event`` (the decoded value, or null) and ``error`` (why it does not open or decode, or null)."""
    event: dict[str, Any] | None = None
    error: str | None = None
    if record.unopenable is not None:
        kind, error = "unopenable", record.unopenable
    elif record.value is None:
        kind = "tombstone"
    elif isinstance(record.value, Erased):
        kind = "erased"
    else:
        event, error = _decoded(record, record.value)
        kind = (
            "undecodable"
            if event is None
            else "dead_letter"
            if record.topic.endswith(DLQ_SUFFIX)
            else "event"
        )
    moment = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "key": None if record.key is None else record.key.decode("utf-8", "replace"),
        "kind": kind,
        "event": event,
        "error": error,
    }


_LEFT_OUT = frozenset({"event_type", "user_id", "event_id", "schema_version", "source", "document"})
"""Not repeated in a human line: the type and user lead it; ids and the raw WHOOP document are in --json."""


def human_line(line: dict[str, Any]) -> str:
    """One line for a terminal: when, where, what, whose, then the event's own fields as compact JSON
    (without the raw WHOOP document, ids and nulls: ``--json`` has everything)."""
    where = f"{line['timestamp']} {line['topic']}[{line['partition']}]@{line['offset']}"
    event = line["event"]
    if line["kind"] == "tombstone":
        return f"{where} tombstone key={line['key']}"
    if line["kind"] == "erased":
        return f"{where} ERASED (the member's data key was destroyed) key={line['key']}"
    if event is None:
        return f"{where} {line['kind']} key={line['key']}: {line['error']}"
    if line["kind"] == "dead_letter":
        origin = f"{event['origin_topic']}[{event['origin_partition']}]@{event['origin_offset']}"
        return (
            f"{where} DeadLetter from {origin} stage={event['stage']} "
            f"{event['error_type']}: {event['reason']} key={event['key']}"
        )
    rest = {name: value for name, value in event.items() if name not in _LEFT_OUT and value is not None}
    return f"{where} {event['event_type']} user={event['user_id']} {orjson.dumps(rest).decode()}"
