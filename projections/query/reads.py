"""Reads of the read models for the query API (asyncpg), each in one statement on one connection.

Collections are read newest first on the ``(user_id, start_at DESC, id DESC)`` index with a keyset
position, so a page costs the same wherever it is. A window keeps records that overlap it; to keep
that an index range, records that start more than 7 days before the window are looked up apart, in
the small partial index of open or longer-than-7-day records (``long_span``), and the two ordered
streams are merged. Every data read also returns the member's data version (the read models' epoch,
which each rebuild advances, and the count of records the projection applied for them) read in the
same snapshot: the API derives its ETags from it.

The tables read are those of the served read-model version (``projections.versions``), named with
their schema. Every statement also reads which version is served, in its own snapshot: when that is
not the version the statement was written for (a switch committed meanwhile) or its tables are gone
(dropped after a switch), the reader learns the served version and runs the statement again. So an
answer comes from exactly one version, and from the served one: a client never sees a version older
than one it saw before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import asyncpg

from infra import connections, pull_jobs
from infra.migrations import apply_migrations
from infra.settings import PostgresSettings

from .params import Window
from .read_connections import ConnectionSource, FairConnections, as_source
from .wear_metrics import COLUMNS, wear_metrics_sql

__all__ = ["TABLE_OF", "DailyPage", "Page", "ReadModelReader", "Served", "open_read_connections"]

TABLE_OF: dict[str, tuple[str, str]] = {
    "recovery": ("rm_recoveries", "cycle_id"),
    "sleep": ("rm_sleeps", "sleep_id"),
    "workouts": ("rm_workouts", "workout_id"),
    "cycles": ("rm_cycles", "cycle_id"),
}
_LONG = "interval '7 days'"
_SERVED = "(SELECT version FROM read_model_serving)"
_SERVED_NOW = (
    "SELECT s.version, v.schema_name FROM read_model_serving s"
    " JOIN read_model_versions v ON v.version = s.version"
)
_ATTEMPTS = 5  # statements run again while switches keep landing under them (one is the rule)


def _in(schema: str, table: str) -> str:
    """``table`` of the version whose schema is ``schema``, qualified and quoted."""
    return '"' + schema.replace('"', '""') + '".' + table


@cache
def _version_of(schema: str) -> str:
    """The member's data version: the read models' epoch (one more after each switch or rebuild) in the
    high bits, the records the projection applied for the member in the low 40."""
    return (
        "SELECT ((SELECT epoch FROM read_model_epoch) << 40)"  # noqa: S608 - a quoted registry name
        f" + coalesce((SELECT records_applied FROM {_in(schema, 'rm_sync_status')} WHERE user_id = $1), 0)"
    )


def _version(schema: str) -> str:
    return f"({_version_of(schema)})"


@cache
def _data_version_sql(schema: str) -> str:
    return f"SELECT {_SERVED} AS served, {_version(schema)} AS version"


@dataclass(frozen=True)
class Served:
    """The read-model version served: its number and the schema of its tables."""

    number: int
    schema: str


@dataclass(frozen=True)
class Page:
    """A page: the documents as the inside of a JSON array (UTF-8), and where the next page starts."""

    version: int
    records: bytes
    next_after: tuple[datetime, str] | None
    read_model: int = 0  # the read-model version it was read from


@dataclass(frozen=True)
class DailyPage:
    version: int
    summaries: list[str]
    dates: list[date]
    read_model: int = 0


def _window_sql(
    schema: str,
    kind: str,
    columns: str,
    has_start: bool,
    has_end: bool,
    has_after: bool,
    limited: bool,
    ordered: bool = True,
) -> str:
    """The rows of ``kind`` overlapping the window, newest first unless not ``ordered`` (nor limited).

    Parameters: $1 the member, then (those present) start, end, the keyset position, the limit.
    """
    name, id_column = TABLE_OF[kind]
    table = _in(schema, name)
    params = iter(range(2, 10))
    start = f"${next(params)}" if has_start else ""
    end = f"${next(params)}" if has_end else ""
    after = (f"${next(params)}", f"${next(params)}") if has_after else None
    limit = f" LIMIT ${next(params)}" if limited else ""
    common = ["user_id = $1"]
    if has_end:
        common.append(f"start_at < {end}")
    if has_start:
        common.append(f"(end_at IS NULL OR end_at >= {start})")
    if after is not None:
        common.append(f"(start_at, {id_column}) < ({after[0]}, {after[1]})")
    order = f"ORDER BY start_at DESC, {id_column} DESC" if ordered or limited else ""

    def branch(extra: Sequence[str]) -> str:
        where = " AND ".join([*common, *extra])
        return f"SELECT {columns} FROM {table} WHERE {where} {order}{limit}"  # noqa: S608 - fixed names

    if not has_start:
        return branch(())
    near = branch([f"start_at >= {start} - {_LONG}"])
    far = branch(["long_span", f"start_at < {start} - {_LONG}"])
    return f"SELECT * FROM (({near}) UNION ALL ({far})) u {order}{limit}"  # noqa: S608 - fixed names


@cache
def _page_sql(schema: str, kind: str, has_start: bool, has_end: bool, has_after: bool) -> str:
    """One row: the data version, how many of the ``limit + 1`` rows exist, the first ``limit``
    documents joined by commas (bytes, built by PostgreSQL) and the sort key of the ``limit``-th.
    """
    _, id_column = TABLE_OF[kind]
    inner = _window_sql(schema, kind, f"document, start_at, {id_column}", has_start, has_end, has_after, True)
    limit = f"${2 + has_start + has_end + 2 * has_after}"
    order = f"ORDER BY x.start_at DESC, x.{id_column} DESC"
    rank = f"row_number() OVER (ORDER BY u.start_at DESC, u.{id_column} DESC) AS rn"
    numbered = f"SELECT u.*, {rank} FROM ({inner}) u"  # noqa: S608 - fixed names
    served = f"FILTER (WHERE x.rn < {limit})"
    last = f"FILTER (WHERE x.rn = {limit} - 1)"
    documents = f"coalesce(string_agg(x.document::text, ',' {order}) {served}, '')"
    columns = (
        f"count(*) AS found, convert_to({documents}, 'UTF8') AS records,"
        f" max(x.start_at) {last} AS last_start, max(x.{id_column}::text) {last} AS last_id"
    )
    return f"SELECT {_SERVED} AS served, {_version(schema)} AS version, {columns} FROM ({numbered}) x"  # noqa: S608 - fixed names


@cache
def _metrics_sql(schema: str, kinds: tuple[str, ...]) -> str:
    """One row: the data version and the ``WearMetrics`` of every record of ``kinds`` overlapping the
    window ($2, $3), as a JSON array (bytes, built by PostgreSQL), newest first (then by kind and id,
    descending)."""
    branches = []
    for kind in kinds:
        _, id_column = TABLE_OF[kind]
        rows = _window_sql(schema, kind, ", ".join(COLUMNS[kind]), True, True, False, False, ordered=False)
        item = wear_metrics_sql(kind, "r")
        branches.append(
            f"SELECT r.start_at, '{kind}'::text AS kind, r.{id_column}::text AS id, {item} AS item"  # noqa: S608 - fixed names
            f" FROM ({rows}) r"
        )
    order = 'x.start_at DESC, x.kind COLLATE "C" DESC, x.id COLLATE "C" DESC'
    items = f"'[' || coalesce(string_agg(x.item, ',' ORDER BY {order}), '') || ']'"
    union = " UNION ALL ".join(f"({branch})" for branch in branches)
    return (
        f"SELECT {_SERVED} AS served, {_version(schema)} AS version,"  # noqa: S608 - fixed names
        f" convert_to({items}, 'UTF8') AS items FROM ({union}) x"
    )


@cache
def _one_sql(schema: str, kind: str, column: str) -> str:
    """One row: the data version and, when it exists, the record's columns (else nulls)."""
    name, id_column = TABLE_OF[kind]
    table = _in(schema, name)
    record = f"SELECT {', '.join(COLUMNS[kind])} FROM {table} WHERE user_id = $1 AND {column} = $2"  # noqa: S608 - fixed names
    return (
        f"SELECT {_SERVED} AS served, {_version(schema)} AS version,"  # noqa: S608 - fixed names
        f" r.{id_column} IS NOT NULL AS found, r.*"
        f" FROM (SELECT 1) one LEFT JOIN LATERAL ({record}) r ON true"
    )


@cache
def _daily_sql(schema: str) -> str:
    return f"""
SELECT {_SERVED} AS served, {_version(schema)} AS version,
       array_agg(row_to_json(x)::text ORDER BY x.local_date DESC) AS summaries,
       array_agg(x.local_date ORDER BY x.local_date DESC) AS dates
FROM (
    SELECT local_date, recovery_score_pct, hrv_rmssd_ms, resting_heart_rate_bpm, spo2_pct, skin_temp_c,
           sleep_performance_pct, sleep_duration_ms, in_bed_ms, nap_count, nap_duration_ms, day_strain,
           energy_kcal AS calories_kcal, workout_count, recovery_cycle_id::text AS recovery_cycle_id,
           sleep_id, cycle_id::text AS cycle_id
    FROM {_in(schema, "rm_daily_summaries")}
    WHERE user_id = $1 AND local_date >= $2 AND local_date <= $3 AND ($4::date IS NULL OR local_date < $4)
    ORDER BY local_date DESC
    LIMIT $5
) x
"""  # noqa: S608 - the fragments are this module's constants, values are parameters


_JOB_COLUMNS = "job_id, status, range_start, range_end, progress, created_at, updated_at"


# The connection and the latest pull come from their owners' SQL (infra.connections, infra.pull_jobs).
@cache
def _sync_sql(schema: str) -> str:
    return f"""
SELECT {_SERVED} AS served, c.status AS connection_status, c.connected_at, c.disconnected_at,
       c.updated_at AS connection_updated_at,
       s.whoop_user_id, s.last_record_at, s.last_whoop_update_at, s.records_applied,
       a.last_webhook_at, a.last_fetch_at, a.webhooks_seen, a.documents_seen,
       j.job_id, j.status AS backfill_status, j.range_start, j.range_end, j.progress::text AS progress,
       j.created_at AS backfill_requested_at, j.updated_at AS backfill_updated_at
FROM (SELECT $1::text AS user_id) u
{connections.join_sql("c", "u.user_id")}
LEFT JOIN {_in(schema, "rm_sync_status")} s ON s.user_id = u.user_id
LEFT JOIN rm_sync_activity a ON a.user_id = u.user_id
LEFT JOIN LATERAL (
    {pull_jobs.latest_job_sql(_JOB_COLUMNS, "u.user_id")}
) j ON true
"""  # noqa: S608 - the fragments are this module's constants, values are parameters


async def open_read_connections(postgres: PostgresSettings, size: int) -> FairConnections:
    """The query API's connections (at most ``size``), migrations applied on the first one."""

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(
            postgres.database_url,
            server_settings={"application_name": "whoop-pipeline-query"},
            command_timeout=30,
        )

    connections = FairConnections(connect, size)
    try:
        async with connections.connection() as connection:
            await apply_migrations(connection)
    except BaseException:
        await connections.close()
        raise
    return connections


class ReadModelReader:
    """The query API's reads, each on a connection of ``connections``; ``timeout`` bounds every statement
    (seconds)."""

    def __init__(self, connections: asyncpg.Pool | ConnectionSource, timeout: float = 5.0) -> None:
        self._connections = as_source(connections)
        self._timeout = timeout
        self._served: Served | None = None

    async def served(self) -> Served:
        """The read-model version served now (read again, not remembered)."""
        async with self._connections.connection() as connection:
            row = await connection.fetchrow(_SERVED_NOW, timeout=self._timeout)
        if row is None:  # pragma: no cover - migration 0034 inserts it
            raise RuntimeError("read_model_serving is empty")
        self._served = Served(row["version"], row["schema_name"])
        return self._served

    async def _row(self, sql: Callable[[str], str], *args: Any) -> tuple[asyncpg.Record, int]:
        """The one row of ``sql(schema)`` read from the served version, and that version's number."""
        for _ in range(_ATTEMPTS):
            served = self._served or await self.served()
            try:
                async with self._connections.connection() as connection:
                    row = await connection.fetchrow(sql(served.schema), *args, timeout=self._timeout)
            except asyncpg.UndefinedTableError:  # its tables were dropped after a switch
                self._served = None
                continue
            if row is None:  # pragma: no cover - every statement here answers one row
                raise RuntimeError("a read answered no row")
            if row["served"] == served.number:
                return row, served.number
            self._served = None  # a switch committed since: read the version served now
        raise RuntimeError(f"the served read-model version changed {_ATTEMPTS} times during one read")

    async def data_version(self, user_id: str) -> int:
        """The member's data version: it changes whenever the projection applies a record for them."""
        row, _ = await self._row(_data_version_sql, user_id)
        return int(row["version"] or 0)

    async def page(
        self, kind: str, user_id: str, window: Window, after: tuple[datetime, int | str] | None, limit: int
    ) -> Page:
        """Up to ``limit + 1`` records of ``kind`` newest first, after the keyset position ``after``."""
        args: list[Any] = [user_id]
        if window.start is not None:
            args.append(window.start)
        if window.end is not None:
            args.append(window.end)
        if after is not None:
            args.extend(after)
        args.append(limit + 1)
        shape = (kind, window.start is not None, window.end is not None, after is not None)
        row, read_model = await self._row(lambda schema: _page_sql(schema, *shape), *args)
        more = row["found"] > limit
        next_after = (row["last_start"], row["last_id"]) if more else None
        return Page(int(row["version"] or 0), row["records"], next_after, read_model)

    async def one(
        self, kind: str, user_id: str, column: str, value: int | str
    ) -> tuple[int, asyncpg.Record | None, int]:
        """The data version, the row of ``kind`` whose ``column`` is ``value`` (None if none) and the
        read-model version."""
        row, read_model = await self._row(lambda schema: _one_sql(schema, kind, column), user_id, value)
        return int(row["version"] or 0), row if row["found"] else None, read_model

    async def metrics(self, user_id: str, window: Window, kinds: Sequence[str]) -> tuple[int, bytes, int]:
        """The data version, the ``WearMetrics`` JSON array of every record of ``kinds`` overlapping
        ``window`` (both bounds given), newest first, and the read-model version; one statement, so one
        snapshot."""
        row, read_model = await self._row(
            lambda schema: _metrics_sql(schema, tuple(kinds)), user_id, window.start, window.end
        )
        return int(row["version"] or 0), row["items"], read_model

    async def daily(
        self, user_id: str, first: date, last: date, before: date | None, limit: int
    ) -> DailyPage:
        """Summaries from ``first`` to ``last`` (inclusive), before ``before`` if given, newest first."""
        row, read_model = await self._row(_daily_sql, user_id, first, last, before, limit + 1)
        return DailyPage(int(row["version"] or 0), row["summaries"] or [], row["dates"] or [], read_model)

    async def sync_status(self, user_id: str) -> asyncpg.Record:
        """Connection, projection, activity and backfill state of a member (nulls when unknown)."""
        row, _ = await self._row(_sync_sql, user_id)
        return row

    async def ready(self) -> bool:
        """PostgreSQL answers."""
        try:
            async with self._connections.connection() as connection:
                await connection.fetchval("SELECT 1", timeout=self._timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True
