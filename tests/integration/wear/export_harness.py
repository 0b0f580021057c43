"""What the tests of ``wear export`` share: sealed records and documents on unique topics, the command.

Members come from the simulator's generator (``renormalize_harness.member_documents``); their
documents are normalized by the normalizer's own pure function and every value is sealed with the
member's data key made as the fetcher makes it, keyed as the normalizer keys it. One member is
erased (their key destroyed) after their values were written; one tombstone sits on each topic.
``wear export`` runs as a child process (``python -m wear``) with the test's topics and schema.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from infra.kafka import make_producer
from infra.member_keys import MemberKeys
from infra.sealing import seal_value
from infra.settings import KafkaSettings
from infra.vault import VaultSettings
from processors.normalize import normalize_deletion, normalize_document
from schemas.events import Envelope
from schemas.keys import record_key
from schemas.records import DocumentFetched
from schemas.serde import encode
from tests.integration.processors.renormalize_harness import member_documents
from tests.integration.projections.conftest import with_search_path
from tests.integration.projections.helpers import key_of


@dataclass
class Exported:
    """What the command printed and how it ended."""

    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        document: dict[str, Any] = orjson.loads(self.stdout)
        return document

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@dataclass
class World:
    """The test's topics, schema and what was written to them (plaintext records, by member)."""

    kafka: KafkaSettings
    pool: asyncpg.Pool
    database_url: str  # with the test's search_path
    records_topic: str
    documents_topic: str
    records: dict[str, list[Envelope]] = field(default_factory=dict)  # live members' records, by user
    documents: dict[str, list[DocumentFetched]] = field(default_factory=dict)
    erased_records: int = 0
    erased_documents: int = 0

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PIPELINE_ENV": "dev",
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka.kafka_bootstrap_servers,
                "DATABASE_URL": self.database_url,
                "PROJECTIONS_RECORDS_TOPIC": self.records_topic,
                "FETCHER_DOCUMENTS_TOPIC": self.documents_topic,
                "COLUMNS": "200",
            }
        )
        env.update(overrides)
        return env

    def all_records(self) -> list[Envelope]:
        return [record for records in self.records.values() for record in records]

    def all_documents(self) -> list[DocumentFetched]:
        return [doc for docs in self.documents.values() for doc in docs]


async def export(world: World, *args: str, **env: str) -> Exported:
    """Run ``python -m wear export ARGS`` to its end."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wear",
        "export",
        *args,
        env=world.env(**env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 90)
    assert child.returncode is not None
    return Exported(child.returncode, out.decode(), err.decode())


def _records_of(docs: list[DocumentFetched]) -> list[Envelope]:
    records: list[Envelope] = [record for doc in docs for record in normalize_document(doc)]
    workout = next(doc for doc in docs if doc.resource_type == "workout")
    deleted = DocumentFetched(
        event_id=f"{workout.event_id}-deleted",
        occurred_at=workout.occurred_at,
        user_id=workout.user_id,
        source="fetcher",
        whoop_user_id=workout.whoop_user_id,
        resource_type="workout",
        resource_id="00000000-0000-4000-8000-000000000001",
        fetched_at=workout.fetched_at,
        deleted=True,
    )
    return [*records, normalize_deletion(deleted)]


async def fill(world: World, *, live: int = 2, days: int = 5) -> None:
    """``live`` members and one erased member: documents and records sealed, keyed, appended; a
    tombstone on each topic."""
    keys = MemberKeys(VaultSettings().keyring())
    producer = make_producer(world.kafka, "test-export", linger_ms=5)
    await producer.start()
    try:
        sent = []
        for index in range(live + 1):
            docs = member_documents(index, days, seed=11)
            user = docs[0].user_id
            data_key = await keys.ensure(world.pool, user)
            records = _records_of(docs)
            for doc in docs:
                key = record_key(user, doc.resource_type, doc.resource_id)
                value = seal_value(data_key, user, encode(doc))
                sent.append(await producer.send(world.documents_topic, key=key, value=value))
            for record in records:
                value = seal_value(data_key, user, encode(record))
                sent.append(await producer.send(world.records_topic, key=key_of(record), value=value))
            if index < live:
                world.records[user] = records
                world.documents[user] = docs
            else:
                world.erased_records, world.erased_documents = len(records), len(docs)
                assert await keys.destroy(world.pool, user)
        first = next(iter(world.records))
        tombstone = record_key(first, "sleep", "00000000-0000-4000-8000-000000000002")
        sent.append(await producer.send(world.records_topic, key=tombstone, value=None))
        sent.append(await producer.send(world.documents_topic, key=tombstone, value=None))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def make_world(
    kafka: KafkaSettings, pool: asyncpg.Pool, database_url: str, schema: str, records: str, documents: str
) -> World:
    return World(kafka, pool, with_search_path(database_url, schema), records, documents)
