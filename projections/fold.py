"""The batch fold of the projection: records in log order → the reduced row changes of one batch.

Every resource has a version ``(updated_at, normalizer_version)``: WHOOP's ``updated_at`` for a
recorded resource, the deletion record's ``occurred_at`` for a deletion; the normalizer version
breaks ties, so a re-normalization of the same WHOOP document (a bug fix replayed) replaces what it
fixes. The state of a resource is the greatest version seen, a deletion winning a tie. That merge is
commutative and associative, so a batch can be reduced to at most one upsert and one deletion per
resource and the result does not depend on where batches start or end: a replay after a crash, a
duplicate or an out-of-order version changes nothing. A Kafka tombstone (null value, the erasure of a
resource) is the one non-commutative event: it forgets the resource entirely, then later records of
the batch apply again (the log orders them).

No I/O, no clock, no logging: :func:`plan_batch` folds records (canonical, decoded by
``projections.rows`` or ``projections.decode``, or purges) into :class:`Changes`, which
``projections.store`` (live) and ``projections.bulk`` (rebuilds) write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from .rows import Decoded, Projectable, Purge, ResourceType, Row, Version, decoded_of

__all__ = ["Changes", "StatusDelta", "TableChanges", "plan_batch"]

K = TypeVar("K", int, str)


@dataclass
class TableChanges(Generic[K]):
    """The reduced changes of one table in one batch, keyed by ``(user_id, resource id)``."""

    resource_type: ResourceType
    purges: set[tuple[str, K]] = field(default_factory=set)
    deletes: dict[tuple[str, K], Version] = field(default_factory=dict)
    upserts: dict[tuple[str, K], tuple[Version, Row]] = field(default_factory=dict)

    def upsert(self, key: tuple[str, K], version: Version, row: Row) -> None:
        """Keep ``row`` when its version is greater than every upsert and deletion seen for ``key``."""
        deleted = self.deletes.get(key)
        if deleted is not None and version <= deleted:
            return
        current = self.upserts.get(key)
        if current is None or version > current[0]:
            self.upserts[key] = (version, row)

    def delete(self, key: tuple[str, K], version: Version) -> None:
        """Keep the greatest deletion; it removes every upsert not newer than itself."""
        deleted = self.deletes.get(key)
        if deleted is not None and version <= deleted:
            return
        self.deletes[key] = version
        current = self.upserts.get(key)
        if current is not None and current[0] <= version:
            del self.upserts[key]

    def purge(self, key: tuple[str, K]) -> None:
        """Forget ``key``: what came before in this batch is dropped, the store drops what it holds."""
        self.purges.add(key)
        self.deletes.pop(key, None)
        self.upserts.pop(key, None)

    def __bool__(self) -> bool:
        return bool(self.purges or self.deletes or self.upserts)


@dataclass
class StatusDelta:
    """What one batch applied for one member."""

    whoop_user_id: int | None = None
    last_record_at: datetime | None = None
    last_whoop_update_at: datetime | None = None
    records: int = 0

    def add(
        self, whoop_user_id: int | None, occurred_at: datetime | None, updated_at: datetime | None
    ) -> None:
        self.records += 1
        if whoop_user_id is not None:
            self.whoop_user_id = whoop_user_id
        if occurred_at is not None and (self.last_record_at is None or occurred_at > self.last_record_at):
            self.last_record_at = occurred_at
        if updated_at is not None and (
            self.last_whoop_update_at is None or updated_at > self.last_whoop_update_at
        ):
            self.last_whoop_update_at = updated_at


@dataclass
class Changes:
    """Everything one batch changes, table by table, plus what it applied per member."""

    cycles: TableChanges[int] = field(default_factory=lambda: TableChanges[int]("cycle"))
    sleeps: TableChanges[str] = field(default_factory=lambda: TableChanges[str]("sleep"))
    recoveries: TableChanges[int] = field(default_factory=lambda: TableChanges[int]("recovery"))
    workouts: TableChanges[str] = field(default_factory=lambda: TableChanges[str]("workout"))
    status: dict[str, StatusDelta] = field(default_factory=dict)

    def member(self, user_id: str) -> StatusDelta:
        delta = self.status.get(user_id)
        if delta is None:
            delta = self.status[user_id] = StatusDelta()
        return delta


def plan_batch(records: Iterable[Projectable], into: Changes | None = None) -> Changes:
    """Fold records (in log order) into the reduced changes of one batch (``into``, to go on folding)."""
    changes = Changes() if into is None else into
    tables: dict[str, TableChanges[Any]] = {
        "cycle": changes.cycles,
        "sleep": changes.sleeps,
        "recovery": changes.recoveries,
        "workout": changes.workouts,
    }
    status = changes.status
    for record in records:
        if type(record) is not Decoded:
            if type(record) is Purge:
                _plan_purge(record, changes)
                continue
            record = decoded_of(record)  # type: ignore[arg-type] # a canonical model: Recorded | Deleted
        table = tables[record.resource_type]
        key = (record.user_id, record.resource_id)
        if record.row is None:
            table.delete(key, record.version)
            updated_at = None
        else:
            table.upsert(key, record.version, record.row)
            updated_at = record.version[0]
        delta = status.get(record.user_id)
        if delta is None:
            delta = status[record.user_id] = StatusDelta()
        delta.add(record.whoop_user_id, record.occurred_at, updated_at)
    return changes


def _plan_purge(record: Purge, changes: Changes) -> None:
    if record.resource_type == "cycle":
        changes.cycles.purge((record.user_id, int(record.resource_id)))
    elif record.resource_type == "recovery":
        changes.recoveries.purge((record.user_id, int(record.resource_id)))
    elif record.resource_type == "sleep":
        changes.sleeps.purge((record.user_id, record.resource_id))
    else:
        changes.workouts.purge((record.user_id, record.resource_id))
    changes.member(record.user_id).add(None, None, None)
