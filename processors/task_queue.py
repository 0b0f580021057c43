"""The fetchers' work queue in PostgreSQL (``fetcher_tasks``): deferred, never dropped, one row per resource.

Every piece of work is a row keyed by (member, kind, resource): a webhook enqueues or merges into
it, so duplicate and reordered webhooks for one resource become one row and one WHOOP call (a
webhook merged into a row whose fetch is in flight can make it run again after a coalescing delay).
Workers of every process claim the most urgent due row (priority, then due time; backfill rows
by member, round-robin) with a lease (``FOR UPDATE SKIP LOCKED``); a worker that dies leaves its
lease to expire and the row runs again (at-least-once). A merge bumps ``generation``: a worker
that finishes an older generation leaves the row for the newer work instead of deleting it.
Re-fetches of pending scores, 404 retries and work waiting for quota are the same row with a
later ``due_at``. Rows of a member who must
authorize again are parked until the reconnect. New due work is announced with ``NOTIFY``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from infra import erasure_gate
from infra.vault import Executor
from processors.quota import Priority

__all__ = ["CHANNEL", "Task", "TaskQueue"]

CHANNEL = "fetcher_tasks"
_KEEP_IDS = 20  # caused_by / trace_ids kept per row

_ENQUEUE = """
INSERT INTO fetcher_tasks (user_id, whoop_user_id, kind, resource_id, wants, priority, due_at,
                           latest_event_at, caused_by, trace_ids, payload, origin)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb)
ON CONFLICT (user_id, kind, resource_id) DO UPDATE SET
    wants = ARRAY(SELECT DISTINCT w FROM unnest(fetcher_tasks.wants || EXCLUDED.wants) AS w ORDER BY w),
    priority = LEAST(fetcher_tasks.priority, EXCLUDED.priority),
    due_at = CASE
        WHEN $14::timestamptz IS NULL OR fetcher_tasks.lease_until IS NULL
             OR fetcher_tasks.lease_until <= $15::timestamptz
            THEN LEAST(fetcher_tasks.due_at, EXCLUDED.due_at)
        -- in flight: the run may have missed this event; run again once the window has gathered more
        WHEN fetcher_tasks.due_at <= $15::timestamptz THEN $14::timestamptz
        ELSE LEAST(fetcher_tasks.due_at, $14::timestamptz)
    END,
    generation = fetcher_tasks.generation
        + CASE WHEN EXCLUDED.trace_ids <@ fetcher_tasks.trace_ids
                    AND EXCLUDED.wants <@ fetcher_tasks.wants THEN 0 ELSE 1 END,
    latest_event_at = GREATEST(fetcher_tasks.latest_event_at, EXCLUDED.latest_event_at),
    caused_by = (fetcher_tasks.caused_by || EXCLUDED.caused_by)[
        GREATEST(1, cardinality(fetcher_tasks.caused_by) + cardinality(EXCLUDED.caused_by) - $13 + 1):],
    trace_ids = (fetcher_tasks.trace_ids || EXCLUDED.trace_ids)[
        GREATEST(1, cardinality(fetcher_tasks.trace_ids) + cardinality(EXCLUDED.trace_ids) - $13 + 1):],
    updated_at = now()
"""

# The most urgent due row above the backfill priority (index order: fetcher_tasks_due), else a backfill
# row, member by member: the member whose backfill was served least recently (fetcher_backfill_turns,
# written by processors/backfill.py; never served: first) goes first.
_CLAIM = """
UPDATE fetcher_tasks AS t SET lease_owner = $1, lease_until = $3, updated_at = now()
FROM (
    SELECT task_id FROM fetcher_tasks
    WHERE NOT parked AND priority < $4 AND due_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)
    ORDER BY priority, due_at, task_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS c
WHERE t.task_id = c.task_id
RETURNING t.*
"""
_CLAIM_BACKFILL = """
UPDATE fetcher_tasks AS t SET lease_owner = $1, lease_until = $3, updated_at = now()
FROM (
    SELECT f.task_id FROM fetcher_tasks AS f
    LEFT JOIN fetcher_backfill_turns AS b ON f.kind = 'backfill' AND b.user_id = f.user_id
    WHERE NOT f.parked AND f.priority >= $4 AND f.due_at <= $2
      AND (f.lease_until IS NULL OR f.lease_until <= $2)
    ORDER BY f.priority, b.served_at NULLS FIRST, f.due_at, f.task_id
    LIMIT 1
    FOR UPDATE OF f SKIP LOCKED
) AS c
WHERE t.task_id = c.task_id
RETURNING t.*
"""

_RESCHEDULE = """
UPDATE fetcher_tasks SET
    wants = CASE WHEN generation = $2 THEN $4
                 ELSE ARRAY(SELECT DISTINCT w FROM unnest(wants || $4) AS w ORDER BY w) END,
    priority = CASE WHEN generation = $2 THEN $5 ELSE LEAST(priority, $5) END,
    due_at = CASE WHEN generation = $2 THEN $6 ELSE LEAST(due_at, $6) END,
    latest_event_at = CASE WHEN generation = $2 AND NOT $12 THEN NULL ELSE latest_event_at END,
    pending_attempts = $7, not_found_attempts = $8, error_attempts = $9,
    payload = $10::jsonb, last_error = $11,
    lease_owner = NULL, lease_until = NULL, updated_at = now()
WHERE task_id = $1 AND lease_owner = $3
"""


@dataclass(frozen=True)
class Task:
    """One claimed row."""

    task_id: int
    user_id: str
    whoop_user_id: int
    kind: str
    resource_id: str
    wants: frozenset[str]
    priority: Priority
    generation: int
    due_at: datetime
    latest_event_at: datetime | None
    caused_by: tuple[str, ...]
    trace_ids: tuple[str, ...]
    pending_attempts: int = 0
    not_found_attempts: int = 0
    error_attempts: int = 0
    payload: Mapping[str, Any] = field(default_factory=dict)
    origin: Mapping[str, Any] | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Task:
        return cls(
            task_id=row["task_id"],
            user_id=row["user_id"],
            whoop_user_id=row["whoop_user_id"],
            kind=row["kind"],
            resource_id=row["resource_id"],
            wants=frozenset(row["wants"]),
            priority=Priority(row["priority"]),
            generation=row["generation"],
            due_at=row["due_at"],
            latest_event_at=row["latest_event_at"],
            caused_by=tuple(row["caused_by"]),
            trace_ids=tuple(row["trace_ids"]),
            pending_attempts=row["pending_attempts"],
            not_found_attempts=row["not_found_attempts"],
            error_attempts=row["error_attempts"],
            payload=json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"],
            origin=json.loads(row["origin"]) if isinstance(row["origin"], str) else row["origin"],
        )


class TaskQueue:
    """``fetcher_tasks`` for one worker identity (``owner``)."""

    def __init__(self, pool: asyncpg.Pool, owner: str, lease_s: float) -> None:
        self._pool = pool
        self.owner = owner
        self._lease = timedelta(seconds=lease_s)

    async def enqueue(
        self,
        db: Executor,
        *,
        user_id: str,
        whoop_user_id: int,
        kind: str,
        resource_id: str,
        priority: Priority,
        due_at: datetime,
        wants: Iterable[str] = (),
        event_at: datetime | None = None,
        caused_by: Iterable[str] = (),
        trace_ids: Iterable[str] = (),
        payload: Mapping[str, Any] | None = None,
        origin: Mapping[str, Any] | None = None,
        busy_due_at: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """Insert the work, or merge it into the row already there (and wake the workers).

        A merge keeps the earlier due time. With ``busy_due_at`` (and ``now``), a merge into a row
        whose fetch is in flight at ``now`` (leased) makes the row due again at ``busy_due_at``
        instead of right after that fetch: the events that arrive meanwhile share the next call.
        Nothing is queued for a member whose erasure has begun (``infra.erasure_gate``; inside a
        transaction, its lock orders this insert before the erasure's final delete).
        """
        if busy_due_at is not None and now is None:
            raise ValueError("busy_due_at needs now")
        if not await erasure_gate.admit(db, [user_id]):
            return
        await db.execute(
            _ENQUEUE,
            user_id,
            whoop_user_id,
            kind,
            resource_id,
            sorted(set(wants)),
            int(priority),
            due_at,
            event_at,
            list(caused_by)[-_KEEP_IDS:],
            list(trace_ids)[-_KEEP_IDS:],
            json.dumps(dict(payload or {})),
            None if origin is None else json.dumps(dict(origin)),
            _KEEP_IDS,
            busy_due_at,
            now,
        )
        await db.execute("SELECT pg_notify($1, '')", CHANNEL)

    async def claim(self, now: datetime) -> Task | None:
        """The most urgent due row, leased to this owner; None when nothing is due."""
        for query in (_CLAIM, _CLAIM_BACKFILL):
            row = await self._pool.fetchrow(query, self.owner, now, now + self._lease, int(Priority.BACKFILL))
            if row is not None:
                return Task.from_row(row)
        return None

    async def renew(self, task: Task, now: datetime) -> bool:
        """Extend the lease; False when the row is no longer ours."""
        status: str = await self._pool.execute(
            "UPDATE fetcher_tasks SET lease_until = $3 WHERE task_id = $1 AND lease_owner = $2",
            task.task_id,
            self.owner,
            now + self._lease,
        )
        return status.endswith(" 1")

    async def next_due(self) -> datetime | None:
        """When the earliest unleased, unparked row becomes due."""
        value: datetime | None = await self._pool.fetchval(
            "SELECT min(due_at) FROM fetcher_tasks WHERE NOT parked AND lease_until IS NULL"
        )
        return value

    async def complete(self, task: Task) -> bool:
        """Done: delete the row, unless newer work was merged meanwhile (then release it); True if deleted."""
        status: str = await self._pool.execute(
            "DELETE FROM fetcher_tasks WHERE task_id = $1 AND generation = $2 AND lease_owner = $3",
            task.task_id,
            task.generation,
            self.owner,
        )
        if status.endswith(" 1"):
            return True
        await self._pool.execute(
            "UPDATE fetcher_tasks SET lease_owner = NULL, lease_until = NULL, updated_at = now() "
            "WHERE task_id = $1 AND lease_owner = $2",
            task.task_id,
            self.owner,
        )
        return False

    async def reschedule(
        self,
        task: Task,
        *,
        due_at: datetime,
        wants: Iterable[str] | None = None,
        priority: Priority | None = None,
        pending_attempts: int | None = None,
        not_found_attempts: int | None = None,
        error_attempts: int | None = None,
        payload: Mapping[str, Any] | None = None,
        error: str | None = None,
        keep_event_at: bool = False,
    ) -> None:
        """Run the row again at ``due_at`` (merged with newer work if some arrived meanwhile).

        ``keep_event_at``: the events merged so far are not handled yet (the run was cut short), so
        the next run may still skip what a fetch since then covered.
        """
        await self._pool.execute(
            _RESCHEDULE,
            task.task_id,
            task.generation,
            self.owner,
            sorted(task.wants if wants is None else set(wants)),
            int(task.priority if priority is None else priority),
            due_at,
            task.pending_attempts if pending_attempts is None else pending_attempts,
            task.not_found_attempts if not_found_attempts is None else not_found_attempts,
            task.error_attempts if error_attempts is None else error_attempts,
            json.dumps(dict(task.payload if payload is None else payload)),
            None if error is None else error[:500],
            keep_event_at,
        )

    async def cancel(self, db: Executor, user_id: str, kind: str, resource_id: str) -> None:
        """Forget queued work on one resource (it was deleted)."""
        await db.execute(
            "DELETE FROM fetcher_tasks WHERE user_id = $1 AND kind = $2 AND resource_id = $3",
            user_id,
            kind,
            resource_id,
        )

    async def drop_want(self, db: Executor, user_id: str, kind: str, resource_id: str, want: str) -> None:
        """Queued work on one resource no longer wants ``want``; a row left wanting nothing is forgotten."""
        await db.execute(
            "UPDATE fetcher_tasks SET wants = array_remove(wants, $4) "
            "WHERE user_id = $1 AND kind = $2 AND resource_id = $3",
            user_id,
            kind,
            resource_id,
            want,
        )
        await db.execute(
            "DELETE FROM fetcher_tasks WHERE user_id = $1 AND kind = $2 AND resource_id = $3 "
            "AND cardinality(wants) = 0",
            user_id,
            kind,
            resource_id,
        )

    async def backfill_job_ids(self, db: Executor, user_id: str) -> list[str]:
        """The job ids of the member's queued backfill rows."""
        rows = await db.fetch(
            "SELECT DISTINCT payload->>'job_id' AS job_id FROM fetcher_tasks "
            "WHERE user_id = $1 AND kind = 'backfill'",
            user_id,
        )
        return [row["job_id"] for row in rows if row["job_id"] is not None]

    async def park(self, db: Executor, user_id: str) -> None:
        """Keep a member's work until they authorize again."""
        await db.execute(
            "UPDATE fetcher_tasks SET parked = true, lease_owner = NULL, lease_until = NULL, "
            "updated_at = now() WHERE user_id = $1",
            user_id,
        )

    async def unpark(self, db: Executor, user_id: str, now: datetime) -> None:
        """A member authorized again: their parked work is due now."""
        await db.execute(
            "UPDATE fetcher_tasks SET parked = false, due_at = LEAST(due_at, $2), updated_at = now() "
            "WHERE user_id = $1 AND parked",
            user_id,
            now,
        )
        await db.execute("SELECT pg_notify($1, '')", CHANNEL)

    async def drop_user(self, db: Executor, user_id: str) -> None:
        """A member disconnected: their data is no longer ours to fetch."""
        await db.execute("DELETE FROM fetcher_tasks WHERE user_id = $1", user_id)
