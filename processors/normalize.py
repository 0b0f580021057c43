"""The normalizer: WHOOP documents in, canonical records out. Pure: no clients, no await, no clock.

``normalize_document(doc, normalizer_version=...)`` turns one ``DocumentFetched`` from
``whoop.documents.v1`` into the records for ``wear.records.v1``: a ``CycleRecorded``,
``SleepRecorded``, ``RecoveryRecorded`` or ``WorkoutRecorded`` for a fetched document, the matching
``*Deleted`` for a deletion. Anything it cannot normalize raises ``NormalizationError`` with a
precise reason (a JSON path and what is wrong there), and nothing else: the runner dead-letters it.

The parts, each a module of its own:

- ``processors.normalize_by_type``: one function per resource type (a cycle, a sleep, a recovery
  dated by its sleep from ``context``, a workout);
- ``processors.bounded_fields``: ``BOUNDS`` and the readers of a document's values within them;
- ``processors.whoop_fields``: the strict readers of WHOOP fields and the reasons they give;
- ``processors.record_envelope``: the record's envelope, its deterministic ``event_id`` and the
  check against its contract.

Reading WHOOP (whoop-api-v2.md §3, §6, §12): unknown fields are ignored, absent and ``null`` are the
same thing, timestamps are RFC 3339 (``Z``, milliseconds), integral floats are accepted where WHOOP
documents an integer (``72.0``) but ``72.5`` is not, booleans are never numbers, and the fields
WHOOP marks as required must be there. ``score`` is read only when ``score_state`` is ``SCORED``
(and must then be present); a pending or unscorable record has no values.

Units (``schemas.units``): kJ become kcal; durations stay milliseconds, percentages 0-100, HRV
RMSSD milliseconds, strain 0-21. Every value is checked against ``BOUNDS`` (keyed by record field):
a value outside them is not physiology, it is a bug upstream, and it is dead-lettered rather
than served.

Determinism: the same document gives the same records, byte for byte. A record's ``event_id`` is
a uuid5 of the source document's ``event_id``, the record type and the normalizer version; its
``occurred_at`` is WHOOP's ``updated_at`` (a deletion's is the deletion document's ``occurred_at``).
A recovery deletion's ``resource_id`` is the cycle id the fetcher resolved; the sleep id comes from
``context`` when known. ``NORMALIZER_VERSION`` names the code that made a record: bump it here when
a change of this code changes a record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from processors import whoop_fields as wf
from processors.bounded_fields import BOUNDS
from processors.errors import NormalizationError
from processors.normalize_by_type import (
    normalize_cycle,
    normalize_recovery,
    normalize_sleep,
    normalize_workout,
)
from processors.record_envelope import RECORD_NAMESPACE, SOURCE, Record, envelope, record_event_id, validated
from schemas.records import (
    CycleDeleted,
    DocumentFetched,
    RecoveryDeleted,
    SleepDeleted,
    SleepRecorded,
    WorkoutDeleted,
    WorkoutRecorded,
)

__all__ = [
    "BOUNDS",
    "NORMALIZER_VERSION",
    "RECORD_NAMESPACE",
    "SOURCE",
    "Record",
    "normalize_cycle",
    "normalize_deletion",
    "normalize_document",
    "normalize_recovery",
    "normalize_sleep",
    "normalize_workout",
    "record_event_id",
    "record_resource_id",
]

NORMALIZER_VERSION: Final = 1


def record_resource_id(record: Record) -> str:
    """The resource id in a record's key: the WHOOP id (a recovery's is its ``cycle_id``)."""
    if isinstance(record, SleepRecorded | SleepDeleted):
        return record.sleep_id
    if isinstance(record, WorkoutRecorded | WorkoutDeleted):
        return record.workout_id
    return str(record.cycle_id)


def normalize_document(doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION) -> list[Record]:
    """The records one document gives; raises ``NormalizationError`` (only) when it cannot."""
    if doc.deleted:
        return [normalize_deletion(doc, normalizer_version=normalizer_version)]
    return [_BY_TYPE[doc.resource_type](doc, normalizer_version)]


def normalize_deletion(
    doc: DocumentFetched, *, normalizer_version: int = NORMALIZER_VERSION
) -> CycleDeleted | SleepDeleted | RecoveryDeleted | WorkoutDeleted:
    """The ``*Deleted`` record of a deletion document (``deleted=True``; any document is ignored)."""
    common = envelope(doc, normalizer_version, _DELETED[doc.resource_type], doc.occurred_at, {})
    resource_id = doc.resource_id
    if doc.resource_type == "sleep":
        return validated(SleepDeleted, {**common, "sleep_id": resource_id})
    if doc.resource_type == "workout":
        return validated(WorkoutDeleted, {**common, "workout_id": resource_id})
    if not resource_id.isdigit() or not resource_id.isascii():
        raise NormalizationError(
            f"resource_id: a {doc.resource_type} deletion needs a cycle id, not an opaque id"
        )
    cycle_id = wf.int_value(int(resource_id), "resource_id", 0, wf.INT64 - 1)
    if doc.resource_type == "cycle":
        return validated(CycleDeleted, {**common, "cycle_id": cycle_id})
    sleep = doc.context.get("sleep")
    sleep_id = sleep.get("id") if isinstance(sleep, dict) else doc.context.get("sleep_id")
    if sleep_id is not None and not isinstance(sleep_id, str):
        raise NormalizationError(f"context.sleep_id: expected a string, got {wf.kind(sleep_id)}")
    return validated(RecoveryDeleted, {**common, "cycle_id": cycle_id, "sleep_id": sleep_id})


_BY_TYPE: Final[dict[str, Callable[[DocumentFetched, int], Record]]] = {
    "cycle": normalize_cycle,
    "sleep": normalize_sleep,
    "recovery": normalize_recovery,
    "workout": normalize_workout,
}
_DELETED: Final[dict[str, type[Record]]] = {
    "cycle": CycleDeleted,
    "sleep": SleepDeleted,
    "recovery": RecoveryDeleted,
    "workout": WorkoutDeleted,
}
