"""Erasure on the real engines: a member connected, backfilled and projected is erased without a trace.

The pipeline runs in-process on real Kafka and PostgreSQL, WHOOP being the simulator: the fetcher,
the normalizer (documents to records) and both projections. Member A is erased through
``DELETE /v1/me`` (the edge's background worker runs the job); then no table holds a row of A,
every topic read from offset 0 (webhooks, connections, documents, records and their DLQs) holds no
readable health value or token of A, A's API token answers 401 and A's one-time code is dead, while
member B's read models are unchanged and a full rebuild from offset 0 gives B's rows exactly and
nothing of A. A second test SIGKILLs ``python -m ingest erase`` midway and reruns it to the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord

from infra.appender import DurableAppender
from infra.db import create_pool
from infra.dead_letters import DeadLetters
from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.sealing import SealError, is_sealed, open_value, seal_value
from infra.settings import KafkaSettings, PostgresSettings, WhoopAppSettings
from infra.topic_admin import ensure_topics
from infra.vault import ApiTokens, TokenVault, VaultSettings
from ingest.app import create_app as create_edge
from ingest.publisher import KafkaPublisher
from ingest.settings import IngestSettings
from ingest.settings import Settings as EdgeSettings
from ingest.store import PgStore
from ingest.whoop_oauth import HttpWhoopOAuth
from processors.normalizer_runner import run_normalizer
from projections.runner import (
    ActivityWorker,
    ProjectionWorker,
    activity_consumer_for,
    projection_consumer,
)
from projections.settings import Settings as ProjectionSettings
from schemas.events import DeadLetter
from schemas.keys import record_key
from schemas.serde import decode_as
from schemas.topics import topic
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import PARTITIONS, Harness, eventually, harness
from tests.integration.projections.conftest import projection_settings
from tests.integration.projections.helpers import (
    READ_MODELS,
    checksums,
    end_offsets,
    read_all,
    stored_offsets,
)

KEYRING = VaultSettings().keyring()
HISTORY_START = datetime(2025, 10, 1, tzinfo=UTC)  # around the simulator's default history (to 2025-11-10)
HISTORY_END = datetime(2025, 11, 12, tzinfo=UTC)
PLAIN_EVENTS = {"WebhookReceived", "UserConnected", "BackfillRequested", "UserDisconnected", "UserErased"}


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
        kafka_settings, postgres_settings, db_pool, pg_schema, topic_factory, group_id, members=2, days=4
    ) as w:
        yield w


class Pipeline:
    """Normalizer and projections on the harness's topics and schema, running until closed."""

    def __init__(self, world: Harness, records: str, records_dlq: str, documents_dlq: str) -> None:
        self.world = world
        self.records = records
        self.records_dlq = records_dlq
        self.documents_dlq = documents_dlq
        self.settings: ProjectionSettings = projection_settings(
            world.kafka,
            world.postgres.database_url,
            world.schema,
            records_topic=records,
            group_id=world.group_id + "-projections",
            activity_group_id=world.group_id + "-activity",
            activity_topics=(world.topics.webhooks, world.topics.documents),
        )
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Pipeline:
        w = self.world
        self.tasks.append(
            asyncio.create_task(
                run_normalizer(
                    w.kafka,
                    self.stop,
                    group_id=w.group_id + "-normalizer",
                    source=w.topics.documents,
                    target=self.records,
                    dlq=self.documents_dlq,
                    keys=w.member_keys(),
                )
            )
        )
        self._stack = contextlib.AsyncExitStack()
        producer = make_producer(w.kafka, "test-projections-dlq")
        await producer.start()
        self._stack.push_async_callback(producer.stop)
        own = self.settings.projections
        records, activity = projection_consumer(self.settings), activity_consumer_for(self.settings)
        for consumer in (records, activity):
            await consumer.start()
            self._stack.push_async_callback(consumer.stop)
        projection = ProjectionWorker(
            records,
            w.pool,
            own,
            DeadLetters(DurableAppender(producer), "projections"),
            keys=MemberKeys(KEYRING),
        )
        self.tasks.append(asyncio.create_task(projection.run(self.stop)))
        self.tasks.append(asyncio.create_task(ActivityWorker(activity, w.pool, own).run(self.stop)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)
        await self._stack.aclose()


async def _projected(world: Harness, user_id: str, counts: dict[str, int]) -> bool:
    tables = {
        "cycle": "rm_cycles",
        "sleep": "rm_sleeps",
        "recovery": "rm_recoveries",
        "workout": "rm_workouts",
    }
    for kind, table in tables.items():
        found = await world.pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user_id)  # noqa: S608
        if found != counts[kind]:
            return False
    return True


async def _rows_naming(pool: asyncpg.Pool, schema: str, user_id: str, whoop_id: int) -> dict[str, int]:
    """Rows of any table of ``schema`` whose text holds ``user_id`` or whose whoop_user_id is ``whoop_id``."""
    found: dict[str, int] = {}
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
        schema,
    )
    for row in tables:
        table = row["table_name"]
        n = await pool.fetchval(f'SELECT count(*) FROM "{table}" t WHERE strpos(t::text, $1) > 0', user_id)  # noqa: S608
        has_whoop_id = await pool.fetchval(
            "SELECT true FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2 AND column_name = 'whoop_user_id'",
            schema,
            table,
        )
        if has_whoop_id:
            n += await pool.fetchval(f'SELECT count(*) FROM "{table}" WHERE whoop_user_id = $1', whoop_id)  # noqa: S608
        if n:
            found[table] = n
    return found


def _readable_values(
    record: ConsumerRecord[bytes, bytes], user_id: str, remaining_keys: list[bytes]
) -> list[str]:
    """What a reader of this Kafka record can still learn of ``user_id``'s health data (nothing, we hope)."""
    problems: list[str] = []
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    values = [record.value]
    if record.topic.endswith(".dlq") and record.value is not None:
        letter = decode_as(DeadLetter, record.value)
        assert "9.9" not in letter.reason, where  # a field may be named, never a health value
        values.append(base64.b64decode(letter.value_b64))
    for value in values:
        if value is None:
            continue
        if is_sealed(value):
            for key in remaining_keys:  # no key left in the database opens it
                with contextlib.suppress(SealError):
                    open_value(key, user_id, value)
                    problems.append(f"{where}: opens with a remaining key")
            continue
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        plain = isinstance(data, dict) and data.get("user_id") == user_id
        if plain and (data.get("event_type") not in PLAIN_EVENTS or b"score" in value):
            problems.append(f"{where}: a readable {data.get('event_type')} of the erased member")
    return problems


async def _all_keys(pool: asyncpg.Pool) -> list[bytes]:
    rows = await pool.fetch("SELECT user_id FROM member_data_keys")
    return list((await MemberKeys(KEYRING).fetch(pool, [r["user_id"] for r in rows])).values())


@contextlib.asynccontextmanager
async def _edge(world: Harness) -> AsyncIterator[httpx.AsyncClient]:
    settings = EdgeSettings(
        ingest=IngestSettings(
            webhook_topic=world.topics.webhooks,
            connections_topic=world.topics.connections,
            documents_topic=world.topics.documents,
        ),
        kafka=world.kafka,
        postgres=world.postgres,
        whoop=WhoopAppSettings(whoop_api_base_url=world.base_url),
        vault=VaultSettings(),
    )
    publisher = await KafkaPublisher.start(world.kafka, timeout_s=5.0, linger_ms=2)
    whoop = HttpWhoopOAuth.create(settings.whoop, 5.0)
    app = create_edge(settings, publisher, PgStore(world.pool, TokenVault(KEYRING)), whoop)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as http,
        ):
            yield http
    finally:
        await whoop.aclose()
        await publisher.stop()


async def _seal_broken(world: Harness, topic: str, user_id: str, kind: str) -> None:
    """A sealed value of ``user_id`` that its stage cannot process: it lands in the stage's DLQ."""
    key = (await MemberKeys(KEYRING).fetch(world.pool, [user_id]))[user_id]
    value = seal_value(key, user_id, b'{"event_type": "' + kind.encode() + b'", "score": {"strain": 9.9}}')
    producer = make_producer(world.kafka, "test-broken")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=record_key(user_id, "sleep", str(uuid.uuid4())), value=value)
    finally:
        await producer.stop()


async def test_an_erased_member_leaves_no_row_and_no_readable_value(
    world: Harness, topic_factory: TopicFactory, postgres_settings: PostgresSettings
) -> None:
    records = await topic_factory("wear.records.v1", partitions=PARTITIONS)
    records_dlq = await _dlq_of(world.kafka, records)
    documents_dlq = await topic_factory("whoop.documents.v1.dlq", partitions=PARTITIONS)
    members = await world.members()
    counts = {m["user_id"]: m["counts"] for m in (await world.http.get("/_sim/members")).json()["members"]}
    a_member, b_member = members
    a, b = await world.connect(a_member), await world.connect(b_member)
    await world.start_fetcher()
    async with Pipeline(world, records, records_dlq, documents_dlq):
        for user in (a, b):
            await world.request_backfill(user, str(uuid.uuid4()), HISTORY_START, HISTORY_END)
        for user, member in ((a, a_member), (b, b_member)):
            await eventually(
                lambda u=user, m=member: _projected(world, u, counts[m]), f"{user} projected", 90
            )
        # A also has a dead letter on each DLQ, holding their (sealed) health data
        await _seal_broken(world, world.topics.documents, a, "DocumentFetched")
        await _seal_broken(world, records, a, "SleepRecorded")
        for dlq in (documents_dlq, records_dlq):
            await eventually(lambda d=dlq: _has_records(world.kafka, d), f"a dead letter on {dlq}", 30)
        a_pair = await TokenVault(KEYRING).load(world.pool, a)
        assert a_pair is not None and a_pair.refresh_token is not None
        a_token = (await ApiTokens().issue(world.pool, a)).token
        b_token = (await ApiTokens().issue(world.pool, b)).token
        await PgStore(world.pool, TokenVault(KEYRING)).create_exchange_code("one-time-code-of-a-123", a, 120)
        b_before = await _member_checksums(world.pool, b)

        async with _edge(world) as edge:
            answer = await edge.delete("/v1/me", headers={"Authorization": f"Bearer {a_token}"})
            assert answer.status_code == 202, answer.text
            status_url = answer.json()["status_url"]
            assert a not in answer.text

            async def erased() -> bool:
                status = await edge.get(status_url)
                assert status.status_code == 200 and a not in status.text
                return bool(status.json()["status"] == "done")

            await eventually(erased, "the erasure done", 60)
            job = (await edge.get(status_url)).json()
            assert job["progress"] == {"step": "done", "whoop_access": "revoked"}  # no counts shown
            progress = orjson.loads(await world.pool.fetchval("SELECT progress::text FROM erasures"))
            assert progress["tombstones"] == sum(counts[a_member].values())
            for token, status in ((a_token, 401), (b_token, 404)):
                pulled = await edge.get(
                    f"/v1/pull/{b}/jobs/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}
                )
                assert pulled.status_code == status, pulled.text  # B's token still authenticates (then 404)
            exchanged = await edge.post("/v1/oauth/exchange", json={"code": "one-time-code-of-a-123"})
            assert exchanged.status_code == 400, exchanged.text
        # the tombstones went through the normalizer and the projection: wait until both caught up
        records_end = await end_offsets(world.kafka, records)
        await eventually(
            lambda: _caught_up(world.pool, world.group_id + "-projections", records, records_end),
            "the projection caught up with the tombstones",
            60,
        )

    assert await _rows_naming(world.pool, world.schema, a, a_member) == {}
    assert await _member_checksums(world.pool, b) == b_before
    assert (await MemberKeys(KEYRING).fetch(world.pool, [a])) == {}
    remaining = await _all_keys(world.pool)
    assert len(remaining) == 1  # B's
    secrets = [a_pair.access_token.encode(), a_pair.refresh_token.encode(), a_token.encode()]
    topics = [world.topics.webhooks, world.topics.connections, world.topics.documents, records]
    topics += [documents_dlq, records_dlq]
    seen_a = 0
    for name in topics:
        for record in await read_all(world.kafka, name, PARTITIONS):
            raw = (record.key or b"") + (record.value or b"")
            assert not any(secret in raw for secret in secrets), f"a token of A on {name}"
            if record.key is not None and record.key.startswith(a.encode()):
                seen_a += 1
                assert _readable_values(record, a, remaining) == []
    assert seen_a > 0
    await _rebuild_matches(world, postgres_settings, records, a)


async def _dlq_of(kafka: KafkaSettings, records: str) -> str:
    """The projection dead-letters to ``<topic>.dlq``: create it, shaped like the registry's."""
    spec = replace(topic("wear.records.v1.dlq"), name=records + ".dlq", partitions=PARTITIONS)
    await ensure_topics(kafka, [spec])
    return spec.name


async def _has_records(kafka: KafkaSettings, topic: str) -> bool:
    return bool(await end_offsets(kafka, topic, PARTITIONS))


async def _caught_up(pool: asyncpg.Pool, group: str, topic: str, ends: dict[int, int]) -> bool:
    stored = await stored_offsets(pool, group, topic)
    return all(stored.get(p, 0) >= end for p, end in ends.items())


async def _member_checksums(pool: asyncpg.Pool, user_id: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for table in READ_MODELS:
        digest = "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
        row = await pool.fetchrow(
            f"SELECT count(*) AS n, {digest} AS h FROM {table} t WHERE user_id = $1",  # noqa: S608 - fixed names
            user_id,
        )
        assert row is not None
        result[table] = f"{row['n']}:{row['h']}"
    return result


async def _rebuild_matches(world: Harness, postgres: PostgresSettings, records: str, erased: str) -> None:
    """A clean projection of the records topic from offset 0, in a schema of its own, equals the live one."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres.database_url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        pool = await create_pool(postgres, schema=schema)
        try:
            keys = await world.pool.fetch("SELECT user_id, key_id, nonce, wrapped FROM member_data_keys")
            await pool.executemany(
                "INSERT INTO member_data_keys (user_id, key_id, nonce, wrapped) VALUES ($1, $2, $3, $4)",
                [tuple(r) for r in keys],
            )
            await pool.execute(
                f'INSERT INTO erased_members SELECT * FROM "{world.schema}".erased_members'  # noqa: S608
            )
            settings = projection_settings(
                world.kafka,
                postgres.database_url,
                schema,
                records_topic=records,
                group_id=f"rebuild-{schema}",
            )
            ends = await end_offsets(world.kafka, records, PARTITIONS)
            consumer = projection_consumer(settings)
            producer = make_producer(world.kafka, "test-rebuild-dlq")
            await producer.start()
            await consumer.start()
            stop = asyncio.Event()
            worker = ProjectionWorker(
                consumer,
                pool,
                settings.projections,
                DeadLetters(DurableAppender(producer), "projections"),
                keys=MemberKeys(KEYRING),
            )
            task = asyncio.create_task(worker.run(stop))
            try:
                await eventually(
                    lambda: _caught_up(pool, f"rebuild-{schema}", records, ends), "the rebuild", 60
                )
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
                await consumer.stop()
                await producer.stop()
            assert await checksums(pool) == await checksums(world.pool)
            assert await _member_checksums(pool, erased) == {t: "0:" + _EMPTY_MD5 for t in READ_MODELS}
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


_EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


async def test_an_erasure_killed_midway_completes_when_run_again(world: Harness) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    token = (await ApiTokens().issue(world.pool, user_id)).token
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": world.kafka.kafka_bootstrap_servers,
        "DATABASE_URL": f"{world.postgres.database_url}?search_path={world.schema}",
        "WHOOP_API_BASE_URL": world.base_url,
        "INGEST_CONNECTIONS_TOPIC": world.topics.connections,
        "INGEST_DOCUMENTS_TOPIC": world.topics.documents,
        "INGEST_WHOOP_TIMEOUT_S": "60",
        "INGEST_ERASURE_LEASE_S": "1",
        "PIPELINE_ENV": "dev",
    }
    await world.fault("access.delete", latency_ms=60_000)  # WHOOP hangs: the erasure stops at that step
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "erase", str(member), "--yes",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert first.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1].strip() != "whoop":
        line = await asyncio.wait_for(first.stdout.readline(), 60)
        assert line, f"the erasure ended early: {lines}"
        lines.append(line.decode())
    first.send_signal(signal.SIGKILL)
    await first.wait()
    midway = await world.pool.fetchrow("SELECT status, user_id FROM erasures")
    assert midway is not None and (midway["status"], midway["user_id"]) == ("running", user_id)
    assert await ApiTokens().authenticate(world.pool, token) is None  # the first step was done
    assert (
        await world.pool.fetchval("SELECT count(*) FROM whoop_connections WHERE user_id = $1", user_id) == 1
    )

    await world.http.delete("/_sim/faults")
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "erase", user_id, "--yes",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(second.communicate(), 90)
    assert second.returncode == 0, output.decode()
    assert f"erased user {user_id}" in output.decode()
    assert token not in output.decode()
    assert await _rows_naming(world.pool, world.schema, user_id, member) == {}
    done = await world.pool.fetch("SELECT status, user_id FROM erasures")
    assert [(r["status"], r["user_id"]) for r in done] == [("done", None)]
