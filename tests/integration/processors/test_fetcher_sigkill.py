"""A fetcher SIGKILLed mid-batch: nothing is lost, duplicates are harmless.

Two real ``python -m processors`` processes (fetcher only) share the work queue and the intake's
consumer group. WHOOP answers workout fetches slowly, so work is in flight when one process is
SIGKILLed at the moment it holds leased work (read from ``fetcher_tasks``). Its leases expire and
the survivor runs those rows again; its partitions move to the survivor after the session
timeout, which then handles the webhooks the dead one had not committed, and those sent after the
kill. Every workout must reach the documents topic; duplicates are counted, never required absent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import (
    Harness,
    eventually,
    harness,
    settings_for_subprocess,
)

WORKOUTS_BEFORE, WORKOUTS_AFTER = 24, 6


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


async def _spawn(world: Harness, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, **settings_for_subprocess(world, lease_s=3.0, concurrency=4)}
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "processors",
            env=env,
            stdout=out,
            stderr=out,
            stdin=asyncio.subprocess.DEVNULL,
        )


async def test_a_fetcher_sigkilled_mid_batch_loses_nothing(world: Harness, tmp_path: Path) -> None:
    members = await world.members()
    for member in members:
        await world.connect(member)
    await world.fault("workout.get", latency_ms=300)
    victim = await _spawn(world, tmp_path / "victim.log")
    survivor = await _spawn(world, tmp_path / "survivor.log")
    try:
        async with world.documents_reader() as docs:
            workouts = []
            for i in range(WORKOUTS_BEFORE):
                workouts.append((await world.scenario("new-workout", user_id=members[i % 3]))["record"])

            async def victim_holds_work() -> bool:
                held: int = await world.pool.fetchval(
                    "SELECT count(*) FROM fetcher_tasks WHERE lease_owner LIKE $1", f"%-{victim.pid}-%"
                )
                return held > 0

            await eventually(victim_holds_work, "the victim holding leased work", timeout_s=60)
            victim.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(victim.wait(), 10) == -signal.SIGKILL
            for i in range(WORKOUTS_AFTER):
                workouts.append((await world.scenario("new-workout", user_id=members[i % 3]))["record"])
            await docs.wait_for(
                lambda: all(docs.latest("workout", w["id"]) is not None for w in workouts),
                f"all {len(workouts)} workouts after the kill",
                timeout_s=90,
            )
            await eventually(world.drained, "no work left behind", timeout_s=30)
            copies = Counter(d.resource_id for d in docs.documents() if d.resource_type == "workout")
            assert set(copies) == {w["id"] for w in workouts}
            # at-least-once: a row the victim had fetched but not finished may be appended twice, no more
            assert all(n <= 2 for n in copies.values()), copies
            assert survivor.returncode is None
    finally:
        for process in (victim, survivor):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    assert survivor.returncode == 0, (tmp_path / "survivor.log").read_text()[-3000:]
