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

The rows are ``infra.pull_jobs``'s (the table's owner); this module holds the edge's decisions.
Each decision runs in the caller's transaction under a per-member advisory lock, so two requests of
one member are decided one after the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from infra import pull_jobs
from infra.pull_jobs import PullJob
from infra.vault import Executor
from ingest.errors import PullInProgress, PullRateLimited

__all__ = ["APPEND_FAILED", "PullLimits", "insert_pull", "replace_active_pull"]

APPEND_FAILED = "kafka_unavailable"  # the error of a job whose BackfillRequested was never appended
_LOCK_SPACE = "pull-jobs:"


@dataclass(frozen=True)
class PullLimits:
    """How many pulls a member may start per day, and when a never-started job stops counting as active."""

    per_day: int
    stale_s: float


async def _lock(db: Executor, user_id: str) -> None:
    await db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || $2, 0))", _LOCK_SPACE, user_id)


async def insert_pull(db: asyncpg.Connection | PoolConnectionProxy, job: PullJob, limits: PullLimits) -> None:
    """Record a pull requested through the route (inside the caller's transaction), or refuse it."""
    await _lock(db, job.user_id)
    await pull_jobs.fail_stale(db, job.user_id, limits.stale_s)
    active = await pull_jobs.active_job(db, job.user_id)
    if active is not None:
        raise PullInProgress(active)
    wait_s = await pull_jobs.seconds_until_allowed(db, job.user_id, limits.per_day, APPEND_FAILED)
    if wait_s is not None:
        raise PullRateLimited(max(1, math.ceil(wait_s)))
    try:
        async with db.transaction():  # a savepoint: the caller's transaction survives a refusal
            await pull_jobs.insert(db, job.user_id, job)
    except asyncpg.UniqueViolationError as exc:  # a writer that does not take the lock
        raise PullInProgress(await pull_jobs.active_job(db, job.user_id) or "unknown") from exc


async def replace_active_pull(db: Executor, user_id: str, job: PullJob) -> list[str]:
    """Record a connect-time backfill in place of the member's active job; the superseded job ids."""
    await _lock(db, user_id)
    superseded = await pull_jobs.supersede_active(db, user_id, f"superseded by {job.job_id}")
    await pull_jobs.insert(db, user_id, job)
    return superseded
