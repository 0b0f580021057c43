"""Every event type end to end onto ``wear.records.v1``: simulator → fetcher → documents → normalizer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from processors.normalizer_runner import run_normalizer
from schemas.events import Envelope
from schemas.records import (
    CycleRecorded,
    RecoveryDeleted,
    RecoveryRecorded,
    SleepDeleted,
    SleepRecorded,
    WorkoutDeleted,
    WorkoutRecorded,
)
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import PARTITIONS, Harness, TopicReader, harness

R = TypeVar("R", bound=Envelope)


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    topic_factory: TopicFactory,
    group_id: str,
) -> AsyncIterator[Harness]:
    async with harness(kafka_settings, postgres_settings, db_pool, pg_schema, topic_factory, group_id) as w:
        yield w


async def test_every_event_type_reaches_the_canonical_records(
    world: Harness, topic_factory: TopicFactory
) -> None:
    records = await topic_factory("wear.records.v1", partitions=PARTITIONS)
    dlq = await topic_factory("whoop.documents.v1.dlq", partitions=PARTITIONS)
    stop = asyncio.Event()
    normalizer = asyncio.create_task(
        run_normalizer(
            world.kafka,
            stop,
            group_id=world.group_id + "-normalizer",
            source=world.topics.documents,
            target=records,
            dlq=dlq,
            keys=world.member_keys(),
        )
    )
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.start_fetcher()
    try:
        async with TopicReader(world.kafka, records, keys=world.member_keys()) as out:
            workout = (await world.scenario("new-workout", user_id=member, scoring="scored"))["record"]
            sleep = (await world.scenario("new-sleep", user_id=member, scoring="scored"))["record"]
            cycle_id, sleep_id, workout_id = sleep["cycle_id"], sleep["id"], workout["id"]

            def of(kind: type[R]) -> list[R]:
                return [r for r in out.records if isinstance(r, kind)]

            await out.wait_until(
                lambda: any(r.workout_id == workout_id for r in of(WorkoutRecorded)), "workout"
            )
            await out.wait_until(
                lambda: any(r.sleep_id == sleep_id and r.score_state == "SCORED" for r in of(SleepRecorded)),
                "sleep",
            )
            await out.wait_until(
                lambda: any(r.cycle_id == cycle_id for r in of(RecoveryRecorded)), "recovery"
            )
            await out.wait_until(lambda: any(r.cycle_id == cycle_id for r in of(CycleRecorded)), "cycle")
            recovery = [r for r in of(RecoveryRecorded) if r.cycle_id == cycle_id][-1]
            assert recovery.local_date is not None  # dated by its sleep, which the fetcher passed along
            assert all(r.user_id == user_id for r in out.records)

            await world.scenario("delete", kind="workout", id=workout_id)
            await world.scenario("delete", kind="sleep", id=sleep_id)
            await out.wait_until(
                lambda: any(r.workout_id == workout_id for r in of(WorkoutDeleted)), "deleted"
            )
            await out.wait_until(
                lambda: any(r.sleep_id == sleep_id for r in of(SleepDeleted)), "sleep deleted"
            )
            await out.wait_until(
                lambda: any(r.cycle_id == cycle_id and r.sleep_id == sleep_id for r in of(RecoveryDeleted)),
                "RecoveryDeleted (recovery.deleted resolved to its cycle)",
            )
    finally:
        stop.set()
        await asyncio.wait_for(normalizer, 30)
