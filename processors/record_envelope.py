"""The envelope of a canonical record and its build, checked against its contract (pure).

Every record the normalizer makes carries the same envelope: a deterministic ``event_id`` (a uuid5
of the source document's ``event_id``, the record type and the normalizer version:
:func:`record_event_id`), ``occurred_at`` (WHOOP's ``updated_at``; a deletion's is the deletion
document's ``occurred_at``), the member, ``source``, ``causation_id`` (the document's ``event_id``),
``trace_id`` and ``normalizer_version``. :func:`build` adds it to the fields a
``processors.normalize_by_type`` function read, and :func:`validated` makes the record with
``msgspec.convert``: built and checked against its contract in one pass.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Final, TypeVar

import msgspec

from processors import whoop_fields as wf
from processors.errors import NormalizationError
from schemas.records import (
    CycleDeleted,
    CycleRecorded,
    DocumentFetched,
    RecoveryDeleted,
    RecoveryRecorded,
    ScoreState,
    SleepDeleted,
    SleepRecorded,
    WorkoutDeleted,
    WorkoutRecorded,
)

__all__ = ["RECORD_NAMESPACE", "SOURCE", "Record", "build", "envelope", "record_event_id", "validated"]

SOURCE: Final = "normalizer"
RECORD_NAMESPACE: Final = uuid.UUID("9b7e3c1a-52d4-5f08-8a6e-2d41c07b93f5")
_NAMESPACE_SHA1: Final = hashlib.sha1(RECORD_NAMESPACE.bytes, usedforsecurity=False)
_NO_DOCUMENT: Final[dict[str, object]] = {}
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 4122 variant

Record = (
    CycleRecorded
    | SleepRecorded
    | RecoveryRecorded
    | WorkoutRecorded
    | CycleDeleted
    | SleepDeleted
    | RecoveryDeleted
    | WorkoutDeleted
)
_R = TypeVar("_R", CycleRecorded, SleepRecorded, RecoveryRecorded, WorkoutRecorded)
_M = TypeVar("_M", bound=msgspec.Struct)


def record_event_id(source_event_id: str, event_type: str, normalizer_version: int) -> str:
    """The ``event_id`` of a record: the same document and normalizer always give the same one.

    ``str(uuid.uuid5(RECORD_NAMESPACE, f"{source_event_id}/{event_type}/{normalizer_version}"))``,
    computed without building ``UUID`` objects (``uuid.uuid5`` costs three times as much).
    """
    digest = _NAMESPACE_SHA1.copy()
    digest.update(f"{source_event_id}/{event_type}/{normalizer_version}".encode())
    h = digest.hexdigest()  # the first 32 hex digits are the UUID's, its version and variant set here
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def envelope(
    doc: DocumentFetched, version: int, model: type[Record], occurred_at: datetime, fields: dict[str, object]
) -> dict[str, object]:
    """``fields`` with the record's envelope added (and returned)."""
    fields["event_id"] = record_event_id(doc.event_id, model.event_type, version)
    fields["occurred_at"] = occurred_at
    fields["user_id"] = doc.user_id
    fields["source"] = SOURCE
    fields["causation_id"] = doc.event_id
    fields["trace_id"] = doc.trace_id
    fields["whoop_user_id"] = doc.whoop_user_id
    fields["normalizer_version"] = version
    return fields


def build(
    model: type[_R],
    doc: DocumentFetched,
    version: int,
    body: wf.JsonObject,
    state: ScoreState,
    fields: dict[str, object],
) -> _R:
    """The record of a fetched document: ``fields`` (read from ``body``), its envelope, its version
    (WHOOP's ``updated_at``), its score state and the document itself."""
    updated_at = wf.instant_at(body, "updated_at")
    envelope(doc, version, model, updated_at, fields)
    fields["whoop_updated_at"] = updated_at
    fields["score_state"] = state
    if type(body) is not dict:  # not as decoded: the contract checks it too
        fields["document"] = body
        return validated(model, fields)
    # a document decoded as DocumentFetched is a dict[str, JsonValue] already: converting it would
    # only copy it, key by key; the record takes it as it is
    fields["document"] = _NO_DOCUMENT
    record = validated(model, fields)
    msgspec.structs.force_setattr(record, "document", body)
    return record


def validated(model: type[_M], fields: dict[str, object]) -> _M:
    """The record, built and checked against its contract in one pass (``msgspec.convert``).

    A safety net: the readers' checks are stricter than the contract, so it should never refuse.
    """
    try:
        return msgspec.convert(fields, model)
    except msgspec.ValidationError as exc:
        raise NormalizationError(f"invalid {model.__name__}: {exc}") from exc
