"""Backfill: a ``BackfillRequested`` pages through each collection (limit 25, nextToken), with progress."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from schemas.identity import user_id_for_whoop_member
from schemas.records import ResourceType
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, eventually, harness

START = datetime(2025, 6, 1, tzinfo=UTC)
END = datetime(2025, 11, 12, tzinfo=UTC)


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
        kafka_settings, postgres_settings, db_pool, pg_schema, topic_factory, group_id, members=2, days=90
    ) as w:
        yield w


async def _request(world: Harness, user_id: str, job_id: str, types: tuple[ResourceType, ...]) -> None:
    await world.request_backfill(user_id, job_id, START, END, types)


async def test_backfill_pages_every_collection_and_reports_progress(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    counts = {m["user_id"]: m["counts"] for m in (await world.http.get("/_sim/members")).json()["members"]}[
        member
    ]
    await world.start_fetcher()
    async with world.documents_reader() as docs:
        before = await world.data_calls()
        await _request(world, user_id, "job-1", ("cycle", "sleep", "recovery", "workout"))

        async def done() -> bool:
            status: str = await world.pool.fetchval("SELECT status FROM pull_jobs WHERE job_id = 'job-1'")
            return status == "done"

        await eventually(done, "the pull job done", timeout_s=60)
        total = sum(counts.values())
        await docs.wait_for(lambda: len(docs.documents()) == total, f"{total} documents")
        for resource_type in ("cycle", "sleep", "recovery", "workout"):
            assert (
                len({d.resource_id for d in docs.documents() if d.resource_type == resource_type})
                == counts[resource_type]
            )
        # recoveries were fetched after the sleeps: each is dated by its sleep
        recoveries = [d for d in docs.documents() if d.resource_type == "recovery"]
        assert all(set(d.context) == {"sleep_id", "sleep_end", "sleep_timezone_offset"} for d in recoveries)
        assert all(d.user_id == user_id_for_whoop_member(member) for d in docs.documents())
        # every page full but the last: the fewest calls the API allows
        pages = {t: math.ceil(n / 25) for t, n in counts.items()}
        calls = await world.data_calls() - before
        assert calls == sum(pages.values())
        assert calls / total <= 0.05, calls / total
        rows = await world.pool.fetch(
            "SELECT resource_type, status, pages, records, calls FROM fetcher_backfill_progress "
            "WHERE job_id = 'job-1' ORDER BY resource_type"
        )
        assert {r["resource_type"]: (r["status"], r["pages"], r["records"]) for r in rows} == {
            t: ("done", pages[t], counts[t]) for t in counts
        }
        progress = json.loads(
            await world.pool.fetchval("SELECT progress::text FROM pull_jobs WHERE job_id = 'job-1'")
        )
        assert progress["sleep"] == {
            "status": "done",
            "pages": pages["sleep"],
            "records": counts["sleep"],
            "calls": pages["sleep"],
        }


async def test_a_second_pull_of_the_same_range_appends_nothing_new(world: Harness) -> None:
    member = (await world.members())[1]
    user_id = await world.connect(member)
    await world.start_fetcher()
    async with world.documents_reader() as docs:
        await _request(world, user_id, "job-a", ("workout",))

        async def done(job: str) -> bool:
            status: str = await world.pool.fetchval("SELECT status FROM pull_jobs WHERE job_id = $1", job)
            return status == "done"

        await eventually(lambda: done("job-a"), "the first pull")
        first = len(docs.documents())
        assert first > 0
        await _request(world, user_id, "job-b", ("workout",))
        await eventually(lambda: done("job-b"), "the second pull")
        assert len(docs.documents()) == first  # unchanged documents are not appended twice
