"""What the tests of ``python -m projections rebuild`` and the version commands share.

Settings and environment of a projection process on the test's schema and topic, the live worker
(``version=None``) running in the test's event loop, the commands run as a subprocess or in-process
(``main`` in a thread of its own: it runs its own event loop), and the checksums of a version.
"""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg
import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.appender import DurableAppender
from infra.dead_letters import DeadLetters
from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from projections import versions
from projections.__main__ import main
from projections.runner import (
    ActivityWorker,
    ProjectionWorker,
    activity_consumer_for,
    projection_consumer,
)
from projections.settings import Settings
from schemas.keys import record_key
from schemas.topics import topic
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import projection_settings
from tests.integration.projections.helpers import Raw, end_offsets, stored_offsets, wait_for
from tests.unit.projections.factory import Member, mixed_log

Sums = dict[str, versions.TableSum]


def stream(members: list[Member], days: int = 12, seed: int = 5) -> list[msgspec.Struct | Raw]:
    """Re-scored versions, stale replays and deletions (mixed_log), a duplicate, one record to dead-letter."""
    log: list[msgspec.Struct | Raw] = list(mixed_log(members, days=days, seed=seed))
    log.append(log[3])  # a duplicate, at the end
    log.insert(20, (record_key(members[0].user_id, "sleep", "junk"), b"{not json"))
    return log


def settings_for(
    kafka_settings: KafkaSettings, database_url: str, schema: str, topic: str, group: str, **own: object
) -> Settings:
    """Settings of a projection process on ``schema`` consuming ``topic`` in ``group``."""
    options: dict[str, object] = {
        "records_topic": topic,
        "group_id": group,
        "activity_topics": (),
        "activity_group_id": f"{group}-activity",
        "batch_max_records": 100,
        "session_timeout_ms": 6000,  # a SIGKILLed rebuild's consumer leaves its group within 6 s
    }
    options.update(own)
    return projection_settings(kafka_settings, database_url, schema, **options)


def env_of(settings: Settings) -> dict[str, str]:
    """The environment of a ``python -m projections`` process with ``settings``."""
    own = settings.projections
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.kafka_bootstrap_servers,
            "DATABASE_URL": settings.postgres.database_url,
            "PROJECTIONS_RECORDS_TOPIC": own.records_topic,
            "PROJECTIONS_GROUP_ID": own.group_id,
            "PROJECTIONS_ACTIVITY_TOPICS": ",".join(own.activity_topics),
            "PROJECTIONS_ACTIVITY_GROUP_ID": own.activity_group_id,
            "PROJECTIONS_BATCH_MAX_RECORDS": str(own.batch_max_records),
            "PROJECTIONS_SESSION_TIMEOUT_MS": str(own.session_timeout_ms),
            "PROJECTIONS_METRICS_PORT": "0",  # never a running pipeline's 9102
        }
    )
    return env


async def start(
    settings: Settings, *args: str, stdin: int, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``python -m projections ARGS`` (stdout and stderr together)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "projections",
        *args,
        env=env or env_of(settings),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finished(process: asyncio.subprocess.Process, timeout_s: float = 150) -> tuple[int, str]:
    """The exit code and output of ``process``."""
    output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def command(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``python -m projections ARGS`` with stdin not a terminal; its exit code and output."""
    return await finished(await start(settings, *args, stdin=asyncio.subprocess.DEVNULL, env=env))


async def on_a_terminal(settings: Settings, answer: bytes, *args: str) -> tuple[int, str]:
    """Run ``python -m projections ARGS`` with a terminal as stdin, answering its question."""
    terminal, stdin = pty.openpty()
    try:
        process = await start(settings, *args, stdin=stdin)
        os.close(stdin)
        os.write(terminal, answer)  # kept by the terminal until the command reads it
        return await finished(process)
    finally:
        os.close(terminal)


async def in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings, *args: str
) -> tuple[int, str, str]:
    """``main([ARGS])`` in this process (in a thread: it runs its own event loop); code, stdout, stderr."""
    for name, value in env_of(settings).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@asynccontextmanager
async def running(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[ProjectionWorker]:
    """The workers of ``python -m projections`` in this event loop (the live one follows the switches)."""
    consumer = projection_consumer(settings)
    producer = make_producer(settings.kafka, "test-dlq")
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    worker = ProjectionWorker(
        consumer,
        pool,
        settings.projections,
        DeadLetters(DurableAppender(producer), "projections"),
        keys=MemberKeys(settings.vault.keyring()),
    )
    tasks = [asyncio.create_task(worker.run(stop))]
    activity = None
    if settings.projections.activity_topics:
        activity = activity_consumer_for(settings)
        await activity.start()
        tasks.append(asyncio.create_task(ActivityWorker(activity, pool, settings.projections).run(stop)))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        if activity is not None:
            await activity.stop()
        await consumer.stop()
        await producer.stop()


async def reaches_end(
    pool: asyncpg.Pool, kafka_settings: KafkaSettings, group: str, topic: str, timeout_s: float = 60
) -> None:
    """Wait until ``group`` stored the end offsets of ``topic``."""
    ends = await end_offsets(kafka_settings, topic)

    async def done() -> bool:
        return await stored_offsets(pool, group, topic) == ends

    await wait_for(done, timeout_s, f"{group} reaching the end of {topic}")


async def project(kafka_settings: KafkaSettings, settings: Settings, pool: asyncpg.Pool) -> None:
    """Run the live workers until the served version stored the topic's end offsets."""
    own = settings.projections
    async with running(settings, pool):
        group = await served_group(pool, own.group_id)
        await reaches_end(pool, kafka_settings, group, own.records_topic)


async def served_group(pool: asyncpg.Pool, configured: str) -> str:
    async with pool.acquire() as connection:
        return (await versions.serving(connection)).group(configured)


async def sums(pool: asyncpg.Pool, number: int) -> Sums:
    """Row counts and checksums of version ``number``'s tables."""
    async with pool.acquire() as connection:
        return await versions.checksums(connection, await versions.get(connection, number))


async def version(pool: asyncpg.Pool, number: int) -> versions.Version:
    async with pool.acquire() as connection:
        return await versions.get(connection, number)


async def served(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as connection:
        return (await versions.serving(connection)).number


async def clean_sums(
    kafka_settings: KafkaSettings, settings: Settings, pool: asyncpg.Pool, topic: str | None = None
) -> Sums:
    """The checksums of a clean projection of the topic from offset 0: a version written by a worker
    of its own, never served (it is dropped again)."""
    own = settings.projections
    async with pool.acquire() as connection, connection.transaction():
        clean = await versions.create(connection, records_topic=topic, bulk=False)
    # a Kafka group of its own; the offsets are the clean version's
    consumer = projection_consumer(
        replace(settings, projections=own.model_copy(update={"group_id": f"{own.group_id}-clean"}))
    )
    producer = make_producer(settings.kafka, "test-clean-dlq")
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    worker = ProjectionWorker(
        consumer,
        pool,
        own,
        DeadLetters(DurableAppender(producer), "projections"),
        keys=MemberKeys(settings.vault.keyring()),
        version=clean.number,
    )
    task = asyncio.create_task(worker.run(stop))
    try:
        await reaches_end(pool, kafka_settings, clean.group(own.group_id), clean.topic(own.records_topic))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await producer.stop()
    result = await sums(pool, clean.number)
    async with pool.acquire() as connection, connection.transaction():
        await versions.drop(connection, clean.number)
    return result


@asynccontextmanager
async def generation_topic(kafka_settings: KafkaSettings, topic_factory: TopicFactory) -> AsyncIterator[str]:
    """A records topic of another generation and its ``.dlq`` twin (deleted after the block)."""
    name = await topic_factory("wear.records.v1", partitions=3)
    dlq = replace(topic("wear.records.v1"), name=name, partitions=3).dlq()
    await ensure_topics(kafka_settings, [dlq])
    try:
        yield name
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([dlq.name])
        finally:
            await admin.close()
