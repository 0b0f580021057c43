"""The erasure gate: no stage writes a member's rows back once their erasure has begun.

An erasure first *closes* the gate of its member: under the member's exclusive advisory lock it
records the sha256 of the user id in ``erased_members``. Every stage that writes rows for members
(the fetcher's document log, the projections) first *admits* the members of its transaction: it
takes their advisory locks in shared mode and drops those whose gate is closed. The locks order the
two: a transaction that admitted a member commits before the erasure closes the gate (the erasure's
deletes, which come after, remove what it wrote), and one that starts after sees the gate closed.

A member who connects again is let in again (:func:`reopen`). Only hashes are stored, so after an
erasure no row names the member.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from infra.vault import Executor

__all__ = ["admit", "close", "is_closed", "reopen", "user_hash"]

_LOCK_SPACE = "erasure-gate:"


def user_hash(user_id: str) -> str:
    """The stored form of a user id in the erasure tables: hex sha256."""
    return hashlib.sha256(user_id.encode()).hexdigest()


async def admit(db: Executor, user_ids: Iterable[str]) -> set[str]:
    """The members among ``user_ids`` not being erased, locked (shared) until the transaction ends.

    Must run inside the transaction that writes their rows.
    """
    users = sorted(set(user_ids))
    if not users:
        return set()
    rows = await db.fetch(
        """
        SELECT u FROM unnest($1::text[]) AS u,
             LATERAL (SELECT pg_advisory_xact_lock_shared(hashtextextended($2 || u, 0))) AS locked
        WHERE NOT EXISTS (
            SELECT 1 FROM erased_members WHERE user_hash = encode(sha256(convert_to(u, 'UTF8')), 'hex')
        )
        """,
        users,
        _LOCK_SPACE,
    )
    return {row["u"] for row in rows}


async def close(db: Executor, user_id: str) -> None:
    """Close the gate of ``user_id`` (in the erasure's transaction, which holds the lock until it ends)."""
    await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || $2, 0))", _LOCK_SPACE, user_id)
    await db.execute(
        "INSERT INTO erased_members (user_hash) VALUES ($1) ON CONFLICT (user_hash) DO NOTHING",
        user_hash(user_id),
    )


async def reopen(db: Executor, user_id: str) -> bool:
    """Let a member who connected again in (inside the connection's transaction); True when open.

    While an erasure of theirs is still pending the gate stays closed: that erasure removes the new
    connection too, and the member connects again once it is done.
    """
    await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || $2, 0))", _LOCK_SPACE, user_id)
    pending = await db.fetchval(
        "SELECT true FROM erasures WHERE user_hash = $1 AND status IN ('requested', 'running')",
        user_hash(user_id),
    )
    if pending:
        return False
    await db.execute("DELETE FROM erased_members WHERE user_hash = $1", user_hash(user_id))
    return True


async def is_closed(db: Executor, user_id: str) -> bool:
    """True when the member's erasure has begun (and they have not connected again)."""
    found = await db.fetchval("SELECT true FROM erased_members WHERE user_hash = $1", user_hash(user_id))
    return bool(found)
