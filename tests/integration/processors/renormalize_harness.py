"""What the tests of ``python -m processors renormalize`` share: a world of real topics and a schema.

A document log and a records topic (3 partitions each, with their dead-letter twins), the processors'
and the projections' settings on the test's schema, documents of simulated members sealed with their
data keys as the fetcher seals them, a live normalizer (any normalizer version, the wrong one too)
writing the configured topic and every registered generation, and readers of what a generation
holds (opened). The projections' commands run as subprocesses with the environment of
``rebuild_harness.env_of``; the topics the renormalization made are deleted after the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka import make_consumer, make_producer
from infra.member_keys import MemberKeys, PooledKeys
from infra.sealing import open_value, seal_value
from infra.settings import KafkaSettings, PostgresSettings, WhoopAppSettings
from infra.topic_admin import ensure_topics
from infra.vault import VaultSettings
from processors.generations import LiveGenerations
from processors.normalizer_runner import run_normalizer
from processors.projections_cli import ProjectionsCli
from processors.settings import FetcherSettings, ProcessorsSettings, Settings
from projections.settings import Settings as ProjectionSettings
from schemas.identity import user_id_for_whoop_member
from schemas.keys import record_key
from schemas.records import DocumentFetched
from schemas.serde import encode
from schemas.topics import topic
from simulator.generator import generate_member
from tests.integration.projections.conftest import with_search_path
from tests.integration.projections.helpers import read_all
from tests.integration.projections.rebuild_harness import env_of, settings_for

PARTITIONS = 3
FETCHED_AT = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
KJ_PER_KCAL = 4.184


@dataclass
class World:
    """The topics, settings and keys of one test."""

    kafka: KafkaSettings
    pool: asyncpg.Pool
    schema: str
    documents: str
    records: str
    settings: Settings  # the processors'
    projections: ProjectionSettings
    keys: MemberKeys

    @property
    def env(self) -> dict[str, str]:
        """The environment of a ``python -m projections`` or ``python -m processors`` child process."""
        env = env_of(self.projections)
        env.update(
            {
                "FETCHER_DOCUMENTS_TOPIC": self.documents,
                "PROCESSORS_RECORDS_TOPIC": self.records,
                "PROCESSORS_NORMALIZER_GROUP_ID": self.settings.processors.normalizer_group_id,
            }
        )
        return env

    def cli(self) -> ProjectionsCli:
        return ProjectionsCli(env=self.env)

    def generation(self, number: int) -> str:
        return f"{self.records}.g{number}"


async def make_world(
    kafka: KafkaSettings, pool: asyncpg.Pool, schema: str, database_url: str, records: str
) -> World:
    """The document log (and its .dlq) beside the test's records topic; settings on the test's schema."""
    documents = f"test.whoop.documents.v1.{uuid.uuid4().hex[:12]}"
    spec = replace(topic("whoop.documents.v1"), name=documents, partitions=PARTITIONS)
    await ensure_topics(kafka, [spec, spec.dlq()])
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        processors=ProcessorsSettings(records_topic=records, normalizer_group_id=f"test-normalizer-{suffix}"),
        fetcher=FetcherSettings(documents_topic=documents),
        kafka=kafka,
        postgres=PostgresSettings(database_url=with_search_path(database_url, schema)),
        whoop=WhoopAppSettings(),
        vault=VaultSettings(),
    )
    projections = settings_for(kafka, database_url, schema, records, f"test-projections-{suffix}")
    return World(
        kafka, pool, schema, documents, records, settings, projections, MemberKeys(VaultSettings().keyring())
    )


async def delete_topics(kafka: KafkaSettings, prefixes: Sequence[str]) -> None:
    """Delete every topic whose name starts with one of ``prefixes`` (generations and twins included)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap_servers)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(tuple(prefixes))]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def member_documents(index: int, days: int, *, seed: int = 7) -> list[DocumentFetched]:
    """The documents of simulated member ``index``, as the fetcher logs them (recoveries with their sleep)."""
    member = generate_member(seed, index, days, date(2025, 11, 19), current_state="PENDING_SCORE")
    sleeps = {s["id"]: s for s in member.sleeps}
    items: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        ("cycle", str(c["id"]), c, {}) for c in member.cycles
    ]
    items += [("sleep", s["id"], s, {}) for s in member.sleeps]
    items += [("workout", w["id"], w, {}) for w in member.workouts]
    items += [
        ("recovery", str(r["cycle_id"]), r, {"sleep": sleeps[r["sleep_id"]]}) for r in member.recoveries
    ]
    return [
        DocumentFetched(
            event_id=f"doc-{seed}-{member.user_id}-{n}",
            occurred_at=FETCHED_AT,
            user_id=user_id_for_whoop_member(member.user_id),
            source="fetcher",
            whoop_user_id=member.user_id,
            resource_type=resource_type,  # type: ignore[arg-type]
            resource_id=resource_id,
            fetched_at=FETCHED_AT,
            document=body,
            context=context,
        )
        for n, (resource_type, resource_id, body, context) in enumerate(items)
    ]


def kilojoules(docs: Sequence[DocumentFetched], resource_type: str) -> dict[str, float]:
    """WHOOP's kJ of each scored cycle or workout, by resource id."""
    found: dict[str, float] = {}
    for doc in docs:
        body = doc.document or {}
        score = body.get("score")
        kilojoule = score.get("kilojoule") if isinstance(score, dict) else None
        if doc.resource_type == resource_type and body.get("score_state") == "SCORED":
            assert isinstance(kilojoule, int | float)
            found[doc.resource_id] = float(kilojoule)
    return found


async def produce_documents(
    world: World, docs: Sequence[DocumentFetched], *, timestamp: datetime | None = None
) -> None:
    """Seal each document with its member's key (created as the fetcher creates it) and append it."""
    producer = make_producer(world.kafka, "test-documents", linger_ms=5)
    await producer.start()
    keys: dict[str, bytes] = {}
    try:
        futures = []
        for doc in docs:
            if doc.user_id not in keys:
                keys[doc.user_id] = await world.keys.ensure(world.pool, doc.user_id)
            futures.append(
                await producer.send(
                    world.documents,
                    key=record_key(doc.user_id, doc.resource_type, doc.resource_id),
                    value=seal_value(keys[doc.user_id], doc.user_id, encode(doc)),
                    timestamp_ms=None if timestamp is None else int(timestamp.timestamp() * 1000),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@asynccontextmanager
async def live_normalizer(world: World, normalizer_version: int) -> AsyncIterator[None]:
    """``python -m processors``' normalizer in this event loop: the configured topic and every generation."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_normalizer(
            world.kafka,
            stop,
            group_id=world.settings.processors.normalizer_group_id,
            source=world.documents,
            target=world.records,
            normalizer_version=normalizer_version,
            keys=PooledKeys(world.pool, world.keys),
            generations=LiveGenerations(world.pool),
        )
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def normalized_all(world: World, group: str | None = None, timeout_s: float = 60) -> None:
    """Wait until the live normalizer committed the document log's end."""
    group = group or world.settings.processors.normalizer_group_id
    consumer = make_consumer(world.kafka, "test-committed", group)
    await consumer.start()
    try:
        tps = [TopicPartition(world.documents, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            committed = {tp: await consumer.committed(tp) or 0 for tp in tps}
            if all(committed[tp] >= ends[tp] for tp in tps):
                return
            assert asyncio.get_running_loop().time() < deadline, f"normalizer at {committed}, ends {ends}"
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


async def opened_records(world: World, name: str) -> list[tuple[bytes, dict[str, Any] | None, bytes | None]]:
    """Every record of topic ``name``, in offset order per partition: key, opened JSON, raw value."""
    import orjson

    records = await read_all(world.kafka, name, PARTITIONS)
    users = {record.key.split(b":", 1)[0].decode() for record in records if record.key}
    keys = await world.keys.fetch(world.pool, users)
    found: list[tuple[bytes, dict[str, Any] | None, bytes | None]] = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        user = record.key.split(b":", 1)[0].decode()
        value = None if record.value is None else orjson.loads(open_value(keys[user], user, record.value))
        found.append((record.key, value, record.value))
    return found


Check = Callable[[], Awaitable[bool]]
