"""The owner of ``whoop_connections``: a member's connection and its lifecycle, for every stage.

A row per WHOOP member who ever connected (migration 0002): ``connected`` after the OAuth callback,
``needs_reauth`` when WHOOP refuses the refresh token, ``disconnected`` after a disconnect or an
erasure. The row is also the lock of the member's credentials (``lock``): issuing an API token,
redeeming an exchange code and revoking them all take it first. Only this module writes the table;
every other module reads or changes it through these functions (``tests/unit/test_table_ownership.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from infra.vault import Executor

__all__ = [
    "Connection",
    "connected_sql",
    "connection",
    "count_needs_reauth",
    "exists",
    "join_sql",
    "lock",
    "mark_disconnected",
    "mark_needs_reauth",
    "needs_reauth",
    "record_connected",
    "status",
    "whoop_user_id",
]


@dataclass(frozen=True)
class Connection:
    """A member's connection as stored."""

    user_id: str
    whoop_user_id: int
    status: str
    scopes: tuple[str, ...]
    reconnected: bool = False


async def lock(db: Executor, user_id: str) -> str | None:
    """Lock the member's row (the lock of their credentials): their status, or None if unknown."""
    found: str | None = await db.fetchval(
        "SELECT status FROM whoop_connections WHERE user_id = $1 FOR UPDATE", user_id
    )
    return found


async def status(db: Executor, user_id: str) -> str | None:
    """The member's connection status (``connected``, ``needs_reauth``, ``disconnected``), or None."""
    found: str | None = await db.fetchval("SELECT status FROM whoop_connections WHERE user_id = $1", user_id)
    return found


async def whoop_user_id(db: Executor, user_id: str) -> int | None:
    """The WHOOP member id of ``user_id``, or None when they never connected."""
    found: int | None = await db.fetchval(
        "SELECT whoop_user_id FROM whoop_connections WHERE user_id = $1", user_id
    )
    return found


async def exists(db: Executor, user_id: str) -> bool:
    """Whether ``user_id`` ever connected."""
    found = await db.fetchval("SELECT EXISTS (SELECT 1 FROM whoop_connections WHERE user_id = $1)", user_id)
    return bool(found)


async def connection(db: Executor, user_id: str) -> Connection | None:
    """The member's connection, or None."""
    row = await db.fetchrow(
        "SELECT user_id, whoop_user_id, status, scopes FROM whoop_connections WHERE user_id = $1", user_id
    )
    if row is None:
        return None
    return Connection(row["user_id"], row["whoop_user_id"], row["status"], tuple(row["scopes"]))


async def record_connected(db: Executor, user_id: str, whoop_member_id: int, scopes: Sequence[str]) -> None:
    """The member (re)connected: ``connected`` with these scopes (hold ``lock`` first)."""
    await db.execute(
        """
        INSERT INTO whoop_connections (user_id, whoop_user_id, status, scopes)
        VALUES ($1, $2, 'connected', $3)
        ON CONFLICT (user_id) DO UPDATE SET status = 'connected', scopes = EXCLUDED.scopes,
            connected_at = now(), updated_at = now(), disconnected_at = NULL
        """,
        user_id,
        whoop_member_id,
        list(scopes),
    )


async def mark_disconnected(db: Executor, user_id: str) -> None:
    """The member disconnected (or is being erased)."""
    await db.execute(
        """
        UPDATE whoop_connections
        SET status = 'disconnected', disconnected_at = now(), updated_at = now()
        WHERE user_id = $1
        """,
        user_id,
    )


async def mark_needs_reauth(db: Executor, user_id: str) -> None:
    """WHOOP refused the member's grant: a connected member must authorize again."""
    await db.execute(
        "UPDATE whoop_connections SET status = 'needs_reauth', updated_at = now() "
        "WHERE user_id = $1 AND status = 'connected'",
        user_id,
    )


async def count_needs_reauth(db: Executor) -> int:
    """How many members must authorize again."""
    return int(await db.fetchval("SELECT count(*) FROM whoop_connections WHERE status = 'needs_reauth'"))


async def needs_reauth(db: Executor, limit: int) -> list[asyncpg.Record]:
    """The members who must authorize again, longest waiting first: ``user_id, whoop_user_id, updated_at``."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT user_id, whoop_user_id, updated_at FROM whoop_connections WHERE status = 'needs_reauth' "
        "ORDER BY updated_at, user_id LIMIT $1",
        limit,
    )
    return rows


def connected_sql(columns: str) -> str:
    """A subquery of the ``columns`` of every ``connected`` member, for a statement over all of them
    (the reconciliation sweep: ``FROM ({connected_sql("user_id, whoop_user_id")}) c``)."""
    return f"SELECT {columns} FROM whoop_connections WHERE status = 'connected'"  # noqa: S608 - callers' constants


def join_sql(alias: str, user_id: str) -> str:
    """A ``LEFT JOIN`` of the connection rows as ``alias`` on ``user_id`` (an SQL expression), for a
    reader that shows a connection next to other rows in one query (the query API, ``wear users``)."""
    return f"LEFT JOIN whoop_connections {alias} ON {alias}.user_id = {user_id}"
