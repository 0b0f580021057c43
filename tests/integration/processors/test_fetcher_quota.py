"""The quota under fire: a 429 storm and 5xx bursts lose nothing and never push past WHOOP's budget, and
live webhooks overtake a backfill when the budget binds.

Simulator and fetcher share a clock 20 times faster than the wall clock, so a WHOOP minute lasts
3 s: the quota windows, the X-RateLimit-Reset pauses and the retry back-off all run on it. The
verdict comes from the simulator's own counters: the most requests it saw in any 60 (simulated)
seconds, and how many it refused beyond the 429s we forced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from infra.kafka import make_producer
from infra.settings import KafkaSettings, PostgresSettings
from schemas.events import BackfillRequested
from schemas.keys import record_key
from schemas.serde import encode
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import Harness, eventually, harness

PER_MINUTE = 10
# The window margin absorbs the time between our grant and WHOOP counting the request. At 20x, the
# default 1 s is 50 ms of wall time, less than a request can take on a loaded 2-core box with the
# simulator in this process; 10 s here is 0.5 s of wall time.
SCALED: dict[str, Any] = {
    "lease_s": 60.0,
    "poll_interval_s": 10.0,
    "quota_per_minute": PER_MINUTE,
    "quota_window_margin_s": 10.0,
    "retry_base_s": 1.0,
}


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
        time_factor=20.0,
        quota_per_minute=PER_MINUTE,
        days=60,
    ) as w:
        yield w


async def test_a_429_storm_and_5xx_bursts_lose_nothing_and_never_exceed_the_quota(world: Harness) -> None:
    members = await world.members()
    for member in members:
        await world.connect(member)
    await world.fault("*", force_429=True, rate=0.4, count=8)
    await world.fault("workout.get", status=503, rate=0.4, count=8)
    fetcher = await world.start_fetcher(**SCALED)
    async with world.documents_reader() as docs:
        workouts = []
        for _ in range(6):
            for member in members:
                workouts.append((await world.scenario("new-workout", user_id=member))["record"])
        await docs.wait_for(
            lambda: all(docs.latest("workout", w["id"]) is not None for w in workouts),
            f"all {len(workouts)} workouts",
            timeout_s=90,
        )
    faults = (await world.http.get("/_sim/faults")).json()["faults"]
    forced_429 = 8 - faults.get("*", {}).get("count", 0)
    forced_503 = 8 - faults.get("workout.get", {}).get("count", 0)
    assert forced_429 >= 3 and forced_503 >= 3, faults  # a storm did happen
    quota = await world.quota()
    assert quota["max_attempted_in_any_60s"] <= PER_MINUTE, quota
    assert quota["rejected_429"] == forced_429, quota  # only the forced ones: the budget never ran out
    assert fetcher.client.statuses[429] == forced_429 and fetcher.client.statuses[503] == forced_503
    # every request the fetcher sent is one the simulator counted (none sneaked past the quota), and
    # beyond the faults each workout cost one call (a lease lost under load may add a harmless repeat)
    assert quota["total_requests"] == sum(fetcher.client.statuses.values())
    expected = len(workouts) + forced_429 + forced_503
    assert expected <= quota["total_requests"] <= expected + 2, (quota, fetcher.client.statuses)


async def test_live_webhooks_overtake_a_backfill_when_the_budget_binds(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.start_fetcher(**SCALED, quota_reserve_backfill=0.5)
    event = BackfillRequested(
        event_id="backfill-1",
        occurred_at=datetime.now(UTC),
        user_id=user_id,
        source="ingest",
        resource_types=("cycle", "sleep", "recovery", "workout"),
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end=datetime(2025, 11, 12, tzinfo=UTC),
        job_id="job-1",
    )
    producer = make_producer(world.kafka, "test-ingest")
    await producer.start()
    try:
        await producer.send_and_wait(
            world.topics.connections, key=record_key(user_id, "connection", user_id), value=encode(event)
        )
    finally:
        await producer.stop()
    async with world.documents_reader() as docs:

        async def backfilling() -> bool:
            pages: int = await world.pool.fetchval(
                "SELECT coalesce(sum(pages), 0) FROM fetcher_backfill_progress"
            )
            return pages >= 2

        await eventually(backfilling, "the backfill under way")
        workout = (await world.scenario("new-workout", user_id=member))["record"]
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the live workout", 60)
        left = await world.pool.fetchval(
            "SELECT count(*) FROM fetcher_backfill_progress WHERE job_id = 'job-1' AND status <> 'done'"
        )
        assert left > 0  # the live document came while the backfill still had pages to go
    quota = await world.quota()
    assert quota["max_attempted_in_any_60s"] <= PER_MINUTE and quota["rejected_429"] == 0, quota
