"""Pull jobs end cleanly in the fetcher (the edge allows one active pull per member, so none may hang).

A job that is over (superseded by a reconnect, or already done) costs no more WHOOP calls when its
rows or its request come up again; a job whose rows the fetcher drops (the member disconnected) is
marked failed instead of staying ``running`` forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from schemas.events import BackfillRequested, Envelope, UserDisconnected
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, backfill_event, eventually, harness

START = datetime(2025, 6, 1, tzinfo=UTC)
END = datetime(2025, 11, 12, tzinfo=UTC)
LISTS = ("cycle.list", "sleep.list", "workout.list", "recovery.list")


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    topic_factory: TopicFactory,
    group_id: str,
) -> AsyncIterator[Harness]:
    async with harness(
        kafka_settings,
        postgres_settings,
        db_pool,
        pg_schema,
        topic_factory,
        group_id,
        members=1,
        days=60,
        webhooks_enabled=False,
    ) as w:
        yield w


async def _send(world: Harness, event: Envelope) -> None:
    await world.send_connection_event(event)


def _backfill(user_id: str, job_id: str) -> BackfillRequested:
    return backfill_event(user_id, job_id, START, END)


async def _request(world: Harness, user_id: str, job_id: str) -> None:
    await world.request_backfill(user_id, job_id, START, END, requested_by="user")


async def _job(world: Harness, job_id: str) -> tuple[str, str | None]:
    row = await world.pool.fetchrow("SELECT status, error FROM pull_jobs WHERE job_id = $1", job_id)
    assert row is not None
    return row["status"], row["error"]


async def _rows(world: Harness, job_id: str) -> int:
    value: int = await world.pool.fetchval(
        "SELECT count(*) FROM fetcher_tasks WHERE kind = 'backfill' AND payload->>'job_id' = $1", job_id
    )
    return value


async def _stuck(world: Harness, user_id: str, job_id: str) -> None:
    """A job under way whose pages cannot come: WHOOP's collections answer 503, each of its rows
    tried once and waits a minute (nothing in flight), the job stays running."""
    for endpoint in LISTS:
        await world.fault(endpoint, status=503)
    await world.start_fetcher(retries=0, error_backoff_s=(60.0,))
    await _request(world, user_id, job_id)

    async def waiting() -> bool:
        rows = await world.pool.fetch(
            "SELECT error_attempts, lease_until FROM fetcher_tasks WHERE payload->>'job_id' = $1", job_id
        )
        return len(rows) == 3 and all(r["error_attempts"] == 1 and r["lease_until"] is None for r in rows)

    await eventually(waiting, "the job's rows tried and waiting")
    assert (await _job(world, job_id))[0] == "running"


async def _come_up(world: Harness, job_id: str) -> None:
    """Time passes: the job's rows are due again."""
    await world.pool.execute("UPDATE fetcher_tasks SET due_at = now() WHERE payload->>'job_id' = $1", job_id)
    await world.pool.execute("NOTIFY fetcher_tasks")


async def _rows_gone(world: Harness, job_id: str) -> bool:
    return await _rows(world, job_id) == 0


async def test_a_superseded_job_costs_no_more_calls(world: Harness) -> None:
    user_id = await world.connect((await world.members())[0])
    await _stuck(world, user_id, "job-1")
    # the member connects again: the edge marks the job failed and records the connect's backfill
    await world.pool.execute(
        "UPDATE pull_jobs SET status = 'failed', error = 'superseded by job-2' WHERE job_id = 'job-1'"
    )
    calls = await world.data_calls()
    await world.http.delete("/_sim/faults")  # WHOOP answers again: the job's pages could come now
    await _come_up(world, "job-1")
    await eventually(lambda: _rows_gone(world, "job-1"), "the superseded job's rows dropped")
    assert await world.data_calls() == calls
    assert await _job(world, "job-1") == ("failed", "superseded by job-2")
    statuses = await world.pool.fetch("SELECT status FROM fetcher_backfill_progress WHERE job_id = 'job-1'")
    assert {r["status"] for r in statuses} == {"failed"}


async def test_a_request_of_a_job_already_done_queues_nothing(world: Harness) -> None:
    user_id = await world.connect((await world.members())[0])
    await world.start_fetcher()
    await _request(world, user_id, "job-1")

    async def done(job_id: str) -> bool:
        return (await _job(world, job_id))[0] == "done"

    await eventually(lambda: done("job-1"), "the first job done", timeout_s=60)
    calls = await world.data_calls()
    await _send(world, _backfill(user_id, "job-1"))  # delivered again (at-least-once)
    await _request(world, user_id, "job-2")  # after it on the member's partition
    await eventually(lambda: done("job-2"), "the second job done", timeout_s=60)
    job_2_calls = await world.pool.fetchval(
        "SELECT sum(calls) FROM fetcher_backfill_progress WHERE job_id = 'job-2'"
    )
    assert await world.data_calls() - calls == job_2_calls  # job-1 did not run again


@pytest.mark.parametrize("how", ["event", "status"])
async def test_a_disconnect_fails_the_job_whose_work_it_drops(world: Harness, how: str) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await _stuck(world, user_id, "job-1")
    if how == "event":  # the fetcher reads UserDisconnected: the member's rows are dropped
        await _send(
            world,
            UserDisconnected(
                event_id="disconnected-1",
                occurred_at=datetime.now(UTC),
                user_id=user_id,
                source="ingest",
                whoop_user_id=member,
            ),
        )
    else:  # a worker finds the member disconnected when a row comes up
        await world.pool.execute("UPDATE whoop_connections SET status = 'disconnected'")
        await _come_up(world, "job-1")

    async def failed() -> bool:
        return await _job(world, "job-1") == ("failed", "disconnected")

    await eventually(failed, "the job failed")
    await eventually(lambda: _rows_gone(world, "job-1"), "the job's rows dropped")
