"""What ``wear users list|show`` read: members' connections and sync times, and their records per type.

Only what identifies a member and how their connection is doing: our user id, the WHOOP member id,
the connection status and its times, the last fetch from WHOOP and the last record applied to the
read models, the latest pull. Never a token, never a value of their health data: ``show`` counts the
member's rows per type in the served read-model version (``projections.versions``), nothing more.

The connection rows are ``infra.connections``'s (``whoop_connections``), the latest pull comes from
``infra.pull_jobs``'s SQL, the sync times are those of the projections (``rm_sync_activity``, and
``rm_sync_status`` of the served version), read as the query API's sync-status route reads them
(``projections.query.reads``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from infra import pull_jobs
from projections import versions
from projections.query.reads import TABLE_OF

__all__ = ["TYPES", "member_rows", "record_counts"]

TYPES: dict[str, str] = {"cycle": "cycles", "sleep": "sleep", "recovery": "recovery", "workout": "workouts"}
"""Each WHOOP collection and its kind in ``projections.query.reads.TABLE_OF``."""


def _table(schema: str, table: str) -> str:
    return '"' + schema.replace('"', '""') + '".' + table


def _count_sql(schema: str, name: str, kind: str) -> str:
    table = _table(schema, TABLE_OF[kind][0])
    return f"(SELECT count(*) FROM {table} WHERE user_id = $1) AS {name}"  # noqa: S608 - constants, quoted schema


def _members_sql(schema: str) -> str:
    return f"""
SELECT c.user_id, c.whoop_user_id, c.status, c.connected_at, c.updated_at, c.disconnected_at,
       a.last_fetch_at, a.last_webhook_at, s.last_record_at, s.records_applied,
       j.job_id AS last_pull_id, j.status AS last_pull_status, j.created_at AS last_pull_at
FROM whoop_connections c
LEFT JOIN rm_sync_activity a ON a.user_id = c.user_id
LEFT JOIN {_table(schema, "rm_sync_status")} s ON s.user_id = c.user_id
LEFT JOIN LATERAL ({pull_jobs.latest_job_sql("job_id, status, created_at", "c.user_id")}) j ON true
WHERE ($1::text IS NULL OR c.user_id = $1) AND ($2::text IS NULL OR c.status = $2)
ORDER BY c.connected_at, c.user_id
LIMIT $3
"""  # noqa: S608 - the schema is quoted, values are parameters


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _member(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "whoop_user_id": row["whoop_user_id"],
        "status": row["status"],
        "needs_reauth": row["status"] == "needs_reauth",
        "connected_at": _iso(row["connected_at"]),
        "disconnected_at": _iso(row["disconnected_at"]),
        "updated_at": _iso(row["updated_at"]),
        "last_sync_at": _iso(row["last_fetch_at"]),
        "last_webhook_at": _iso(row["last_webhook_at"]),
        "last_record_at": _iso(row["last_record_at"]),
        "records_applied": row["records_applied"] or 0,
        "last_pull": None
        if row["last_pull_id"] is None
        else {
            "job_id": row["last_pull_id"],
            "status": row["last_pull_status"],
            "requested_at": _iso(row["last_pull_at"]),
        },
    }


async def member_rows(
    pool: asyncpg.Pool, *, user_id: str | None = None, status: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Members (one, or all, or those of ``status``), oldest connection first."""
    async with pool.acquire() as connection:
        served = await versions.serving(connection)
        rows = await connection.fetch(_members_sql(served.schema), user_id, status, limit)
    return [_member(row) for row in rows]


async def record_counts(pool: asyncpg.Pool, user_id: str) -> tuple[int, dict[str, int]]:
    """The served read-model version, and the member's rows in it per WHOOP collection."""
    async with pool.acquire() as connection, connection.transaction(isolation="repeatable_read"):
        served = await versions.serving(connection)
        parts = ", ".join(_count_sql(served.schema, name, kind) for name, kind in TYPES.items())
        row = await connection.fetchrow(f"SELECT {parts}", user_id)
    assert row is not None  # noqa: S101 - a SELECT of scalars answers one row
    return served.number, {name: int(row[name]) for name in TYPES}
