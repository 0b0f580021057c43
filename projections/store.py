"""The read-model store (asyncpg): writes one batch's changes inside the caller's transaction.

Order inside a batch: per table, erasures (Kafka tombstones), then deletions (tombstone rows kept,
live rows not newer removed), then upserts gated on the live row's and the tombstone's versions.
Then the derived state is recomputed from the base tables, only where the batch touched it: the
recoveries' window and day (from their sleep and cycle), the daily summaries of every (member, local
date) whose inputs changed, and the member's sync status. Derived state is a function of the base
tables, and the base tables of the greatest version per resource, so a replay from offset 0 rebuilds
identical tables whatever the batch boundaries were.

Reads live in ``projections.query.reads``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .activity import ActivityDelta
from .fold import Changes, TableChanges
from .sql import (
    ACTIVITY_UPSERT,
    CREATE_STAGES,
    DAILY_DELETE,
    DAILY_INSERT,
    RECOVERY_DERIVE,
    STATUS_UPSERT,
    TABLES,
    Table,
)

__all__ = ["Connection", "ReadModelStore"]

Connection = asyncpg.Connection | PoolConnectionProxy
Day = tuple[str, date]


def _columns(rows: Iterable[tuple[object, ...]], arity: int) -> list[list[Any]]:
    """Rows → one list per column (the ``unnest`` arrays)."""
    columns: list[list[Any]] = [[] for _ in range(arity)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _days(records: Iterable[asyncpg.Record], into: set[Day]) -> None:
    for record in records:
        if record["day"] is not None:
            into.add((record["user_id"], record["day"]))


class ReadModelStore:
    """Writes batches into the read models; stateless, so one instance serves every connection."""

    async def apply_changes(self, connection: Connection, changes: Changes) -> None:
        """Write ``changes`` with ``connection`` (inside the caller's transaction)."""
        days: set[Day] = set()
        if any(t.upserts for t in (changes.cycles, changes.sleeps, changes.recoveries, changes.workouts)):
            await connection.execute(CREATE_STAGES)  # one round trip; a no-op once the session has them
        await self._table(connection, TABLES["cycle"], changes.cycles, days)
        await self._table(connection, TABLES["sleep"], changes.sleeps, days)
        recoveries = await self._table(connection, TABLES["recovery"], changes.recoveries, days)
        await self._table(connection, TABLES["workout"], changes.workouts, days)
        await self._derive_recoveries(connection, changes, recoveries, days)
        if days:
            users, dates = _columns(sorted(days), 2)
            await connection.execute(DAILY_DELETE, users, dates)
            await connection.execute(DAILY_INSERT, users, dates)
        if changes.status:
            rows = [
                (user, d.whoop_user_id, d.last_record_at, d.last_whoop_update_at, d.records)
                for user, d in sorted(changes.status.items())
            ]
            await connection.execute(STATUS_UPSERT, *_columns(rows, 5))

    async def apply_activity(self, connection: Connection, deltas: dict[str, ActivityDelta]) -> None:
        """Write what one batch of the webhook and document topics saw per member."""
        if not deltas:
            return
        rows = [
            (user, d.last_webhook_at, d.last_fetch_at, d.webhooks, d.documents)
            for user, d in sorted(deltas.items())
        ]
        await connection.execute(ACTIVITY_UPSERT, *_columns(rows, 5))

    async def _table(
        self, connection: Connection, table: Table, changes: TableChanges[Any], days: set[Day]
    ) -> set[tuple[str, str]]:
        """Apply one table's changes; the keys ``(user_id, id as text)`` whose upsert was written."""
        if changes.purges:
            keys = sorted(changes.purges)
            users, ids = _columns(((user, str(rid)) for user, rid in keys), 2)
            _days(await connection.fetch(table.purge, users, ids), days)
        if changes.deletes:
            rows: list[tuple[object, ...]] = sorted(
                (user, str(rid), version[0], version[1]) for (user, rid), version in changes.deletes.items()
            )
            _days(await connection.fetch(table.delete, *_columns(rows, 4)), days)
        if changes.upserts:
            rows = [row for _, (_, row) in sorted(changes.upserts.items())]
            await connection.copy_records_to_table(table.stage, records=rows, columns=table.columns)
            upserted = await connection.fetch(table.upsert)
            _days(upserted, days)
            return {(row["user_id"], row["id"]) for row in upserted}
        return set()

    async def _derive_recoveries(
        self, connection: Connection, changes: Changes, written: set[tuple[str, str]], days: set[Day]
    ) -> None:
        # every recovery of a sleep or cycle the batch touched, but those it wrote (already right); the
        # update skips rows whose derived columns do not change
        sleeps = [*changes.sleeps.upserts, *changes.sleeps.deletes, *changes.sleeps.purges]
        cycles = [*changes.cycles.upserts, *changes.cycles.deletes, *changes.cycles.purges]
        if not (sleeps or cycles):
            return
        done = [(user, int(cycle_id)) for user, cycle_id in written]
        rows = await connection.fetch(
            RECOVERY_DERIVE, *_columns(sleeps, 2), *_columns(cycles, 2), *_columns(done, 2)
        )
        for row in rows:
            if row["old_day"] is not None:
                days.add((row["user_id"], row["old_day"]))
            if row["day"] is not None:
                days.add((row["user_id"], row["day"]))
