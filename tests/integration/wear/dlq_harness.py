"""What the ``wear dlq`` tests share: their own topics, a real normalizer run, the command as a process."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from processors.normalizer_runner import Counts, run_normalizer
from schemas.identity import user_id_for_whoop_member
from schemas.keys import record_key
from schemas.records import DocumentFetched
from schemas.topics import topic
from simulator.generator import generate_member

PARTITIONS = 3
FETCHED_AT = dt.datetime(2025, 11, 20, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Topics:
    documents: str
    records: str
    dlq: str


async def make_topics(settings: KafkaSettings, suffix: str) -> Topics:
    """A documents topic, its ``.dlq`` twin and a records topic, shaped like the registry's."""
    names = Topics(f"test.documents.{suffix}", f"test.records.{suffix}", f"test.documents.{suffix}.dlq")
    specs = [
        replace(topic("whoop.documents.v1"), name=names.documents, partitions=PARTITIONS),
        replace(topic("wear.records.v1"), name=names.records, partitions=PARTITIONS),
        replace(topic("whoop.documents.v1.dlq"), name=names.dlq, partitions=PARTITIONS),
    ]
    await ensure_topics(settings, specs)
    return names


async def delete_topics(settings: KafkaSettings, names: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([names.documents, names.records, names.dlq])
    finally:
        await admin.close()


def a_cycle(index: int = 0) -> DocumentFetched:
    """A real cycle document (from the simulator) of one member, as the fetcher logs it."""
    member = generate_member(7, index, 3, dt.date(2025, 11, 19), current_state="SCORED")
    cycle = member.cycles[0]
    return DocumentFetched(
        event_id=f"doc-{member.user_id}-cycle-{cycle['id']}",
        occurred_at=FETCHED_AT,
        user_id=user_id_for_whoop_member(member.user_id),
        source="fetcher",
        whoop_user_id=member.user_id,
        resource_type="cycle",
        resource_id=str(cycle["id"]),
        fetched_at=FETCHED_AT,
        document=cycle,
        context={},
    )


def key_of(doc: DocumentFetched) -> bytes:
    return record_key(doc.user_id, doc.resource_type, doc.resource_id)


async def produce(settings: KafkaSettings, name: str, items: Sequence[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings, "test-dlq")
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(name, value, key=key)
    finally:
        await producer.stop()


async def ends(settings: KafkaSettings, name: str) -> int:
    """How many records ``name`` holds (the sum of its end offsets)."""
    consumer = make_consumer(settings, "test-dlq-ends", None)
    await consumer.start()
    try:
        found = await consumer.end_offsets([TopicPartition(name, p) for p in range(PARTITIONS)])
        return sum(found.values())
    finally:
        await consumer.stop()


async def records(settings: KafkaSettings, name: str) -> list[Any]:
    """Every record of ``name`` up to its end now."""
    consumer = make_consumer(settings, "test-dlq-read", None)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last = await consumer.end_offsets(tps)
        found: list[Any] = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < last[tp]]:
            assert time.monotonic() < deadline, f"{name} not read to its end in 30 s"
            batch = await consumer.getmany(timeout_ms=500)
            found += [record for items in batch.values() for record in items]
        return found
    finally:
        await consumer.stop()


async def normalize_until(settings: KafkaSettings, names: Topics, group: str, letters: int) -> Counts:
    """The real normalizer, started without keys (the deliberately broken stage), until ``letters``
    dead letters are in the DLQ."""
    stop = asyncio.Event()
    counts = Counts()
    task = asyncio.create_task(
        run_normalizer(
            settings,
            stop,
            group_id=group,
            source=names.documents,
            target=names.records,
            dlq=names.dlq,
            keys=None,
            counts=counts,
        )
    )
    try:
        deadline = time.monotonic() + 60
        while await ends(settings, names.dlq) < letters:
            assert not task.done(), task
            assert time.monotonic() < deadline, "the normalizer did not dead-letter in 60 s"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return counts


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def wear(env: dict[str, str], *args: str) -> Ran:
    """``python -m wear ARGS`` as its own process, with ``env`` over this one's environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wear",
        *args,
        env={**os.environ, "PIPELINE_ENV": "dev", "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def each_topics(settings: KafkaSettings, suffix: str) -> AsyncIterator[Topics]:
    names = await make_topics(settings, suffix)
    try:
        yield names
    finally:
        await delete_topics(settings, names)


async def records_dlq(settings: KafkaSettings, names: Topics) -> str:
    """The records topic's ``.dlq`` twin (the projections' DLQ), created now; deleted with the others."""
    spec = replace(topic("wear.records.v1"), name=names.records, partitions=PARTITIONS).dlq()
    await ensure_topics(settings, [spec])
    return spec.name


async def delete_records_dlq(settings: KafkaSettings, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()
