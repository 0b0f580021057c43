"""The ``erasures`` table (its owner): erasure jobs requested, leased, progressed and done.

A member's erasure is a job (``ingest.erasure`` runs its steps). A job is requested once per member
at a time (idempotent), leased to one runner (a crashed runner's job is taken again once its lease
ran out), and marked done in the transaction that deletes the member's rows, when it forgets the
user id: only its sha256 stays. The status route shows an ``ErasureJob``, never a user id.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg

from infra import erasure_gate

__all__ = ["Claimed", "ErasureJob", "ErasureJobs", "Requester", "mark_done"]

Requester = Literal["member", "admin"]


@dataclass(frozen=True)
class ErasureJob:
    """An erasure as its status route shows it: no user id, ever."""

    job_id: str
    status: str
    progress: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Claimed:
    """A job leased to one runner: whom to erase."""

    job_id: str
    user_id: str
    requested_by: Requester


class ErasureJobs:
    """The ``erasures`` table: requested, claimed (with a lease), progressed, done."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def request(self, user_id: str, requested_by: Requester) -> ErasureJob:
        """The member's active erasure, or a new one (idempotent)."""
        user_hash = erasure_gate.user_hash(user_id)
        async with self.pool.acquire() as db, db.transaction():
            await db.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('erasure-job:' || $1, 0))", user_hash
            )
            active = await db.fetchval(
                "SELECT job_id FROM erasures WHERE user_hash = $1 AND status IN ('requested', 'running')",
                user_hash,
            )
            if active is None:
                active = uuid.uuid4()
                await db.execute(
                    "INSERT INTO erasures (job_id, user_id, user_hash, requested_by) VALUES ($1, $2, $3, $4)",
                    active,
                    user_id,
                    user_hash,
                    requested_by,
                )
        job = await self.job(str(active))
        assert job is not None  # noqa: S101 - inserted or found above, never deleted
        return job

    async def claim(self, lease_s: float, job_id: str | None = None) -> Claimed | None:
        """A pending job whose lease ran out (``job_id`` only, if given), leased to the caller."""
        row = await self.pool.fetchrow(
            """
            UPDATE erasures SET status = 'running', attempts = attempts + 1,
                lease_until = now() + make_interval(secs => $1), updated_at = now()
            WHERE job_id = (
                SELECT job_id FROM erasures
                WHERE status IN ('requested', 'running') AND (lease_until IS NULL OR lease_until < now())
                  AND ($2::uuid IS NULL OR job_id = $2::uuid)
                ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
            )
            RETURNING job_id::text, user_id, requested_by
            """,
            lease_s,
            job_id,
        )
        return None if row is None else Claimed(row["job_id"], row["user_id"], row["requested_by"])

    async def progress(self, job_id: str, progress: dict[str, object], lease_s: float) -> None:
        """Record the step reached and renew the runner's lease (a slow step keeps the job its own)."""
        await self.pool.execute(
            "UPDATE erasures SET progress = $2::jsonb, lease_until = now() + make_interval(secs => $3), "
            "updated_at = now() WHERE job_id = $1::uuid AND status <> 'done'",
            job_id,
            json.dumps(progress),
            lease_s,
        )

    async def release(self, job_id: str, error: str, retry_in_s: float) -> None:
        """A step failed: the job is taken again after ``retry_in_s``."""
        await self.pool.execute(
            """
            UPDATE erasures
            SET error = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
            WHERE job_id = $1::uuid AND status <> 'done'
            """,
            job_id,
            error,
            retry_in_s,
        )

    async def job(self, job_id: str) -> ErasureJob | None:
        try:
            uuid.UUID(job_id)
        except ValueError:
            return None
        row = await self.pool.fetchrow(
            "SELECT job_id::text, status, progress::text AS progress, error, created_at, updated_at "
            "FROM erasures WHERE job_id = $1::uuid",
            job_id,
        )
        if row is None:
            return None
        return ErasureJob(
            row["job_id"],
            row["status"],
            json.loads(row["progress"]),
            row["error"],
            row["created_at"],
            row["updated_at"],
        )


async def mark_done(
    db: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, job_id: str, progress: dict[str, object]
) -> None:
    """Mark the job done and forget its user id, in the caller's transaction (the one deleting the rows)."""
    await db.execute(
        "UPDATE erasures SET status = 'done', user_id = NULL, error = NULL, lease_until = NULL, "
        "progress = $2::jsonb, updated_at = now() WHERE job_id = $1::uuid",
        job_id,
        json.dumps(progress),
    )
