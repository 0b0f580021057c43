"""Reading a verified WHOOP webhook body and turning it into our ``WebhookReceived`` event. Pure.

The body is ``{"user_id": int, "id": uuid-string (v2) | int (v1), "type": str, "trace_id": str}``
(``whoop-api-v2.md`` §10.2). Unknown extra fields are ignored (WHOOP may add some). A ``type``
outside the six known event types is *ignored*, not an error, whatever the other fields look like:
a future event may have another shape. For the known types every field is required and typed.

The event id is derived from ``(trace_id, type, id)``, so a duplicate delivery of the same webhook
becomes the same event (same id, same key, same partition) and downstream dedupe is a lookup.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import cast, get_args

import orjson

from schemas.events import WebhookReceived, WhoopEventType
from schemas.identity import user_id_for_whoop_member
from schemas.keys import record_key
from schemas.serde import encode

__all__ = [
    "KNOWN_TYPES",
    "Ignored",
    "Malformed",
    "WhoopWebhook",
    "event_id_for",
    "parse_webhook",
    "to_record",
    "user_id_of",
    "uuid5_str",
]

KNOWN_TYPES: frozenset[str] = frozenset(get_args(WhoopEventType))
_EVENT_NAMESPACE = uuid.UUID("0b9d7c55-3f0e-5a4e-8f61-2d8f4b9c1a70")
_MAX_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class WhoopWebhook:
    """A well-formed webhook of a known type."""

    whoop_user_id: int
    resource_id: str
    event_type: WhoopEventType
    trace_id: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed JSON object whose ``type`` we do not know (kept out of the pipeline)."""

    event_type: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """The body is not a webhook: ``code`` is machine-readable, ``message`` names the field."""

    code: str
    message: str


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_webhook(raw: bytes) -> WhoopWebhook | Ignored | Malformed:
    """Strictly read a verified body."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Malformed("malformed_json", "the body is not valid JSON")
    if not isinstance(data, dict):
        return Malformed("invalid_payload", "the body is not a JSON object")
    event_type = data.get("type")
    if not isinstance(event_type, str) or not event_type:
        return Malformed("invalid_field", "'type' must be a non-empty string")
    if event_type not in KNOWN_TYPES:
        return Ignored(event_type[:64])
    for name in ("user_id", "id", "trace_id"):
        if name not in data:
            return Malformed("missing_field", f"{name!r} is required")
    user_id, resource, trace_id = data["user_id"], data["id"], data["trace_id"]
    if not _is_int(user_id) or not 0 <= user_id <= _MAX_INT64:
        return Malformed("invalid_field", "'user_id' must be a non-negative 64-bit integer")
    if _is_int(resource) and 0 <= resource <= _MAX_INT64:
        resource_id = str(resource)
    elif isinstance(resource, str) and 0 < len(resource) <= 64 and resource.isprintable():
        resource_id = resource
    else:
        return Malformed("invalid_field", "'id' must be a UUID string or a non-negative integer")
    if not isinstance(trace_id, str) or not 0 < len(trace_id) <= 128 or not trace_id.isprintable():
        return Malformed("invalid_field", "'trace_id' must be a non-empty string of at most 128 characters")
    return WhoopWebhook(user_id, resource_id, cast(WhoopEventType, event_type), trace_id)


def uuid5_str(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, without building UUID objects (this is the hot path)."""
    digest = bytearray(
        hashlib.sha1(namespace.bytes + name.encode("utf-8"), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_user_id = lru_cache(maxsize=65_536)(user_id_for_whoop_member)


def user_id_of(webhook: WhoopWebhook) -> str:
    """Our user id of the webhook's member."""
    return _user_id(webhook.whoop_user_id)


def event_id_for(webhook: WhoopWebhook) -> str:
    """The same id for every delivery of the same webhook."""
    return uuid5_str(_EVENT_NAMESPACE, f"{webhook.trace_id}\x00{webhook.event_type}\x00{webhook.resource_id}")


def to_record(webhook: WhoopWebhook, *, timestamp_ms: int, now: datetime) -> tuple[bytes, bytes]:
    """The Kafka ``(key, value)`` of the ``WebhookReceived`` event for ``webhook``."""
    user_id = user_id_of(webhook)
    event = WebhookReceived(
        event_id=event_id_for(webhook),
        occurred_at=now,
        user_id=user_id,
        source="ingest",
        trace_id=webhook.trace_id,
        whoop_user_id=webhook.whoop_user_id,
        whoop_event_type=webhook.event_type,
        resource_id=webhook.resource_id,
        whoop_trace_id=webhook.trace_id,
        signature_timestamp_ms=timestamp_ms,
    )
    return record_key(user_id, "webhook", webhook.resource_id), encode(event)
