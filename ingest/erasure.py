"""Erasing a member: every row of theirs deleted, every value of theirs on Kafka made unreadable.

An erasure is a job in ``erasures`` (``DELETE /v1/me``, ``python -m ingest erase``), run by
:class:`Eraser` in five steps, each safe to repeat, so a job that crashed midway is simply run again
(:class:`ErasureWorker` takes jobs whose lease ran out):

1. **close**: the erasure gate shuts (``infra.erasure_gate``: no stage writes the member's rows any
   more), the connection is marked disconnected (no token is issued any more), their API tokens are
   revoked and their pending one-time codes deleted.
2. **whoop**: the grant is revoked at WHOOP (``DELETE /v2/user/access``). Best effort: when WHOOP
   cannot be told, the outcome is recorded and the erasure goes on (the tokens are deleted below,
   so the grant can never be used again).
3. **announce**: ``UserErased`` on ``whoop.connections.v1`` (the fetcher drops the member's work).
4. **tombstones**: a tombstone for every document key the fetcher ever wrote for the member, on
   ``whoop.documents.v1`` (the normalizer forwards them to ``wear.records.v1``), so compaction
   eventually drops even the sealed values.
5. **delete**: in one transaction, the member's data key is destroyed (crypto-shredding: every
   sealed value of theirs, on every topic and DLQ, becomes unreadable), and their rows are deleted
   from every table in :data:`MEMBER_TABLES` and from every read-model version's tables; the job is
   marked done and forgets the user id.

Only the sha256 of the user id stays (``erasures``, ``erased_members``). The jobs themselves (the
``erasures`` table) are ``ingest.erasure_jobs``. See ADR 0004.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg

from infra import connections, erasure_gate
from infra.member_keys import MemberKeys
from infra.vault import VaultError
from ingest.connect import revoke_grant
from ingest.erasure_jobs import Claimed, ErasureJob, ErasureJobs, mark_done
from ingest.errors import WhoopError
from ingest.services import Services
from schemas.events import UserErased, new_event_id
from schemas.keys import record_key
from schemas.serde import encode

__all__ = ["MEMBER_TABLES", "Eraser", "ErasureWorker", "erasure_worker"]

logger = logging.getLogger(__name__)

MEMBER_TABLES: tuple[str, ...] = (
    # read models (projections)
    "rm_cycles",
    "rm_sleeps",
    "rm_recoveries",
    "rm_workouts",
    "rm_tombstones",
    "rm_daily_summaries",
    "rm_sync_status",
    "rm_sync_activity",
    # the fetcher's state
    "fetcher_tasks",
    "fetcher_resources",
    "fetcher_sleep_cycles",
    "fetcher_backfill_progress",
    "fetcher_backfill_turns",
    "fetcher_reconciliations",
    # the edge's tables
    "pull_jobs",
    "api_tokens",
    "oauth_exchange_codes",
    "whoop_tokens",
    "member_data_keys",
    "whoop_connections",
)
"""Every table that holds a member's rows, by ``user_id`` (a test checks the migrations against it)."""

_TOMBSTONE_CHUNK = 500
# every table with a user_id column in the schemas of the read-model versions but version 1's (which
# are MEMBER_TABLES of this schema): their read models and any staging table of a bulk load
_VERSION_TABLES = """
SELECT format('%I.%I', c.table_schema, c.table_name) AS qualified
FROM information_schema.columns c JOIN read_model_versions v ON v.schema_name = c.table_schema
WHERE c.column_name = 'user_id' AND c.table_schema <> current_schema()
ORDER BY 1
"""


async def _member_tables(db: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> list[str]:
    """The tables to delete a member's rows from: MEMBER_TABLES that exist here (a dropped read-model
    version 1 is gone), then those of the other read-model versions (``projections.versions``)."""
    present = await db.fetch(
        "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL", list(MEMBER_TABLES)
    )
    names = {row["t"] for row in present}
    own = [table for table in MEMBER_TABLES if table in names]
    return own + [row["qualified"] for row in await db.fetch(_VERSION_TABLES)]


Report = Callable[[str, dict[str, object]], Awaitable[None]]


async def _no_report(step: str, progress: dict[str, object]) -> None:
    return None


class Eraser:
    """The five steps of one erasure (see the module docstring)."""

    def __init__(self, services: Services, jobs: ErasureJobs, keys: MemberKeys) -> None:
        self._services = services
        self._jobs = jobs
        self._keys = keys

    async def run(self, job: Claimed, report: Report = _no_report) -> dict[str, object]:
        """Run every step of a claimed job; returns its final progress."""
        job_id, user_id = job.job_id, job.user_id
        progress: dict[str, object] = {}

        async def step(name: str) -> None:
            progress["step"] = name
            await self._jobs.progress(job_id, progress, self._services.settings.ingest.erasure_lease_s)
            await report(name, progress)

        await step("close")
        progress["api_tokens_revoked"] = await self._close(user_id)
        await step("whoop")
        progress["whoop_access"] = await self._revoke_at_whoop(user_id)
        await step("announce")
        await self._announce(job)
        await step("tombstones")
        progress["tombstones"] = await self._tombstones(user_id)
        await step("delete")
        progress["rows_deleted"] = await self._delete(job_id, user_id, progress)
        progress["step"] = "done"
        await report("done", progress)
        logger.info("erasure %s done", job_id)
        return progress

    async def _close(self, user_id: str) -> int:
        async with self._jobs.pool.acquire() as db, db.transaction():
            await erasure_gate.close(db, user_id)
            # under the connection's row lock: no token is issued for a member who is not connected
            await connections.mark_disconnected(db, user_id)
        return await self._services.require_store().revoke_member_credentials(user_id)

    async def _revoke_at_whoop(self, user_id: str) -> str:
        try:
            revoked = await revoke_grant(self._services, user_id)
        except WhoopError as exc:
            logger.warning("erasure: WHOOP could not be told (%s); the tokens are deleted anyway", exc.code)
            return f"not revoked ({exc.code}); our tokens are deleted"
        except VaultError:
            logger.warning("erasure: the stored WHOOP tokens do not open; they are deleted anyway")
            return "not revoked (our stored tokens do not open); they are deleted"
        return "revoked" if revoked else "no grant stored"

    async def _announce(self, job: Claimed) -> None:
        user_id = job.user_id
        event = UserErased(
            event_id=new_event_id(),
            occurred_at=datetime.now(UTC),
            user_id=user_id,
            source="ingest",
            causation_id=job.job_id,
            requested_by=job.requested_by,
        )
        topic = self._services.settings.ingest.connections_topic
        await self._services.require_publisher().append(
            topic, record_key(user_id, "connection", user_id), encode(event)
        )

    async def _tombstones(self, user_id: str) -> int:
        rows = await self._jobs.pool.fetch(
            "SELECT resource_type, resource_id FROM fetcher_resources WHERE user_id = $1", user_id
        )
        publisher = self._services.require_publisher()
        topic = self._services.settings.ingest.documents_topic
        keys = [record_key(user_id, r["resource_type"], r["resource_id"]) for r in rows]
        for start in range(0, len(keys), _TOMBSTONE_CHUNK):
            chunk = keys[start : start + _TOMBSTONE_CHUNK]
            await asyncio.gather(*(publisher.append(topic, key, None) for key in chunk))
        return len(keys)

    async def _delete(self, job_id: str, user_id: str, progress: dict[str, object]) -> dict[str, int]:
        deleted: dict[str, int] = {}
        async with self._jobs.pool.acquire() as db, db.transaction():
            await erasure_gate.close(db, user_id)  # waits for every writer that admitted the member
            self._keys.forget(user_id)
            for table in await _member_tables(db):
                status: str = await db.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)  # noqa: S608 - names from MEMBER_TABLES and the catalog
                count = int(status.rsplit(" ", 1)[1])
                if count:
                    deleted[table] = count
            await mark_done(db, job_id, {**progress, "step": "done", "rows_deleted": deleted})
        return deleted


class ErasureWorker:
    """Runs pending erasures in the background of the edge; a crashed job is taken again after its lease."""

    def __init__(
        self, jobs: ErasureJobs, eraser: Eraser, *, lease_s: float = 120.0, poll_s: float = 5.0
    ) -> None:
        self._jobs = jobs
        self._eraser = eraser
        self._lease_s = lease_s
        self._poll_s = poll_s
        self.wake = asyncio.Event()

    async def request(self, user_id: str) -> ErasureJob:
        """A member's own erasure (``DELETE /v1/me``): recorded, then run in the background."""
        job = await self._jobs.request(user_id, "member")
        self.wake.set()
        return job

    async def status(self, job_id: str) -> ErasureJob | None:
        return await self._jobs.job(job_id)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run in the background for the duration of the block (the edge's lifespan)."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop), name="erasures")
        try:
            yield
        finally:
            stop.set()
            await task

    async def run(self, stop: asyncio.Event) -> None:
        """Take and run jobs until ``stop`` is set."""
        while not stop.is_set():
            claimed = await self._claim()
            if claimed is not None:
                await self.run_one(claimed)
                continue
            self.wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=self._poll_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _claim(self) -> Claimed | None:
        try:
            return await self._jobs.claim(self._lease_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("erasure jobs unavailable (%s)", type(exc).__name__)
            return None

    async def run_one(self, job: Claimed) -> bool:
        """Run one claimed job; False (and the job released for a later retry) when a step failed."""
        try:
            await self._eraser.run(job)
        except Exception as exc:  # noqa: BLE001 - any failure: the job is taken again later, the worker lives on
            logger.warning("erasure %s failed (%s): retried later", job.job_id, type(exc).__name__)
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._jobs.release(
                    job.job_id, type(exc).__name__, self._poll_s
                )  # else the lease runs out
            return False
        return True


def erasure_worker(services: Services, pool: asyncpg.Pool) -> ErasureWorker:
    """The edge's erasure worker on ``pool``."""
    jobs = ErasureJobs(pool)
    eraser = Eraser(services, jobs, MemberKeys(services.settings.vault.keyring()))
    return ErasureWorker(jobs, eraser, lease_s=services.settings.ingest.erasure_lease_s)
