"""What one document-log message becomes, as values: its records, or its dead letter (pure).

``normalize_message`` turns one ``whoop.documents.v1`` message into the ``Outgoing`` records of
``wear.records.v1`` (the pure ``processors.normalize`` plus keys and headers: an ``origin`` header
``<topic>[<partition>]@<offset>`` and the document's ``trace_id``). A tombstone (an erasure) is
forwarded as a tombstone with the same key.

What cannot be decoded or normalized is never dropped and never retried forever: it goes to
``<source>.dlq`` as a ``DeadLetter`` (origin topic, partition and offset, raw value in base64, the
error type and reason), and the documents after it keep flowing. ``failure_action`` is the one
place that decides dead-letter versus retry. ``processors.normalizer_runner`` is the I/O around
these functions; ``wear.dlq_redrive`` reuses them to redrive a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from infra.errors import PipelineError
from infra.logs import TRACE_HEADER
from infra.member_keys import Erased, PooledKeys, open_with
from infra.sealing import SealError, is_sealed, seal_value
from processors.normalize import NORMALIZER_VERSION, normalize_document, record_resource_id
from schemas.events import DeadLetter
from schemas.keys import record_key
from schemas.records import DocumentFetched
from schemas.serde import decode_as, encode

__all__ = [
    "ORIGIN_HEADER",
    "STAGE",
    "Action",
    "Outgoing",
    "check_size",
    "dead_letter",
    "failure_action",
    "normalize_message",
    "open_document",
    "seal_record",
]

STAGE = "normalizer"
ORIGIN_HEADER = "origin"
_RESOURCE_TYPES = frozenset(("cycle", "sleep", "recovery", "workout"))
_MAX_RECORD_BYTES = 1_000_000  # under the broker's default message.max.bytes (1 MiB + 12)


class Action(Enum):
    """What to do with a record whose processing raised."""

    DEAD_LETTER = "dead_letter"
    RETRY = "retry"


def failure_action(exc: BaseException) -> Action:
    """The one policy: dead-letter what will fail again, retry what may succeed later.

    Our own errors say so with ``retriable``. A Kafka error is the broker's trouble and is retried,
    except a record too large for it, which will never fit. Anything else came out of the pure
    decode → normalize → encode step: the same input fails the same way every time, so retrying
    would be a crash loop; it is dead-lettered with its error type (a bug there shows up in the DLQ,
    and the fix is a replay).
    """
    if isinstance(exc, PipelineError):
        return Action.RETRY if exc.retriable else Action.DEAD_LETTER
    if isinstance(exc, MessageSizeTooLargeError | RecordTooLargeError):
        return Action.DEAD_LETTER
    if isinstance(exc, KafkaError):
        return Action.RETRY
    return Action.DEAD_LETTER


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def normalize_message(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    target: str,
    normalizer_version: int = NORMALIZER_VERSION,
) -> list[Outgoing]:
    """The records one document-log message gives (pure; raises what ``failure_action`` judges)."""
    origin: tuple[tuple[str, bytes], ...] = ((ORIGIN_HEADER, f"{topic}[{partition}]@{offset}".encode()),)
    if value is None:
        if key is None or not _is_resource_key(key):
            raise ValueError("tombstone without a <user_id>:<resource type>:<id> key")
        return [Outgoing(target, key, None, origin)]
    doc = decode_as(DocumentFetched, value, topic, partition, offset)
    if doc.trace_id is not None:  # the document's trace id (also its header) goes on with its records
        origin = (*origin, (TRACE_HEADER, doc.trace_id.encode()))
    return [
        Outgoing(
            target,
            record_key(record.user_id, doc.resource_type, record_resource_id(record)),
            encode(record, validate=False),  # normalize_document checked it (msgspec.convert)
            origin,
        )
        for record in normalize_document(doc, normalizer_version=normalizer_version)
    ]


def dead_letter(
    message: ConsumerRecord[bytes, bytes],
    exc: BaseException,
    *,
    dlq: str,
    failed_at: datetime,
    omit_value: bool = False,
) -> Outgoing:
    """The ``DeadLetter`` of a message that could not be processed, keyed like the message.

    It goes out in the batch's outbox with the records (``infra.dead_letters`` sends one at a time)."""
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    letter = DeadLetter.of(
        message,
        error_type=type(exc).__name__,
        reason=reason,
        stage=STAGE,
        failed_at=failed_at,
        omit_value=omit_value,
    )
    return Outgoing(dlq, message.key, encode(letter))


def _is_resource_key(key: bytes) -> bool:
    parts = key.split(b":")
    return len(parts) == 3 and all(parts) and parts[1].decode("ascii", "replace") in _RESOURCE_TYPES


def open_document(
    source: PooledKeys | None, keys: dict[str, bytes], user: str | None, value: bytes | None
) -> bytes | Erased | None:
    """A document value as plaintext, or ERASED (``infra.member_keys.open_with``); SealError, so a
    dead letter, for a value that does not open or a sealed one when the normalizer has no keys."""
    if source is None:
        if is_sealed(value):
            raise SealError("a sealed document, but the normalizer was started without keys")
        return value
    return open_with(keys, user, value, source.keys.unopenable)


def seal_record(key: bytes, user: str, out: Outgoing) -> Outgoing:
    if out.value is None:
        return out
    return Outgoing(out.topic, out.key, seal_value(key, user, out.value), out.headers)


def check_size(out: Outgoing) -> None:
    """Refuse a record the broker would refuse (``message.max.bytes``, 1 MiB by default)."""
    size = len(out.key or b"") + len(out.value or b"")
    for name, value in out.headers:
        size += len(name) + len(value)
    if size > _MAX_RECORD_BYTES:
        raise MessageSizeTooLargeError(f"a {size}-byte record is larger than {_MAX_RECORD_BYTES} bytes")
