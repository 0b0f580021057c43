"""The bulk load of a read-model version nobody reads yet: COPY the batches, build the tables once.

A version created with ``versions.create(..., bulk=True)`` has its tables without keys and indexes.
:class:`BulkStore` takes the place of ``store.ReadModelStore`` in the projection worker while such a
version loads: ``apply_changes`` (inside the batch transaction that stores the offsets, after
``versions.use``) COPYs the batch's reduced changes into staging tables, numbered by batch, nothing
else. ``finish`` (once, in one transaction, when the load reached the end offsets) builds the final
tables from them with one set-based statement each (``projections.bulk_sql``): exactly what the live
upserts would have left for the same batches. Then the primary keys and indexes, ANALYZE, and the
staging tables are dropped: the version is an ordinary one, and the live path catches it up.

What this machine measured (``BENCHMARKS.md``, Rebuild; ``bench/bench_rebuild.py``): the load is
bound by the worker's Python process, so PostgreSQL's side is chosen for what it costs the server.
COPY (binary) over ``INSERT ... unnest``; ``synchronous_commit = off`` for the load transactions (a
batch lost in a crash is lost with its offsets, so it is read again); staging tables UNLOGGED (no WAL
for rows written twice: ~850 MB less per million records; a crash of PostgreSQL empties them, which
``finish`` detects, see :class:`StagingLost`); keys and indexes built after the load, with a large
``work_mem`` and ``maintenance_work_mem``, hash joins only and no JIT in ``finish``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from . import versions
from .bulk_sql import (
    BASE_TABLES,
    BEGIN_BATCH,
    DAILY_SUMMARIES,
    DELETE_COLUMNS,
    DELETES,
    DROP_STAGING,
    FORGET_PURGED,
    PURGE_COLUMNS,
    PURGES,
    STAGED_BATCHES,
    STATUS,
    STATUS_COLUMNS,
    SYNC_STATUS,
    TOMBSTONES,
    ensure_staging,
)
from .fold import Changes, TableChanges

__all__ = ["BulkStore", "StagingLost", "staged_rows"]

Connection = asyncpg.Connection | PoolConnectionProxy
Row = tuple[object, ...]

logger = logging.getLogger(__name__)

_KEYS = (
    "SELECT EXISTS (SELECT FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
    " WHERE c.contype = 'p' AND n.nspname = $1)"
)


class StagingLost(versions.VersionError):
    """The staged batches are not all there (PostgreSQL crashed during the load): load it again."""


class BulkStore:
    """Stages batches into a bulk version, then builds its tables; one instance per load.

    ``unlogged`` staging tables and ``synchronous_commit = off`` for the load transactions are the
    defaults; ``work_mem`` and ``maintenance_work_mem`` are set for the ``finish`` transaction, whose
    statements may each take ``statement_timeout_s`` (the pool's command timeout is meant for batches).
    """

    def __init__(
        self,
        *,
        unlogged: bool = True,
        synchronous_commit: bool = False,
        work_mem: str = "256MB",
        maintenance_work_mem: str = "512MB",
        statement_timeout_s: float = 3600.0,
    ) -> None:
        self.unlogged = unlogged
        self._begin = ensure_staging(unlogged=unlogged) + ";\n" + BEGIN_BATCH
        if not synchronous_commit:
            self._begin = "SET LOCAL synchronous_commit = off;\n" + self._begin
        # every join of finish is of whole tables, which have no statistics yet: hash joins, never a
        # nested loop the planner could pick on an estimate of one row; no JIT (it compiles for seconds)
        self._settings = (
            f"SET LOCAL work_mem = {_setting(work_mem)};"
            f" SET LOCAL maintenance_work_mem = {_setting(maintenance_work_mem)};"
            " SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off"
        )
        self._timeout = statement_timeout_s
        self.finish_seconds: dict[str, float] = {}

    async def apply_changes(self, connection: Connection, changes: Changes) -> None:
        """Stage ``changes`` (inside the caller's transaction, the version's schema first in its path)."""
        staged = staged_rows(changes)
        if not staged:
            return
        await connection.execute(self._begin)
        for table, columns, rows in staged:
            await connection.copy_records_to_table(table, records=rows, columns=columns)

    async def finish(self, connection: Connection, version: versions.Version) -> None:
        """Build ``version``'s tables from what was staged, then its keys and indexes; drop the staging.

        Must run in a transaction. StagingLost when batches committed during the load are missing.
        """
        seconds = self.finish_seconds = {}
        started = time.perf_counter()
        patient = cast(Connection, _Patient(connection, self._timeout))

        async def step(name: str, statement: str) -> None:
            at = time.perf_counter()
            await patient.execute(statement)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - at

        if await patient.fetchval(_KEYS, version.schema, timeout=self._timeout):
            raise versions.VersionError(
                f"version {version.number} is not a bulk load in progress: it has its keys"
            )
        await versions.use(patient, version)
        await patient.execute(self._settings)
        await patient.execute(ensure_staging(unlogged=self.unlogged))  # an empty load staged nothing
        committed, staged = await patient.fetchrow(STAGED_BATCHES, timeout=self._timeout)  # type: ignore[misc]
        if committed != staged:
            raise StagingLost(
                f"version {version.number}: {committed - staged:,} of {committed:,} staged batches are gone"
                " (PostgreSQL restarted during the load): drop the version and load it again"
            )
        purged = f"SELECT EXISTS (SELECT 1 FROM {PURGES})"  # noqa: S608 - a constant
        if await patient.fetchval(purged, timeout=self._timeout):
            await step("erasures", FORGET_PURGED)
            for table in BASE_TABLES:
                await step("erasures", table.forget_purged)
        await step("rm_tombstones", TOMBSTONES)
        for table in BASE_TABLES:
            await step(table.name, table.insert)
        await step("rm_daily_summaries", DAILY_SUMMARIES)
        await step("rm_sync_status", SYNC_STATUS)
        await step("drop staging", DROP_STAGING)
        at = time.perf_counter()
        await versions.build_keys_and_indexes(patient, version)
        seconds["keys, indexes, ANALYZE"] = time.perf_counter() - at
        seconds["total"] = time.perf_counter() - started
        logger.info(
            "bulk load of version %s built in %.1f s (%s)",
            version.number,
            seconds["total"],
            ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items() if name != "total"),
        )


class _Patient:
    """A connection whose statements may each take ``timeout`` seconds: the pool's command timeout is
    meant for a batch, not for building a whole version's tables and indexes."""

    def __init__(self, connection: Connection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout

    async def execute(self, query: str, *args: object) -> str:
        return await self._connection.execute(query, *args, timeout=self._timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _setting(value: str) -> str:
    if not value.replace(" ", "").isalnum():
        raise ValueError(f"not a memory setting: {value!r}")
    return f"'{value}'"


def staged_rows(changes: Changes) -> list[tuple[str, tuple[str, ...], list[Row]]]:
    """The rows to COPY, by staging table: upserts per table, then deletions, erasures, sync status."""
    staged: list[tuple[str, tuple[str, ...], list[Row]]] = []
    tables: dict[str, TableChanges[Any]] = {
        "rm_cycles": changes.cycles,
        "rm_sleeps": changes.sleeps,
        "rm_workouts": changes.workouts,
        "rm_recoveries": changes.recoveries,
    }
    deletes: list[Row] = []
    purges: list[Row] = []
    for table in BASE_TABLES:
        own = tables[table.name]
        if own.upserts:
            staged.append((table.stage, table.columns, [row for _, row in own.upserts.values()]))
        kind = own.resource_type
        deletes += [(kind, user, str(rid), v[0], v[1]) for (user, rid), v in own.deletes.items()]
        purges += [(kind, user, str(rid)) for user, rid in own.purges]
    if deletes:
        staged.append((DELETES, DELETE_COLUMNS, deletes))
    if purges:
        staged.append((PURGES, PURGE_COLUMNS, purges))
    if changes.status:
        rows: list[Row] = [
            (user, d.whoop_user_id, d.last_record_at, d.last_whoop_update_at, d.records)
            for user, d in changes.status.items()
        ]
        staged.append((STATUS, STATUS_COLUMNS, rows))
    return staged
