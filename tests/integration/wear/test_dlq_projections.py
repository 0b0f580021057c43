"""``wear dlq redrive`` of the projections' dead letters, on the real engines.

The deliberately broken stage: the real ``ProjectionWorker`` runs with a ``TOKEN_VAULT_KEYS`` that
lacks the key wrapping the member's data key (a rotation gone wrong), so it cannot open the member's
sealed record and dead-letters it. The fix is the keyring: the redrive runs with the missing key
back, decodes the record with the projection's own ``decode_record`` and applies it to the served
read-model version with ``ReadModelStore``, in the transaction that records the redrive: the row
lands once, however often the redrive is repeated.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from infra.appender import DurableAppender
from infra.dead_letters import DeadLetters
from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.sealing import seal_value
from infra.settings import KafkaSettings, PostgresSettings
from infra.vault import DEV_VAULT_KEYS, Keyring
from processors.normalize import normalize_document, record_resource_id
from projections import versions
from projections.runner import ProjectionWorker, projection_consumer
from projections.settings import ProjectionsSettings, Settings
from schemas.keys import record_key
from schemas.serde import encode
from tests.integration.wear.dlq_harness import (
    Topics,
    a_cycle,
    delete_records_dlq,
    each_topics,
    ends,
    produce,
    records_dlq,
    wear,
)

pytestmark = pytest.mark.integration

LOST_KEY = "lost-1:" + base64.urlsafe_b64encode(bytes(range(32))).decode()


@pytest.fixture
async def names(kafka_settings: KafkaSettings, unique: Callable[[str], str]) -> AsyncIterator[Topics]:
    async for made in each_topics(kafka_settings, unique("dlqp")):
        yield made


@pytest.fixture
async def dlq(kafka_settings: KafkaSettings, names: Topics) -> AsyncIterator[str]:
    name = await records_dlq(kafka_settings, names)
    yield name
    await delete_records_dlq(kafka_settings, name)


def url(database_url: str, schema: str) -> str:
    return f"{database_url}{'&' if '?' in database_url else '?'}search_path={schema}"


async def cycles_of(pool: asyncpg.Pool, user_id: str) -> int:
    """The member's rows in the served version's cycles table."""
    async with pool.acquire() as connection, connection.transaction():
        await versions.use(connection, await versions.serving(connection))
        count: int = await connection.fetchval("SELECT count(*) FROM rm_cycles WHERE user_id = $1", user_id)
        return count


async def project_until_dead_lettered(settings: Settings, pool: asyncpg.Pool, dlq: str) -> None:
    """The real projection worker, with the dev keyring only, until it dead-lettered one record."""
    consumer = projection_consumer(settings)
    producer = make_producer(settings.kafka, "test-dlq-projections")
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
        deadline = time.monotonic() + 60
        while await ends(settings.kafka, dlq) < 1:
            assert not task.done(), task
            assert time.monotonic() < deadline, "the projection did not dead-letter in 60 s"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await producer.stop()


async def test_a_record_the_projection_could_not_open_lands_once_after_the_keyring_is_fixed(
    kafka_settings: KafkaSettings,
    database_url: str,
    pg_schema: str,
    db_pool: asyncpg.Pool,
    names: Topics,
    dlq: str,
    unique: Callable[[str], str],
) -> None:
    doc = a_cycle(5)
    (record,) = normalize_document(doc)
    lost = Keyring.parse(f"{LOST_KEY},{DEV_VAULT_KEYS}")  # the data key is wrapped by lost-1
    data_key = await MemberKeys(lost).ensure(db_pool, doc.user_id)
    key = record_key(doc.user_id, "cycle", record_resource_id(record))
    await produce(kafka_settings, names.records, [(key, seal_value(data_key, doc.user_id, encode(record)))])

    settings = Settings(
        ProjectionsSettings(records_topic=names.records, group_id=unique("projections")),
        kafka_settings,
        PostgresSettings(database_url=url(database_url, pg_schema)),
    )
    assert settings.vault.keyring().key_ids == ("dev-1",)  # lost-1 is missing: the broken stage
    await project_until_dead_lettered(settings, db_pool, dlq)
    assert await cycles_of(db_pool, doc.user_id) == 0

    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "DATABASE_URL": url(database_url, pg_schema),
        "PROJECTIONS_RECORDS_TOPIC": names.records,
        "PROCESSORS_RECORDS_TOPIC": names.records,
    }
    (letter,) = (await wear(env, "dlq", "list", dlq, "--json")).json()["letters"]
    assert (letter["stage"], letter["error_type"]) == ("projections", "RecordRejected")
    assert "does not open" in letter["reason"]

    still_broken = await wear(env, "dlq", "redrive", dlq, "--all", "--dry-run", "--json")
    assert [r["outcome"] for r in still_broken.json()["letters"]] == ["would_fail"]

    fixed = {**env, "TOKEN_VAULT_KEYS": f"{DEV_VAULT_KEYS},{LOST_KEY}"}
    dry = await wear(fixed, "dlq", "redrive", dlq, "--all", "--dry-run", "--json")
    assert [r["outcome"] for r in dry.json()["letters"]] == ["would_land"]
    assert await cycles_of(db_pool, doc.user_id) == 0  # the dry run's change was rolled back

    ran = await wear(fixed, "dlq", "redrive", dlq, "--id", letter["id"], "--json")
    assert ran.code == 0, ran.stderr
    (result,) = ran.json()["letters"]
    assert (result["outcome"], result["landed"]) == ("landed", 1)
    assert await cycles_of(db_pool, doc.user_id) == 1

    again = await wear(fixed, "dlq", "redrive", dlq, "--all", "--json")
    assert [r["outcome"] for r in again.json()["letters"]] == ["already_redriven"]
    assert await cycles_of(db_pool, doc.user_id) == 1
    assert await ends(kafka_settings, dlq) == 1  # nothing went back to the DLQ
