"""faust-streaming on Kafka 4.3: two relay workers in one group, one SIGKILLed mid-stream.

Both workers run the app built by ``processors.faust_app.create_app`` (real subprocesses, see
``workers/faust_relay_worker.py``). The survivor must take over the killed worker's partitions, and
every input record must reach the output topic: at-least-once, so duplicates are counted and
reported, while a single lost record fails the test. Everything is judged from broker state (the
group description and the output topic), polled with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka import make_consumer, make_producer
from infra.settings import KafkaSettings
from processors.faust_app import GroupTiming, create_app
from schemas.keys import record_key
from tests.conftest import TopicFactory
from tests.integration.workers.faust_relay_worker import ORIGIN, RELAYED_BY

logger = logging.getLogger(__name__)

PARTITIONS = 6
USERS = 60  # enough users for every partition to get records
WARMUP = 600  # records relayed before the kill, to learn who owns which partition
TOTAL = 3000
PACE = (10, 0.05)  # the rest is produced 10 records every 50 ms (~15 s), so the kill lands mid-stream
KILLED, SURVIVOR = "w1", "w2"


@dataclass(frozen=True)
class Relayed:
    """One record of the output topic, as the relay left it."""

    value: bytes
    worker: str
    origin_partition: int
    partition: int
    timestamp_ms: int


class OutputWatcher:
    """Reads the output topic from its beginning in a background task and keeps every record."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._task: asyncio.Task[None] | None = None
        self.records: list[Relayed] = []

    async def __aenter__(self) -> OutputWatcher:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        await _cancel(self._task)

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                for record in batch:
                    headers = dict(record.headers)
                    origin_partition, _ = headers[ORIGIN].decode().split(":")
                    self.records.append(
                        Relayed(
                            value=record.value,
                            worker=headers[RELAYED_BY].decode(),
                            origin_partition=int(origin_partition),
                            partition=record.partition,
                            timestamp_ms=record.timestamp,
                        )
                    )

    def values(self) -> set[bytes]:
        return {record.value for record in self.records}

    async def wait_until(self, done: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert self._task is not None
            if self._task.done():
                self._task.result()  # the reader failed: raise its error, not a timeout
            assert time.monotonic() < deadline, f"{what}: not reached after {timeout_s}s"
            await asyncio.sleep(0.05)


async def _wait_for_stable_group(
    admin: AIOKafkaAdminClient, group: str, members: int, timeout_s: float
) -> None:
    """Poll the group coordinator until the group is Stable with exactly ``members`` members."""
    deadline = time.monotonic() + timeout_s
    while True:
        [response] = await admin.describe_consumer_groups([group])
        # (error_code, group, state, protocol_type, protocol, members, ...)
        state, current = response.groups[0][2], response.groups[0][5]
        if state == "Stable" and len(current) == members:
            return
        assert time.monotonic() < deadline, (
            f"group {group} not Stable with {members} members after {timeout_s}s: {state}, {len(current)}"
        )
        await asyncio.sleep(0.2)


def _value(i: int) -> bytes:
    return str(i).encode()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _stop(worker: asyncio.subprocess.Process) -> None:
    if worker.returncode is None:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), 30)
        except TimeoutError:
            worker.kill()
            await worker.wait()


async def test_surviving_faust_worker_takes_over_a_sigkilled_workers_partitions_without_loss(
    kafka_settings: KafkaSettings, topic_factory: TopicFactory, group_id: str, tmp_path: Path
) -> None:
    source = await topic_factory("whoop.webhooks.v1", partitions=PARTITIONS)
    sink = await topic_factory("whoop.webhooks.v1", partitions=PARTITIONS)
    timing = GroupTiming()  # the defaults the workers run with

    def argv(name: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tests.integration.workers.faust_relay_worker",
            kafka_settings.kafka_bootstrap_servers,
            group_id,
            source,
            sink,
            str(PARTITIONS),
            name,
            str(tmp_path / name),
        ]

    async def produce(producer: AIOKafkaProducer, ids: range, pace: tuple[int, float] | None = None) -> None:
        futures = []
        for i in ids:
            key = record_key(f"u{i % USERS}", "m", str(i))
            futures.append(await producer.send(source, value=_value(i), key=key))
            if pace and (i + 1) % pace[0] == 0:
                await asyncio.sleep(pace[1])  # pacing the input stream, not waiting for a state
        await asyncio.gather(*futures)

    async with contextlib.AsyncExitStack() as stack:
        reader = make_consumer(kafka_settings, "test-reader", None)
        await reader.start()
        stack.push_async_callback(reader.stop)
        reader.assign([TopicPartition(sink, p) for p in range(PARTITIONS)])
        await reader.seek_to_beginning()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
        await admin.start()
        stack.push_async_callback(admin.close)
        producer = make_producer(kafka_settings, "test", linger_ms=5)
        await producer.start()
        stack.push_async_callback(producer.stop)
        watcher = await stack.enter_async_context(OutputWatcher(reader))
        workers: dict[str, asyncio.subprocess.Process] = {}
        for name in (KILLED, SURVIVOR):
            workers[name] = await asyncio.create_subprocess_exec(*argv(name))
            stack.push_async_callback(_stop, workers[name])

        await _wait_for_stable_group(admin, group_id, members=2, timeout_s=60)

        # warm-up: learn which worker owns which partition from who relayed what
        await produce(producer, range(WARMUP))
        warmup = {_value(i) for i in range(WARMUP)}
        await watcher.wait_until(lambda: warmup <= watcher.values(), "warm-up records relayed", 30)
        owners: dict[int, set[str]] = defaultdict(set)
        for record in watcher.records:
            owners[record.origin_partition].add(record.worker)
        assert sorted(owners) == list(range(PARTITIONS)), owners
        assert all(len(names) == 1 for names in owners.values()), (
            f"a partition moved during warm-up: {owners}"
        )
        killed_partitions = {p for p, names in owners.items() if names == {KILLED}}
        assert killed_partitions, f"{KILLED} owns no partition: {owners}"
        assert len(killed_partitions) < PARTITIONS, f"{SURVIVOR} owns no partition: {owners}"

        # mid-stream: keep producing while the killed worker is relaying, then SIGKILL it
        producing = asyncio.create_task(produce(producer, range(WARMUP, TOTAL), pace=PACE))
        stack.push_async_callback(_cancel, producing)
        await watcher.wait_until(
            lambda: sum(r.worker == KILLED and int(r.value) >= WARMUP for r in watcher.records) >= 100,
            f"{KILLED} relaying the live stream",
            30,
        )
        workers[KILLED].send_signal(signal.SIGKILL)
        killed_at_ms = time.time() * 1000
        assert await asyncio.wait_for(workers[KILLED].wait(), 10) == -signal.SIGKILL
        assert not producing.done(), "the input ended before the kill: the test proves nothing"
        await producing

        expected = {_value(i) for i in range(TOTAL)}
        await watcher.wait_until(lambda: expected <= watcher.values(), "every record relayed", 60)
        assert workers[SURVIVOR].returncode is None, "the survivor died"
        # declaration is off: faust created none of its own topics (leader, reply, changelog ...)
        faust_topics = [t for t in await admin.list_topics() if t.startswith((group_id, "f-reply"))]
        assert not faust_topics, faust_topics

    records = watcher.records
    # nothing lost, nothing invented; duplicates are allowed (at-least-once) and reported
    assert watcher.values() == expected
    duplicates = sum(n - 1 for n in Counter(r.value for r in records).values())
    # the relay's producer partitions by user like every other producer: same partition out as in
    assert all(r.partition == r.origin_partition for r in records)
    # the survivor relayed every partition the killed worker owned, and only it relayed after the kill
    taken_over = [r for r in records if r.worker == SURVIVOR and r.origin_partition in killed_partitions]
    assert {r.origin_partition for r in taken_over} == killed_partitions
    assert all(r.worker == SURVIVOR for r in records if r.timestamp_ms > killed_at_ms + 1000)
    takeover_s = (min(r.timestamp_ms for r in taken_over) - killed_at_ms) / 1000
    logger.info(
        "faust failover: %s partitions %s taken over by %s in %.1f s; %d records, %d duplicates",
        KILLED,
        sorted(killed_partitions),
        SURVIVOR,
        takeover_s,
        len(records),
        duplicates,
    )
    assert 0 < takeover_s < timing.session_timeout_s + 20, f"takeover took {takeover_s:.1f}s"


def test_create_app_leaves_topics_to_the_registry_and_ignores_faust_environment_variables(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # faust reads BROKER_SESSION_TIMEOUT, APP_WEB_ENABLED ... and lets them override its arguments
    monkeypatch.setenv("BROKER_SESSION_TIMEOUT", "300")
    monkeypatch.setenv("APP_WEB_ENABLED", "true")
    monkeypatch.setenv("TOPIC_ALLOW_DECLARE", "true")
    conf = create_app(
        kafka_settings, "processor", datadir=tmp_path, timing=GroupTiming(session_timeout_s=7)
    ).conf
    assert conf.id == "processor"  # the consumer group
    assert conf.topic_allow_declare is False
    assert conf.topic_disable_leader is True
    assert conf.web_enabled is False
    assert conf.broker_session_timeout == 7
    assert conf.producer_acks == -1
    assert str(conf.store) == "memory:"
    assert [str(url) for url in conf.broker] == [
        f"kafka://{server}" for server in kafka_settings.kafka_bootstrap_servers.split(",")
    ]
