"""``fetcher_reconciliations``, the owner: when each member is next swept and checked, and what was read.

The only module that writes the table (migrations 0024, 0041, 0043). The full sweep
(``processors.reconcile``) enrols connected members and claims those due; the targeted checks
(``processors.reconcile_checks``) claim members due for a look at their gaps and keep the marks of
the reads they enqueued. Connected members come from their owner, ``infra.connections``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from infra import connections

__all__ = ["claim_checks", "claim_sweeps", "count_empty_read", "enrol", "finish_sweep", "store_marks"]

_CONNECTED = connections.connected_sql("user_id, whoop_user_id")

_ENROL = f"""
    INSERT INTO fetcher_reconciliations (user_id, next_due_at, watched_since)
    SELECT c.user_id, $1::timestamptz + make_interval(secs => random() * $2::float8), $1
    FROM ({_CONNECTED}) c
    ON CONFLICT (user_id) DO NOTHING
"""  # noqa: S608 - the owner's constant fragment

_CLAIM_SWEEPS = f"""
    UPDATE fetcher_reconciliations r
    SET next_due_at = $1::timestamptz + make_interval(secs => $2::float8), last_started_at = $1,
        updated_at = now()
    FROM ({_CONNECTED}) c
    WHERE c.user_id = r.user_id AND r.next_due_at <= $1::timestamptz
    RETURNING r.user_id, c.whoop_user_id, r.watched_since
"""  # noqa: S608 - the owner's constant fragment

_CLAIM_CHECKS = f"""
    UPDATE fetcher_reconciliations r
    SET next_check_at = $1::timestamptz + make_interval(secs => $2::float8),
        watched_since = COALESCE(r.watched_since, $1), updated_at = now()
    FROM ({_CONNECTED}) c
    WHERE c.user_id = r.user_id
      AND r.user_id IN (
          SELECT d.user_id FROM fetcher_reconciliations d
          WHERE d.next_check_at IS NULL OR d.next_check_at <= $1::timestamptz
          ORDER BY d.next_check_at NULLS FIRST LIMIT $3 FOR UPDATE SKIP LOCKED
      )
    RETURNING r.user_id, c.whoop_user_id, COALESCE(r.watched_since, $1) AS watched_since, r.checks
"""  # noqa: S608 - the owner's constant fragment


async def enrol(db: Any, now: datetime, interval_s: float) -> None:
    """Every connected member not yet known gets a first sweep placed at random in the period."""
    await db.execute(_ENROL, now, interval_s)


async def claim_sweeps(db: Any, now: datetime, interval_s: float) -> Sequence[asyncpg.Record]:
    """The members whose sweep is due, moved on by one period: ``user_id, whoop_user_id, watched_since``."""
    rows: Sequence[asyncpg.Record] = await db.fetch(_CLAIM_SWEEPS, now, interval_s)
    return rows


async def claim_checks(db: Any, now: datetime, every_s: float, batch: int) -> Sequence[asyncpg.Record]:
    """Up to ``batch`` members due for a look at their gaps (skipping those another scanner holds):
    ``user_id, whoop_user_id, watched_since, checks``."""
    rows: Sequence[asyncpg.Record] = await db.fetch(_CLAIM_CHECKS, now, every_s, batch)
    return rows


async def store_marks(db: Any, user_id: str, marks: Mapping[str, datetime], reads: int) -> None:
    """Keep the marks of the targeted reads enqueued (key -> when) and count the new ones."""
    await db.execute(
        "UPDATE fetcher_reconciliations SET checks = $2::jsonb, targeted_reads = targeted_reads + $3 "
        "WHERE user_id = $1",
        user_id,
        orjson.dumps({k: v.isoformat() for k, v in marks.items()}).decode(),
        reads,
    )


async def count_empty_read(db: Any, user_id: str) -> None:
    """A targeted collection read found nothing (a false read of the checks)."""
    await db.execute(
        "UPDATE fetcher_reconciliations SET targeted_empty = targeted_empty + 1 WHERE user_id = $1", user_id
    )


async def finish_sweep(db: Any, user_id: str, at: datetime, calls: int, published: int) -> None:
    """A member's sweep read every collection: "swept up to here", with what it cost and found."""
    await db.execute(
        """
        UPDATE fetcher_reconciliations SET last_finished_at = $2, last_calls = $3, last_published = $4,
            runs = runs + 1, updated_at = now()
        WHERE user_id = $1
        """,
        user_id,
        at,
        calls,
        published,
    )
