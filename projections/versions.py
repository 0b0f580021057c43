"""Versions of the read models: each a PostgreSQL schema of its own, exactly one of them served.

A version holds the seven tables of :data:`~projections.read_model_ddl.VERSIONED_TABLES`, projected
from one records topic (a generation, see ``processors.renormalize``) with offsets of its own in
``consumer_offsets`` (its ``offsets_group``). Version 1 is the tables migration 0010 made in the
migrations' schema, fed by the configured topic and consumer group; a rebuild creates version N in
the schema ``<that schema>_rm<N>`` beside it (migration 0034 keeps the registry).

States: ``building`` (a rebuild writes it), ``verified`` (caught up, counted and checksummed),
``serving`` (the one the query API reads and the live projection writes), ``retired`` (served before,
kept for rollback until dropped).

The switch is one transaction: it locks the serving row, points it at the new version (the old one
becomes ``previous``, the target of ``rollback``) and advances ``read_model_epoch``, so every ETag
taken before it is outdated. A writer of the serving version reads that row ``FOR SHARE`` in its
own transaction (:func:`serving`): a switch waits for the batches under way, and a batch that starts
after it writes the new version.

Every statement here takes the caller's connection; nothing commits on its own except where said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from infra.consumer_offsets import forget_offsets

from .read_model_ddl import INDEXES, KEYS, TABLES, VERSIONED_TABLES

__all__ = [
    "NoPrevious",
    "NotVerified",
    "ServingVersion",
    "State",
    "TableSum",
    "UnknownVersion",
    "Version",
    "VersionError",
    "all_versions",
    "build_keys_and_indexes",
    "checksums",
    "create",
    "drop",
    "get",
    "mark_verified",
    "rollback",
    "serves_member",
    "serving",
    "switch",
    "try_rebuild_lock",
    "use",
]

Connection = asyncpg.Connection | PoolConnectionProxy
State = Literal["building", "verified", "serving", "retired"]
_REBUILD_LOCK = "whoop-pipeline:read-model-rebuild:"
_ROW_SUM = "coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)"


class VersionError(Exception):
    """A version operation refused; the message is one line for the operator."""


class UnknownVersion(VersionError):
    """No version of that number."""


class NotVerified(VersionError):
    """A switch to a version that was not verified (``--force`` overrides)."""


class ServingVersion(VersionError):
    """The served version cannot be dropped."""


class NoPrevious(VersionError):
    """A rollback without a previous version."""


@dataclass(frozen=True)
class Version:
    """One row of ``read_model_versions``."""

    number: int
    schema: str
    records_topic: str | None  # None: the configured PROJECTIONS_RECORDS_TOPIC
    offsets_group: str | None  # None: the configured PROJECTIONS_GROUP_ID
    state: State
    bulk: bool
    created_at: datetime
    caught_up_at: datetime | None
    verified_at: datetime | None
    switched_at: datetime | None
    verification: Mapping[str, Any] | None

    def topic(self, configured: str) -> str:
        """The records topic this version projects."""
        return self.records_topic or configured

    def group(self, configured: str) -> str:
        """The key of this version's offsets in ``consumer_offsets``."""
        return self.offsets_group or configured


@dataclass(frozen=True)
class TableSum:
    """A table's row count and an order-independent checksum of its rows."""

    rows: int
    checksum: str


_COLUMNS = (
    "v.version, v.schema_name, v.records_topic, v.offsets_group, v.state, v.bulk, v.created_at,"
    " v.caught_up_at, v.verified_at, v.switched_at, v.verification::text AS verification"
)


def _version(row: asyncpg.Record) -> Version:
    return Version(
        number=row["version"],
        schema=row["schema_name"],
        records_topic=row["records_topic"],
        offsets_group=row["offsets_group"],
        state=row["state"],
        bulk=row["bulk"],
        created_at=row["created_at"],
        caught_up_at=row["caught_up_at"],
        verified_at=row["verified_at"],
        switched_at=row["switched_at"],
        verification=None if row["verification"] is None else json.loads(row["verification"]),
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_LOCK_SERVING = {
    "share": "SELECT 1 FROM read_model_serving FOR SHARE",
    "update": "SELECT 1 FROM read_model_serving FOR UPDATE",
}


async def serving(connection: Connection, *, lock: Literal["share", "update"] | None = None) -> Version:
    """The served version; with ``lock``, its row stays locked until the caller's transaction ends.

    The row is locked by a statement of its own, before the version is read: locked in the joining
    statement, a row that a concurrent switch changed would be re-checked against the version row
    read before the switch, and the statement would find no row (PostgreSQL's EvalPlanQual).
    """
    if lock is not None:
        await connection.execute(_LOCK_SERVING[lock])
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM read_model_serving s JOIN read_model_versions v ON v.version = s.version"  # noqa: S608 - constants
    )
    if row is None:  # pragma: no cover - migration 0034 inserts it
        raise VersionError("read_model_serving is empty: run the migrations")
    return _version(row)


async def serves_member(connection: Connection, user_id: str) -> bool:
    """Whether the served version holds the member's sync status (anything of theirs was projected)."""
    table = f"{_quote((await serving(connection)).schema)}.rm_sync_status"
    found = await connection.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE user_id = $1)",  # noqa: S608 - the registry's schema name
        user_id,
    )
    return bool(found)


async def previous(connection: Connection) -> Version | None:
    """The version served before the current one, if it is still kept."""
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM read_model_serving s JOIN read_model_versions v ON v.version = s.previous"  # noqa: S608 - constants
    )
    return None if row is None else _version(row)


async def get(connection: Connection, number: int) -> Version:
    """Version ``number``; UnknownVersion when there is none."""
    sql = f"SELECT {_COLUMNS} FROM read_model_versions v WHERE v.version = $1"  # noqa: S608 - constants
    row = await connection.fetchrow(sql, number)
    if row is None:
        known = ", ".join(str(v.number) for v in await all_versions(connection)) or "none"
        raise UnknownVersion(f"no read-model version {number} (versions: {known})")
    return _version(row)


async def all_versions(connection: Connection) -> list[Version]:
    """Every version, oldest first."""
    rows = await connection.fetch(f"SELECT {_COLUMNS} FROM read_model_versions v ORDER BY v.version")  # noqa: S608 - constants
    return [_version(row) for row in rows]


async def use(connection: Connection, version: Version) -> None:
    """Resolve the unqualified read-model names of the current transaction to ``version``'s tables.

    The version's schema goes first in the ``search_path`` (``SET LOCAL``: it ends with the
    transaction); the migrations' schema stays after it for every other table. Call it once per
    transaction, before any statement on the read models.
    """
    await connection.execute(
        "SELECT set_config('search_path', CASE WHEN $1 = current_schema() THEN current_setting('search_path')"
        " ELSE quote_ident($1) || ', ' || current_setting('search_path') END, true)",
        version.schema,
    )


async def create(connection: Connection, *, records_topic: str | None, bulk: bool) -> Version:
    """A new, empty version in state ``building`` (in the caller's transaction).

    With ``bulk`` its tables have neither keys nor indexes (:func:`build_keys_and_indexes` adds them
    after the load); otherwise it is ready for the live upsert path.
    """
    number = int(await connection.fetchval("SELECT nextval('read_model_version_numbers')"))
    base = str(await connection.fetchval("SELECT current_schema()"))
    schema = f"{base}_rm{number}"
    await connection.execute(f"CREATE SCHEMA {_quote(schema)}")
    await connection.execute("SELECT set_config('search_path', quote_ident($1), true)", schema)
    for statement in (*TABLES, *(() if bulk else (*KEYS, *INDEXES))):
        await connection.execute(statement)
    await connection.execute("SELECT set_config('search_path', quote_ident($1), true)", base)
    await connection.execute(
        "INSERT INTO read_model_versions (version, schema_name, records_topic, offsets_group, state, bulk)"
        " VALUES ($1, $2, $3, $4, 'building', $5)",
        number,
        schema,
        records_topic,
        f"read-models-v{number}",
        bulk,
    )
    return await get(connection, number)


async def build_keys_and_indexes(connection: Connection, version: Version) -> None:
    """Add the primary keys and indexes a bulk-loaded version was created without, then ANALYZE."""
    await use(connection, version)
    for statement in (*KEYS, *INDEXES):
        await connection.execute(statement)
    for table in VERSIONED_TABLES:
        await connection.execute(f"ANALYZE {_quote(version.schema)}.{table}")


async def checksums(connection: Connection, version: Version) -> dict[str, TableSum]:
    """Row count and checksum of every table of ``version``: the sum of each row's md5 (as text).

    Order-independent, so two versions holding the same rows have the same sums whatever order
    they were written in.
    """
    sums: dict[str, TableSum] = {}
    for table in VERSIONED_TABLES:
        source = f"{_quote(version.schema)}.{table}"
        sql = f"SELECT count(*) AS n, {_ROW_SUM}::text AS s FROM {source} t"  # noqa: S608 - a quoted registry name
        row = await connection.fetchrow(sql)
        if row is not None:  # an aggregate always answers one row
            sums[table] = TableSum(int(row["n"]), str(row["s"]))
    return sums


async def mark_verified(connection: Connection, number: int, sums: Mapping[str, TableSum]) -> None:
    """Record that version ``number`` caught up and was verified, with its row counts and checksums."""
    verification = {table: {"rows": s.rows, "checksum": s.checksum} for table, s in sums.items()}
    await connection.execute(
        "UPDATE read_model_versions SET state = 'verified', verified_at = now(),"
        " caught_up_at = coalesce(caught_up_at, now()), verification = $2::jsonb"
        " WHERE version = $1 AND state = 'building'",
        number,
        json.dumps(verification),
    )


async def switch(connection: Connection, number: int, *, force: bool = False) -> tuple[Version, Version]:
    """Serve version ``number`` from now on; returns (the old, the new). Must run in a transaction.

    Refuses an unknown version, and one neither verified nor served before unless ``force``. The old
    version becomes ``retired`` and ``previous`` (the rollback target); the epoch advances.
    """
    old = await serving(connection, lock="update")
    new = await get(connection, number)
    if new.number == old.number:
        raise VersionError(f"version {number} is already served")
    if new.state == "building" and not force:
        raise NotVerified(
            f"version {number} is not verified (its rebuild has not finished): use --force to serve it anyway"
        )
    await connection.execute(
        "UPDATE read_model_versions SET state = 'retired' WHERE version = $1", old.number
    )
    await connection.execute(
        "UPDATE read_model_versions SET state = 'serving', switched_at = now() WHERE version = $1", new.number
    )
    await connection.execute(
        "UPDATE read_model_serving SET version = $1, previous = $2", new.number, old.number
    )
    await connection.execute("UPDATE read_model_epoch SET epoch = epoch + 1")
    return old, await get(connection, number)


async def rollback(connection: Connection) -> tuple[Version, Version]:
    """Serve the previous version again (must run in a transaction); NoPrevious when none is kept."""
    await serving(connection, lock="update")
    before = await previous(connection)
    if before is None:
        raise NoPrevious("no previous read-model version to roll back to (none served before, or dropped)")
    return await switch(connection, before.number, force=True)


async def drop(connection: Connection, number: int) -> Version:
    """Delete version ``number``'s tables, offsets and registry row (in the caller's transaction).

    Refuses the served version. Version 1's tables live in the migrations' schema, so they are
    dropped one by one; a later version's schema is dropped whole.
    """
    current = await serving(connection, lock="update")
    version = await get(connection, number)
    if version.number == current.number:
        raise ServingVersion(f"version {number} is served: switch to another version before dropping it")
    base = str(await connection.fetchval("SELECT current_schema()"))
    if version.schema == base:
        for table in VERSIONED_TABLES:
            await connection.execute(f"DROP TABLE IF EXISTS {_quote(base)}.{table}")
    else:
        await connection.execute(f"DROP SCHEMA IF EXISTS {_quote(version.schema)} CASCADE")
    if version.offsets_group is not None:
        await forget_offsets(connection, version.offsets_group)
    await connection.execute("DELETE FROM read_model_versions WHERE version = $1", number)
    return version


async def try_rebuild_lock(connection: Connection) -> bool:
    """Take the session-level lock that only one rebuild holds at a time; False when another has it.

    The lock is released when ``connection`` closes (a rebuild killed any way releases it).
    """
    base = str(await connection.fetchval("SELECT current_schema()"))
    return bool(
        await connection.fetchval(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _REBUILD_LOCK + base
        )
    )
