"""``wear status`` on real Kafka and PostgreSQL, run as the data team runs it (``python -m wear``).

The pipeline is pointed at this test's own topics, groups and schema through the stages' settings;
a projection is stopped (lag), then runs in this process until it caught up (lag 0).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.appender import DurableAppender
from infra.dead_letters import DeadLetters
from infra.kafka import make_consumer, make_producer
from infra.member_keys import MemberKeys
from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from processors.clock import SystemClock
from processors.quota import PgQuota, Priority, QuotaPolicy
from projections import versions
from projections.runner import ProjectionWorker, projection_consumer
from projections.settings import Settings
from schemas.topics import topic
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import projection_settings, with_search_path
from tests.integration.projections.helpers import end_offsets, produce, stored_offsets, wait_for
from tests.integration.wear.tmux_session import Terminal, script
from tests.unit.projections.factory import Member, history
from wear.status_view import SECTIONS

ALICE = Member(610021)


async def wear(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``python -m wear ARGS`` with ``env``; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wear",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Pipeline:
    """This test's pipeline: its topics, groups and schema, and the environment that names them."""

    def __init__(
        self, unique: Callable[[str], str], kafka: KafkaSettings, database_url: str, schema: str
    ) -> None:
        self.records = ""
        self.webhooks = ""
        self.group = unique("wear-status-projection")
        self.fetcher_group = unique("wear-status-fetcher")
        self.bucket = unique("bucket")
        self.kafka = kafka
        self.database_url = with_search_path(database_url, schema)
        self.schema = schema
        self.raw_database_url = database_url

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PIPELINE_ENV": "dev",
                "COLUMNS": "200",
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka.kafka_bootstrap_servers,
                "DATABASE_URL": self.database_url,
                "PROJECTIONS_RECORDS_TOPIC": self.records,
                "PROJECTIONS_GROUP_ID": self.group,
                "PROJECTIONS_ACTIVITY_TOPICS": self.webhooks,
                "PROJECTIONS_ACTIVITY_GROUP_ID": self.group + "-activity",
                "PROCESSORS_RECORDS_TOPIC": self.records,
                "PROCESSORS_NORMALIZER_GROUP_ID": self.fetcher_group + "-normalizer",
                "FETCHER_GROUP_ID": self.fetcher_group,
                "FETCHER_WEBHOOKS_TOPIC": self.webhooks,
                "FETCHER_CONNECTIONS_TOPIC": self.webhooks,
                "FETCHER_DOCUMENTS_TOPIC": self.webhooks,
                "FETCHER_QUOTA_BUCKET": self.bucket,
            }
        )
        env.update(overrides)
        return env

    def settings(self) -> Settings:
        return projection_settings(
            self.kafka,
            self.raw_database_url,
            self.schema,
            group_id=self.group,
            records_topic=self.records,
            activity_topics=(),
        )


@pytest.fixture
async def pipeline(
    unique: Callable[[str], str],
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    database_url: str,
    pg_schema: str,
    db_pool: asyncpg.Pool,
) -> AsyncIterator[Pipeline]:
    """A 3-partition records topic and its dead-letter twin, a 1-partition webhooks topic, a schema."""
    made = Pipeline(unique, kafka_settings, database_url, pg_schema)
    made.records = await topic_factory("wear.records.v1", partitions=3)
    made.webhooks = await topic_factory("whoop.webhooks.v1", partitions=1)
    dlq = replace(topic("wear.records.v1"), name=made.records, partitions=3).dlq()
    await ensure_topics(kafka_settings, [dlq])
    yield made
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([dlq.name])
    finally:
        await admin.close()


@asynccontextmanager
async def running_projection(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """The live read-model projection, running in this event loop until the context ends."""
    consumer = projection_consumer(settings)
    producer = make_producer(settings.kafka, "test-dlq")
    await producer.start()
    await consumer.start()
    worker = ProjectionWorker(
        consumer,
        pool,
        settings.projections,
        DeadLetters(DurableAppender(producer), "projections"),
        keys=MemberKeys(settings.vault.keyring()),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await producer.stop()


def _group(document: dict[str, Any], stage: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [g for g in document["consumer_groups"] if g["stage"] == stage]
    assert len(found) == 1, [g["stage"] for g in document["consumer_groups"]]
    return found[0]


async def _status_json(pipeline: Pipeline) -> dict[str, Any]:
    code, out, err = await wear("status", "--json", env=pipeline.env())
    assert code == 0, err
    document: dict[str, Any] = orjson.loads(out)
    return document


async def _seed_postgres(pool: asyncpg.Pool, bucket: str) -> None:
    """Quota grants (through the quota's own adapter), a connection needing re-authorization, a running
    backfill with progress, and a read-model version being built."""
    quota = PgQuota(pool, QuotaPolicy(per_minute=100, per_day=10_000), SystemClock(), bucket)
    for priority in (Priority.LIVE, Priority.LIVE, Priority.BACKFILL):
        assert (await quota.try_acquire(priority)).granted
    await pool.execute(
        "INSERT INTO whoop_connections (user_id, whoop_user_id, status) VALUES "
        "('u-reauth', 991, 'needs_reauth'), ('u-fine', 992, 'connected')"
    )
    now = datetime.now(UTC)
    await pool.execute(
        "INSERT INTO pull_jobs "
        "(job_id, user_id, resource_types, range_start, range_end, status, requested_by) VALUES "
        "('job-running', 'u-fine', '{cycle,sleep}', $1, $2, 'running', 'test'), "
        "('job-done', 'u-reauth', '{cycle}', $1, $2, 'done', 'test')",
        now - timedelta(days=30),
        now,
    )
    await pool.execute(
        "INSERT INTO fetcher_backfill_progress "
        "(job_id, user_id, resource_type, range_start, range_end, status, pages, records) VALUES "
        "('job-running', 'u-fine', 'cycle', $1, $2, 'done', 2, 30), "
        "('job-running', 'u-fine', 'sleep', $1, $2, 'running', 1, 10)",
        now - timedelta(days=30),
        now,
    )
    async with pool.acquire() as connection, connection.transaction():
        await versions.create(connection, records_topic=None, bulk=False)


async def test_status_shows_lag_while_the_projection_is_stopped_and_zero_once_it_caught_up(
    pipeline: Pipeline, kafka_settings: KafkaSettings, db_pool: asyncpg.Pool
) -> None:
    records = [r for day in history(ALICE, 3) for r in day.records()]
    await produce(kafka_settings, pipeline.records, records)
    await produce(kafka_settings, pipeline.records + ".dlq", [(b"k", b"one"), (b"k", b"two")])
    await produce(kafka_settings, pipeline.webhooks, [(b"w", b"%d" % i) for i in range(5)])
    committer = make_consumer(kafka_settings, "test-commit", pipeline.fetcher_group)
    await committer.start()
    try:
        webhooks = TopicPartition(pipeline.webhooks, 0)
        committer.assign([webhooks])
        await committer.commit({webhooks: 2})  # the fetcher group read 2 of the 5 webhooks
    finally:
        await committer.stop()
    await _seed_postgres(db_pool, pipeline.bucket)

    stopped = await _status_json(pipeline)
    projection = _group(stopped, "projection v1 (serving)")
    assert (projection["offsets_in"], projection["members"]) == ("postgres", 0)
    assert projection["lag"] == len(records)
    assert sum(p["lag"] for p in projection["partitions"]) == len(records)
    assert {p["topic"] for p in projection["partitions"]} == {pipeline.records}
    assert len(projection["partitions"]) == 3
    fetcher = _group(stopped, "fetcher")
    assert (fetcher["group"], fetcher["offsets_in"], fetcher["lag"]) == (pipeline.fetcher_group, "kafka", 3)
    assert fetcher["partitions"][0]["position"] == 2 and fetcher["partitions"][0]["committed"]
    building = _group(stopped, "projection v2 (building)")
    assert building["group"] == "read-models-v2" and building["lag"] == len(records)
    dlqs = {d["topic"]: d["messages"] for d in stopped["dlq"]}
    assert dlqs[pipeline.records + ".dlq"] == 2
    assert dlqs[pipeline.webhooks + ".dlq"] is None  # no such topic
    minute = stopped["quota"]["windows"][0]
    assert (stopped["quota"]["bucket"], minute["used"], minute["left"]) == (pipeline.bucket, 3, 97)
    by = {p["priority"]: p for p in minute["by_priority"]}
    assert (by["live"]["used"], by["backfill"]["used"], by["backfill"]["left"]) == (2, 1, 67)
    assert stopped["needs_reauth"]["total"] == 1
    assert [c["user_id"] for c in stopped["needs_reauth"]["connections"]] == ["u-reauth"]
    (backfill,) = stopped["backfills"]
    assert (backfill["job_id"], backfill["types_done"], backfill["pages"], backfill["records"]) == (
        "job-running",
        1,
        3,
        40,
    )
    (rebuild,) = stopped["rebuilds"]
    assert (rebuild["kind"], rebuild["number"], rebuild["done"], rebuild["total"]) == (
        "read-model version",
        2,
        0,
        len(records),
    )

    settings = pipeline.settings()
    ends = await end_offsets(kafka_settings, pipeline.records)
    async with running_projection(settings, db_pool):

        async def caught_up() -> bool:
            return await stored_offsets(db_pool, pipeline.group, pipeline.records) == ends

        await wait_for(caught_up, 60, "the projection catching up")
        running = await _status_json(pipeline)
    projection = _group(running, "projection v1 (serving)")
    assert projection["lag"] == 0
    assert projection["members"] == 1
    assert all(p["lag"] == 0 and p["committed"] for p in projection["partitions"] if p["end"] > 0)
    assert _group(running, "projection v2 (building)")["lag"] == len(records)  # the live worker writes v1

    human = await wear("status", env=pipeline.env())
    assert human[0] == 0, human[2]
    assert "Consumer lag" in human[1] and pipeline.group in human[1]
    assert "Connections needing re-authorization: 1" in human[1]


async def test_status_with_kafka_unreachable_is_one_line_and_exit_1(pipeline: Pipeline) -> None:
    code, out, err = await wear("status", env=pipeline.env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    assert code == 1
    assert out == ""
    assert err.strip().count("\n") == 0 and "Kafka unreachable" in err and "127.0.0.1:1" in err
    assert "Traceback" not in err


async def test_status_with_postgres_unreachable_is_one_line_without_the_password(pipeline: Pipeline) -> None:
    secret = uuid.uuid4().hex
    url = f"postgresql://whoop:{secret}@127.0.0.1:1/whoop"
    code, out, err = await wear("status", "--json", env=pipeline.env(DATABASE_URL=url))
    assert code == 1
    assert out == ""
    assert err.strip().count("\n") == 0 and "PostgreSQL unreachable" in err and "127.0.0.1:1/whoop" in err
    assert secret not in err and "Traceback" not in err


async def test_a_bad_interval_is_bad_usage(pipeline: Pipeline) -> None:
    code, _, err = await wear("status", "--watch", "--interval", "0", env=pipeline.env())
    assert code == 2 and "--interval" in err
    code, out, err = await wear("status", env=pipeline.env(PROJECTIONS_BATCH_MAX_RECORDS="many"))
    assert (code, out, err.strip()) == (2, "", "error: bad setting: PROJECTIONS_BATCH_MAX_RECORDS")


async def test_a_terminal_session_of_status_and_of_status_watch(
    pipeline: Pipeline, kafka_settings: KafkaSettings, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    records = [r for day in history(ALICE, 2) for r in day.records()]
    await produce(kafka_settings, pipeline.records, records)
    await _seed_postgres(db_pool, pipeline.bucket)
    env = pipeline.env()  # the terminal (tmux) gives the width: COLUMNS and LINES are unset
    python = f"{shlex.quote(sys.executable)} -m wear status"
    terminal = Terminal()
    try:
        await terminal.start("once", script(tmp_path / "once.sh", env, python, "EXIT"))
        screen = await terminal.wait_for_text("once", "EXIT=")
        assert "EXIT=0" in screen
        for section in SECTIONS:
            assert section in screen, section
        assert f"total lag {2 * len(records):,}" in screen  # v1 serving and v2 building, both stopped
        assert pipeline.group in screen and "0 (stopped)" in screen
        assert "job-running" in screen and "u-reauth" in screen and "read-model version" in screen
        assert "Traceback" not in screen

        await terminal.start(
            "watch", script(tmp_path / "watch.sh", env, python + " --watch --interval 0.5", "WATCH")
        )
        await terminal.wait_for_text("watch", "Consumer lag", "Rebuilds in progress")
        await terminal.tmux("send-keys", "-t", "watch", "C-c")
        screen = await terminal.wait_for_text("watch", "WATCH=")
        assert "WATCH=0" in screen and "Traceback" not in screen
    finally:
        await terminal.close()
