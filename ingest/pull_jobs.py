"""The edge's rules for ``pull_jobs``: one active pull per member, a daily allowance, no dead blockers.

* **One active pull per member.** A job is active while ``requested`` or ``running``; a partial
  unique index (migration 0033) keeps a second one out whatever process inserts it, and a refused
  insert is :class:`PullInProgress` (409, naming the active job).
* **A daily allowance.** A member may start ``INGEST_PULLS_PER_DAY`` pulls in any 24 hours, counted
  in ``pull_jobs`` (so every edge process agrees): each pull the route accepted counts, connect-time
  backfills and pulls the edge itself failed to announce (``kafka_unavailable``) do not. Beyond it,
  :class:`PullRateLimited` (429) with the seconds until the oldest counted pull leaves the window.
* **Connect supersedes.** A (re)connect records its backfill in place of the member's active job,
  which is marked ``failed`` (``superseded by <job>``): the connect never fails on the limit, and
  the fetcher skips what is left of the superseded job (``processors/backfill.py``).
* **A lost announcement does not block.** A job still ``requested`` after ``INGEST_PULL_STALE_S``
  (the edge stopped between the insert and the append of ``BackfillRequested``, or no fetcher has
  read it since) is marked ``failed`` (``stale``) when the member asks again.

Each decision runs in the caller's transaction under a per-member advisory lock, so two requests of
one member are decided one after the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from infra.vault import Executor
from ingest.errors import PullInProgress, PullRateLimited

if TYPE_CHECKING:
    from ingest.store import PullJob

__all__ = ["APPEND_FAILED", "PullLimits", "insert_pull", "replace_active_pull"]

APPEND_FAILED = "kafka_unavailable"  # the error of a job whose BackfillRequested was never appended
_LOCK_SPACE = "pull-jobs:"
_ACTIVE_JOB = "SELECT job_id FROM pull_jobs WHERE user_id = $1 AND status IN ('requested', 'running')"
_SUPERSEDE = """
    UPDATE pull_jobs SET status = 'failed', error = $2, updated_at = now()
    WHERE user_id = $1 AND status IN ('requested', 'running') RETURNING job_id
"""
_FAIL_STALE = """
    UPDATE pull_jobs SET status = 'failed', error = 'stale', updated_at = now()
    WHERE user_id = $1 AND status = 'requested' AND created_at < now() - make_interval(secs => $2)
"""

_INSERT = """
    INSERT INTO pull_jobs (job_id, user_id, resource_types, range_start, range_end, requested_by)
    VALUES ($1, $2, $3, $4, $5, $6)
"""
# Seconds until the member's per_day-th newest counted pull leaves the 24-hour window; no row while
# fewer than per_day pulls were counted in it (a pull is allowed).
_WAIT = """
    SELECT extract(epoch FROM created_at + interval '1 day' - now())::float8
    FROM pull_jobs
    WHERE user_id = $1 AND requested_by <> 'connect' AND error IS DISTINCT FROM $3
      AND created_at > now() - interval '1 day'
    ORDER BY created_at DESC OFFSET $2 - 1 LIMIT 1
"""


@dataclass(frozen=True)
class PullLimits:
    """How many pulls a member may start per day, and when a never-started job stops counting as active."""

    per_day: int
    stale_s: float


async def _lock(db: Executor, user_id: str) -> None:
    await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || $2, 0))", _LOCK_SPACE, user_id)


async def _active(db: Executor, user_id: str) -> str | None:
    job_id: str | None = await db.fetchval(_ACTIVE_JOB, user_id)
    return job_id


async def _insert(db: Executor, user_id: str, job: PullJob) -> None:
    await db.execute(
        _INSERT, job.job_id, user_id, list(job.resource_types), job.start, job.end, job.requested_by
    )


async def insert_pull(db: asyncpg.Connection | PoolConnectionProxy, job: PullJob, limits: PullLimits) -> None:
    """Record a pull requested through the route (inside the caller's transaction), or refuse it."""
    await _lock(db, job.user_id)
    await db.execute(_FAIL_STALE, job.user_id, float(limits.stale_s))
    active = await _active(db, job.user_id)
    if active is not None:
        raise PullInProgress(active)
    wait_s: float | None = await db.fetchval(_WAIT, job.user_id, limits.per_day, APPEND_FAILED)
    if wait_s is not None:
        raise PullRateLimited(max(1, math.ceil(wait_s)))
    try:
        async with db.transaction():  # a savepoint: the caller's transaction survives a refusal
            await _insert(db, job.user_id, job)
    except asyncpg.UniqueViolationError as exc:  # a writer that does not take the lock
        raise PullInProgress(await _active(db, job.user_id) or "unknown") from exc


async def replace_active_pull(db: Executor, user_id: str, job: PullJob) -> list[str]:
    """Record a connect-time backfill in place of the member's active job; the superseded job ids."""
    await _lock(db, user_id)
    superseded = await db.fetch(_SUPERSEDE, user_id, f"superseded by {job.job_id}")
    await _insert(db, user_id, job)
    return [row["job_id"] for row in superseded]
