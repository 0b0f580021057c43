"""``python -m projections rebuild`` on real Kafka and PostgreSQL.

A topic holds re-scored versions, stale replays, duplicates, deletions and a record the projection
dead-letters. A worker projects it; then read-model rows are altered by hand and the rebuild runs
(in-process and as a subprocess). Its tables must equal a clean projection from offset 0 into
another schema, ingest's tables must survive, and it must refuse (changing nothing) while a
projection consumer of the group runs, or when stdin is not a terminal and --yes is missing.
"""

from __future__ import annotations

import asyncio
import io
import os
import pty
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pydantic import BaseModel
from rich.console import Console

from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.settings import KafkaSettings
from infra.vault import ApiTokens
from projections import rebuild
from projections.http import Call, request_etag
from projections.reads import ReadModelReader
from projections.runner import (
    ActivityWorker,
    DeadLetters,
    ProjectionWorker,
    activity_consumer_for,
    projection_consumer,
)
from projections.settings import Settings
from schemas.events import WebhookReceived
from schemas.keys import record_key
from schemas.serde import encode
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import PoolFactory, projection_settings, with_search_path
from tests.integration.projections.helpers import (
    Raw,
    checksums,
    end_offsets,
    produce,
    stored_offsets,
    wait_for,
)
from tests.unit.projections.factory import Member, mixed_log

MEMBERS = [Member(610001), Member(610002), Member(610003)]


def _stream() -> list[BaseModel | Raw]:
    """Versions, stale replays and deletions (mixed_log), a duplicate, and one record to dead-letter."""
    log: list[BaseModel | Raw] = list(mixed_log(MEMBERS, days=12, seed=5))
    log.append(log[3])  # a duplicate, at the end
    log.insert(20, (record_key(MEMBERS[0].user_id, "sleep", "junk"), b"{not json"))
    return log


def _settings(
    kafka_settings: KafkaSettings, database_url: str, schema: str, topic: str, group: str, **own: object
) -> Settings:
    options: dict[str, object] = {
        "records_topic": topic,
        "group_id": group,
        "activity_topics": (),
        "activity_group_id": f"{group}-activity",
        "batch_max_records": 100,
    }
    options.update(own)
    return projection_settings(kafka_settings, database_url, schema, **options)


def _env(settings: Settings) -> dict[str, str]:
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
        }
    )
    return env


async def _start(
    settings: Settings, *args: str, stdin: int, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "projections",
        "rebuild",
        *args,
        env=env or _env(settings),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _finished(process: asyncio.subprocess.Process) -> tuple[int, str]:
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def _command(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``python -m projections rebuild ARGS`` (stdin not a terminal); its exit code and output."""
    return await _finished(await _start(settings, *args, stdin=asyncio.subprocess.DEVNULL, env=env))


async def _on_a_terminal(settings: Settings, answer: bytes) -> tuple[int, str]:
    """Run ``python -m projections rebuild`` with a terminal as stdin, answering its question."""
    terminal, stdin = pty.openpty()
    try:
        process = await _start(settings, stdin=stdin)
        os.close(stdin)
        os.write(terminal, answer)  # kept by the terminal until the command reads it
        return await _finished(process)
    finally:
        os.close(terminal)


@asynccontextmanager
async def _running(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """The projection workers of ``settings`` running in this event loop, as ``python -m projections``."""
    consumer = projection_consumer(settings)
    producer = make_producer(settings.kafka, "test-dlq")
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            ProjectionWorker(
                consumer,
                pool,
                settings.projections,
                DeadLetters(producer),
                keys=MemberKeys(settings.vault.keyring()),
            ).run(stop)
        )
    ]
    activity = None
    if settings.projections.activity_topics:
        activity = activity_consumer_for(settings)
        await activity.start()
        tasks.append(asyncio.create_task(ActivityWorker(activity, pool, settings.projections).run(stop)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        if activity is not None:
            await activity.stop()
        await consumer.stop()
        await producer.stop()


async def _project(kafka_settings: KafkaSettings, settings: Settings, pool: asyncpg.Pool) -> None:
    """Run the workers until they stored the topic's end offsets."""
    own = settings.projections
    ends = await end_offsets(kafka_settings, own.records_topic)
    async with _running(settings, pool):

        async def caught_up() -> bool:
            return await stored_offsets(pool, own.group_id, own.records_topic) == ends

        await wait_for(caught_up, 60, "the projection catching up")


async def _projected(
    kafka_settings: KafkaSettings,
    database_url: str,
    schema: str,
    topic: str,
    group: str,
    pool: asyncpg.Pool,
) -> Settings:
    """The test stream produced on ``topic`` and projected by the group's workers; their settings."""
    await produce(kafka_settings, topic, _stream())
    settings = _settings(kafka_settings, database_url, schema, topic, group)
    await _project(kafka_settings, settings, pool)
    return settings


async def _clean(
    kafka_settings: KafkaSettings, settings: Settings, extra_pool: PoolFactory
) -> dict[str, str]:
    """Checksums of a clean projection of the same topic from offset 0, in a schema of its own."""
    pool, _ = await extra_pool()
    own = settings.projections.model_copy(update={"group_id": settings.projections.group_id + "-clean"})
    clean = Settings(own, settings.kafka, settings.postgres)
    await _project(kafka_settings, clean, pool)
    return await checksums(pool)


async def _alter_by_hand(pool: asyncpg.Pool) -> None:
    """What a bug (or an operator) may have left: a changed value, a lost row, rows that should not be."""
    await pool.execute(
        "UPDATE rm_cycles SET strain = 99.9 WHERE cycle_id = (SELECT min(cycle_id) FROM rm_cycles)"
    )
    await pool.execute("DELETE FROM rm_sleeps WHERE sleep_id = (SELECT min(sleep_id) FROM rm_sleeps)")
    await pool.execute(
        "INSERT INTO rm_tombstones VALUES ('someone', 'cycle', '1', '2020-01-01T00:00:00Z', 1)"
    )
    await pool.execute("UPDATE rm_sync_status SET records_applied = records_applied + 7")


async def test_the_rebuild_makes_the_read_models_equal_a_clean_projection_and_keeps_other_tables(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    extra_pool: PoolFactory,
) -> None:
    settings = await _projected(kafka_settings, database_url, pg_schema, records_topic, group_id, db_pool)
    issued = await ApiTokens().issue(db_pool, MEMBERS[0].user_id)
    clean = await _clean(kafka_settings, settings, extra_pool)
    assert all(not value.startswith("0:") for value in clean.values())
    assert await checksums(db_pool) == clean  # the worker's own projection, before anything is altered

    await _alter_by_hand(db_pool)
    assert await checksums(db_pool) != clean
    output = io.StringIO()
    code = await rebuild.rebuild(settings, yes=True, console=Console(file=output, width=200))
    assert code == rebuild.EXIT_OK, output.getvalue()
    assert await checksums(db_pool) == clean
    assert await stored_offsets(db_pool, group_id, records_topic) == await end_offsets(
        kafka_settings, records_topic
    )
    assert "1 dead-lettered" in output.getvalue()  # the junk record, met again
    assert f"rebuilt: {len(_stream()):,} records" in output.getvalue()

    # the command line, as a data team runs it
    await _alter_by_hand(db_pool)
    code, printed = await _command(settings, "--yes")
    assert code == 0, printed
    assert "rebuilt:" in printed and "Traceback" not in printed
    assert await checksums(db_pool) == clean
    # ingest's table is not a read model: the token still authenticates
    principal = await ApiTokens().authenticate(db_pool, issued.token)
    assert principal is not None and principal.user_id == MEMBERS[0].user_id


async def test_the_rebuild_refuses_while_a_projection_consumer_runs_or_without_yes_off_a_terminal(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    settings = await _projected(kafka_settings, database_url, pg_schema, records_topic, group_id, db_pool)
    await _alter_by_hand(db_pool)  # a rebuild would change the tables: a refusal must leave them so
    before = await checksums(db_pool)
    offsets = await stored_offsets(db_pool, group_id, records_topic)

    async with _running(settings, db_pool):

        async def a_member() -> bool:  # the worker joined the group (it was assigned its partitions)
            members = await _members(settings, group_id)
            return members > 0

        await wait_for(a_member, 60, "the running worker in the group")
        output = io.StringIO()
        code = await rebuild.rebuild(settings, yes=True, console=Console(file=output, width=300))
        assert code == rebuild.EXIT_REFUSED
        assert "stop every `python -m projections` first" in output.getvalue()
        assert group_id in output.getvalue()
        assert await checksums(db_pool) == before

    code, printed = await _command(settings)  # no --yes, stdin not a terminal
    assert code == 2, printed
    assert "--yes" in printed and "Traceback" not in printed
    assert await checksums(db_pool) == before
    assert await stored_offsets(db_pool, group_id, records_topic) == offsets

    # on a terminal it asks what it will do; anything but yes changes nothing
    code, printed = await _on_a_terminal(settings, b"no\n")
    assert code == 2, printed
    assert "This empties rm_cycles" in printed and pg_schema in printed and "not confirmed" in printed
    assert await checksums(db_pool) == before
    assert await stored_offsets(db_pool, group_id, records_topic) == offsets
    code, printed = await _on_a_terminal(settings, b"yes\n")
    assert code == 0, printed
    assert await checksums(db_pool) != before  # rebuilt: the rows altered by hand are gone


async def test_a_reset_that_fails_before_its_commit_changes_nothing(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    await _projected(kafka_settings, database_url, pg_schema, records_topic, group_id, db_pool)
    before = await checksums(db_pool)
    offsets = await stored_offsets(db_pool, group_id, records_topic)

    async def a_consumer_joined() -> None:  # what the second look at the groups raises
        raise rebuild.Refused("a consumer joined")

    with pytest.raises(rebuild.Refused):
        await rebuild.reset(db_pool, rebuild.RECORD_READ_MODELS, [group_id], a_consumer_joined)
    assert await checksums(db_pool) == before
    assert await stored_offsets(db_pool, group_id, records_topic) == offsets


async def test_data_versions_taken_before_a_rebuild_never_match_after_it(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    """Same records, same counts: still a new version, so a phone's old ETag gets 200, not 304."""
    settings = await _projected(kafka_settings, database_url, pg_schema, records_topic, group_id, db_pool)
    reader = ReadModelReader(db_pool)
    user = MEMBERS[0].user_id
    before = await reader.data_version(user)
    assert await reader.data_version(user) == before  # nothing applied: the same version
    applied = await db_pool.fetchval("SELECT records_applied FROM rm_sync_status WHERE user_id = $1", user)

    code = await rebuild.rebuild(settings, yes=True, console=Console(file=io.StringIO(), width=200))
    assert code == rebuild.EXIT_OK
    after = await reader.data_version(user)
    assert (
        await db_pool.fetchval("SELECT records_applied FROM rm_sync_status WHERE user_id = $1", user)
        == applied
    )  # the same count...
    assert after != before  # ...and yet another version
    call = Call.from_scope(
        {"path": f"/v1/data/{user}/sleep", "query_string": b"limit=5", "headers": [], "path_params": {}}
    )
    assert request_etag(after, call) != request_etag(before, call)


async def _members(settings: Settings, group: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.kafka_bootstrap_servers)
    await admin.start()
    try:
        return (await rebuild.active_members(admin, [group]))[group]
    finally:
        await admin.close()


async def test_an_interrupted_rebuild_is_finished_by_the_projection_from_the_stored_offsets(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    extra_pool: PoolFactory,
) -> None:
    await produce(
        kafka_settings, records_topic, list(mixed_log([Member(620000 + i) for i in range(8)], days=40))
    )
    settings = _settings(
        kafka_settings, database_url, pg_schema, records_topic, group_id, batch_max_records=10
    )
    await _project(kafka_settings, settings, db_pool)
    clean = await _clean(kafka_settings, settings, extra_pool)
    await _alter_by_hand(db_pool)
    total = sum((await end_offsets(kafka_settings, records_topic)).values())
    stop = asyncio.Event()

    async def interrupt_midway() -> None:
        async def some_applied() -> bool:
            applied = sum((await stored_offsets(db_pool, group_id, records_topic)).values())
            return 0 < applied < total // 2

        await wait_for(some_applied, 60, "the rebuild under way")
        stop.set()

    output = io.StringIO()
    interrupter = asyncio.create_task(interrupt_midway())
    code = await rebuild.rebuild(settings, yes=True, stop=stop, console=Console(file=output, width=300))
    await interrupter
    assert code == rebuild.EXIT_INTERRUPTED, output.getvalue()
    assert "continues from the stored offsets" in output.getvalue()
    assert sum((await stored_offsets(db_pool, group_id, records_topic)).values()) < total
    await _project(kafka_settings, settings, db_pool)  # what `python -m projections` does
    assert await checksums(db_pool) == clean

    # the command line: SIGTERM midway stops it cleanly, with the same message
    await _alter_by_hand(db_pool)
    process = await _start(settings, "--yes", stdin=asyncio.subprocess.DEVNULL)
    try:

        async def restarted_and_midway() -> bool:
            applied = sum((await stored_offsets(db_pool, group_id, records_topic)).values())
            return 0 < applied < total // 2

        await wait_for(restarted_and_midway, 60, "the command's rebuild under way")
    finally:
        process.send_signal(signal.SIGTERM)
    code, printed = await _finished(process)
    assert code == rebuild.EXIT_INTERRUPTED, printed
    assert "continues from the stored offsets" in printed and "Traceback" not in printed
    await _project(kafka_settings, settings, db_pool)
    assert await checksums(db_pool) == clean


async def test_the_sync_activity_is_rebuilt_only_when_asked(
    kafka_settings: KafkaSettings,
    records_topic: str,
    topic_factory: TopicFactory,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    webhooks = await topic_factory("whoop.webhooks.v1", partitions=3)
    await produce(kafka_settings, records_topic, list(mixed_log(MEMBERS[:1], days=12)))
    producer = make_producer(kafka_settings, "test-webhooks")
    await producer.start()
    try:
        for i, member in enumerate(MEMBERS * 2):
            at = datetime(2025, 10, 1, 8, tzinfo=UTC) + timedelta(minutes=i)
            webhook = WebhookReceived(
                event_id=f"w{i}",
                occurred_at=at,
                user_id=member.user_id,
                source="ingest",
                whoop_user_id=member.whoop_user_id,
                whoop_event_type="sleep.updated",
                resource_id=str(i),
                whoop_trace_id=f"t{i}",
                signature_timestamp_ms=i,
            )
            await producer.send_and_wait(
                webhooks, encode(webhook), key=record_key(member.user_id, "webhook", str(i))
            )
    finally:
        await producer.stop()
    settings = _settings(
        kafka_settings, database_url, pg_schema, records_topic, group_id, activity_topics=webhooks
    )
    async with _running(settings, db_pool):

        async def seen() -> bool:
            return bool(
                await db_pool.fetchval("SELECT coalesce(sum(webhooks_seen), 0) = 6 FROM rm_sync_activity")
            )

        await wait_for(seen, 60, "the sync-activity projection")
    await _project(kafka_settings, settings, db_pool)
    projected = await checksums(db_pool, ["rm_sync_activity"])
    await db_pool.execute("UPDATE rm_sync_activity SET webhooks_seen = webhooks_seen + 100")
    altered = await checksums(db_pool, ["rm_sync_activity"])

    assert await rebuild.rebuild(settings, yes=True, console=Console(file=io.StringIO())) == 0
    assert await checksums(db_pool, ["rm_sync_activity"]) == altered  # left alone by default

    output = io.StringIO()
    code = await rebuild.rebuild(
        settings, yes=True, sync_activity=True, console=Console(file=output, width=300)
    )
    assert code == 0, output.getvalue()
    assert await checksums(db_pool, ["rm_sync_activity"]) == projected
    assert "rm_sync_activity from 6 webhooks and documents" in output.getvalue()


async def test_every_read_model_of_the_migrations_is_known_to_the_rebuild(db_pool: asyncpg.Pool) -> None:
    tables = await db_pool.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_name LIKE 'rm\\_%'"
    )
    known = {*rebuild.RECORD_READ_MODELS, *rebuild.ACTIVITY_READ_MODELS}
    assert {row["table_name"] for row in tables} == known


async def test_unreachable_services_fail_in_one_line_without_secrets(
    kafka_settings: KafkaSettings, records_topic: str, group_id: str, database_url: str, pg_schema: str
) -> None:
    settings = _settings(kafka_settings, database_url, pg_schema, records_topic, group_id)
    env = _env(settings)
    env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    code, printed = await _command(settings, "--yes", env=env)
    assert code == 1, printed
    assert printed.startswith("rebuild failed: Kafka unreachable") and printed.count("\n") == 1, printed

    env = _env(settings)
    env["DATABASE_URL"] = with_search_path("postgresql://whoop:s3cret-Passw0rd@127.0.0.1:1/whoop", pg_schema)
    code, printed = await _command(settings, "--yes", env=env)
    assert code == 1, printed
    assert printed.startswith("rebuild failed: PostgreSQL unreachable or failing at 127.0.0.1:1/whoop"), (
        printed
    )
    assert printed.rstrip().endswith("nothing changed"), printed
    assert "s3cret" not in printed and "Traceback" not in printed and printed.count("\n") == 1
