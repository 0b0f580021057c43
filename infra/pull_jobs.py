"""The owner of ``pull_jobs``: a member's pull (backfill) jobs, their status and progress, for every stage.

The edge records jobs and decides whether one may start (``ingest/pull_jobs.py``: one active pull
per member, a daily allowance); the fetcher reports their progress and ends them
(``processors/backfill.py``); the query API and ``wear`` show them. Only this module writes the
table (``tests/unit/test_table_ownership.py``). A job is active while ``requested`` or ``running``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from infra.vault import Executor

__all__ = [
    "PullJob",
    "active_job",
    "active_jobs",
    "ended",
    "fail",
    "fail_active",
    "fail_stale",
    "insert",
    "job",
    "latest_job_sql",
    "record_progress",
    "seconds_until_allowed",
    "supersede_active",
]


@dataclass(frozen=True)
class PullJob:
    """A pull (backfill) job and its progress."""

    job_id: str
    user_id: str
    resource_types: tuple[str, ...]
    start: datetime
    end: datetime
    requested_by: str
    status: str = "requested"
    progress: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


# Seconds until the member's per_day-th newest counted pull leaves the 24-hour window; no row while
# fewer than per_day pulls were counted in it (a pull is allowed).
_WAIT = """
    SELECT extract(epoch FROM created_at + interval '1 day' - now())::float8
    FROM pull_jobs
    WHERE user_id = $1 AND requested_by <> 'connect' AND error IS DISTINCT FROM $3
      AND created_at > now() - interval '1 day'
    ORDER BY created_at DESC OFFSET $2 - 1 LIMIT 1
"""


async def insert(db: Executor, user_id: str, job: PullJob) -> None:
    """Record ``job`` of ``user_id`` (``requested``); a second active job raises UniqueViolationError."""
    await db.execute(
        """
        INSERT INTO pull_jobs (job_id, user_id, resource_types, range_start, range_end, requested_by)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        job.job_id,
        user_id,
        list(job.resource_types),
        job.start,
        job.end,
        job.requested_by,
    )


async def active_job(db: Executor, user_id: str) -> str | None:
    """The id of the member's active job, or None."""
    job_id: str | None = await db.fetchval(
        "SELECT job_id FROM pull_jobs WHERE user_id = $1 AND status IN ('requested', 'running')", user_id
    )
    return job_id


async def seconds_until_allowed(
    db: Executor, user_id: str, per_day: int, uncounted_error: str
) -> float | None:
    """Seconds until the member may start one more of ``per_day`` pulls a day; None when they may now.

    Connect-time backfills and jobs that failed with ``uncounted_error`` do not count."""
    wait_s: float | None = await db.fetchval(_WAIT, user_id, per_day, uncounted_error)
    return wait_s


async def fail_stale(db: Executor, user_id: str, stale_s: float) -> None:
    """Fail the member's job still ``requested`` after ``stale_s`` seconds (``stale``)."""
    await db.execute(
        """
        UPDATE pull_jobs SET status = 'failed', error = 'stale', updated_at = now()
        WHERE user_id = $1 AND status = 'requested' AND created_at < now() - make_interval(secs => $2)
        """,
        user_id,
        float(stale_s),
    )


async def supersede_active(db: Executor, user_id: str, reason: str) -> list[str]:
    """Fail the member's active jobs with ``reason``; their ids."""
    rows = await db.fetch(
        """
        UPDATE pull_jobs SET status = 'failed', error = $2, updated_at = now()
        WHERE user_id = $1 AND status IN ('requested', 'running') RETURNING job_id
        """,
        user_id,
        reason,
    )
    return [row["job_id"] for row in rows]


async def fail(db: Executor, job_id: str, error: str) -> None:
    """Mark the job ``failed`` whatever its status (its announcement was never appended)."""
    await db.execute(
        "UPDATE pull_jobs SET status = 'failed', error = $2, updated_at = now() WHERE job_id = $1",
        job_id,
        error,
    )


async def fail_active(db: Executor, job_ids: Iterable[str], reason: str) -> None:
    """Mark those of ``job_ids`` still active ``failed`` (their work was dropped)."""
    await db.execute(
        "UPDATE pull_jobs SET status = 'failed', error = $2, updated_at = now() "
        "WHERE job_id = ANY($1::text[]) AND status IN ('requested', 'running')",
        list(job_ids),
        reason,
    )


async def ended(db: Executor, job_id: str) -> str | None:
    """The job's status if it is over (``done`` or ``failed``); None while active or unrecorded."""
    status: str | None = await db.fetchval(
        "SELECT status FROM pull_jobs WHERE job_id = $1 AND status IN ('done', 'failed')", job_id
    )
    return status


async def record_progress(db: Executor, job_id: str, done: bool, progress: Mapping[str, object]) -> None:
    """The fetcher's figures per collection; an active job becomes ``done`` or ``running``."""
    await db.execute(
        """
        UPDATE pull_jobs SET
            status = CASE WHEN status IN ('done', 'failed') THEN status
                          WHEN $2 THEN 'done' ELSE 'running' END,
            progress = $3::jsonb, updated_at = now()
        WHERE job_id = $1
        """,
        job_id,
        done,
        json.dumps(dict(progress)),
    )


_JOB_COLUMNS = """job_id, user_id, resource_types, range_start, range_end, requested_by, status,
               progress::text AS progress, error, created_at, updated_at"""


async def job(db: Executor, user_id: str, job_id: str) -> PullJob | None:
    """The member's job ``job_id``, or None."""
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM pull_jobs WHERE user_id = $1 AND job_id = $2",  # noqa: S608 - constants
        user_id,
        job_id,
    )
    return None if row is None else _job_of(row)


async def active_jobs(db: Executor) -> list[PullJob]:
    """Every active job (``requested`` or ``running``) of every member, oldest first (``wear status``)."""
    rows = await db.fetch(
        f"SELECT {_JOB_COLUMNS} FROM pull_jobs WHERE status IN ('requested', 'running') "  # noqa: S608 - constants
        "ORDER BY created_at, job_id"
    )
    return [_job_of(row) for row in rows]


def _job_of(row: asyncpg.Record) -> PullJob:
    return PullJob(
        row["job_id"],
        row["user_id"],
        tuple(row["resource_types"]),
        row["range_start"],
        row["range_end"],
        row["requested_by"],
        row["status"],
        json.loads(row["progress"]),
        row["error"],
        row["created_at"],
        row["updated_at"],
    )


def latest_job_sql(columns: str, user_id: str) -> str:
    """A ``LATERAL`` subquery of the ``columns`` of the member's latest job (``user_id`` is an SQL
    expression), for a reader that shows it next to other rows in one query."""
    return (
        f"SELECT {columns} FROM pull_jobs WHERE user_id = {user_id} "  # noqa: S608 - callers' constants
        "ORDER BY created_at DESC, job_id DESC LIMIT 1"
    )
