"""On the 3-node KRaft cluster: SIGKILL one broker during a produce loop; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy import kafka_local
from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from schemas.keys import record_key
from schemas.topics import topic

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[kafka_local.Node]]:
    """The 3-node cluster, started for this module and stopped after it."""
    nodes = kafka_local.cluster_nodes()
    kafka_local.start_nodes(nodes)
    try:
        yield nodes
    finally:
        kafka_local.stop_nodes(nodes)


async def _leader_of_partition_zero(settings: KafkaSettings, name: str) -> int:
    """Partition 0's leader, once the controller has propagated the new topic to the brokers.

    Right after creation a broker can answer with the topic but no partitions yet, so this asks again
    until partition 0 has a leader and all three replicas in sync (30 s at most).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            (described,) = await admin.describe_topics([name])
            partition = next((p for p in described["partitions"] if p["partition"] == 0), None)
            if partition is not None and partition["leader"] >= 0 and len(partition["isr"]) == 3:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"partition 0 of {name} not fully replicated in 30 s: {described}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    assert len(partition["replicas"]) == 3
    leader: int = partition["leader"]
    return leader


async def test_sigkill_one_broker_during_produce_loses_no_acknowledged_message(
    cluster: list[kafka_local.Node], unique: Callable[[str], str]
) -> None:
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka_local.CLUSTER_BOOTSTRAP, kafka_client_id_prefix="test"
    )
    spec = topic("whoop.webhooks.v1")
    name = unique("test.cluster")
    report = await ensure_topics(settings, [replace(spec, name=name, partitions=3)])
    assert report.created == (name,)
    victim = cluster[await _leader_of_partition_zero(settings, name) - 1]

    producer = make_producer(settings, "cluster-test", request_timeout_ms=30000, retry_backoff_ms=200)
    await producer.start()
    acked: set[bytes] = set()
    failed: list[str] = []
    acked_after_kill = 0
    killed_at: float | None = None
    try:
        for i in range(4000):
            value = str(i).encode()
            try:
                await producer.send_and_wait(name, value=value, key=record_key(f"u{i % 13}", "m", str(i)))
            except KafkaError as exc:  # an unacknowledged send may fail; it must not count as stored
                failed.append(type(exc).__name__)
                continue
            acked.add(value)
            if killed_at is not None:
                acked_after_kill += 1
            if i == 1000:
                kafka_local.stop_nodes([victim], signal.SIGKILL)
                killed_at = time.monotonic()
    finally:
        await producer.stop()

    assert killed_at is not None and victim.pid() is None
    assert acked_after_kill >= 2900, (
        f"producing did not continue: {acked_after_kill} acks after the kill ({failed})"
    )

    consumer = make_consumer(settings, "cluster-test", None, name)
    await consumer.start()
    seen: set[bytes] = set()
    try:
        deadline = time.monotonic() + 60
        while not acked <= seen:
            assert time.monotonic() < deadline, f"{len(acked - seen)} acknowledged messages are missing"
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                seen.update(r.value for r in records)
    finally:
        await consumer.stop()

    kafka_local.start_nodes([victim])  # the node rejoins without a re-format
    assert victim.pid() is not None
