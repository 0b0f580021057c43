"""The fetcher's Kafka appender: acknowledged or ``AppendFailed``; a broken idempotent producer is swapped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from processors.appender import AppendFailed, KafkaAppender


class FakeProducer:
    """Acknowledges, or fails every send with ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            delivery.set_exception(self.error)
        else:
            self.sent.append((topic, key, value))
            delivery.set_result(None)
        return delivery


async def test_an_append_returns_once_every_record_is_acknowledged() -> None:
    producer = FakeProducer()
    appender = KafkaAppender(producer)
    await appender.append("t", [(b"k1", b"v1"), (b"k2", b"v2")])
    assert producer.sent == [("t", b"k1", b"v1"), ("t", b"k2", b"v2")]


async def test_a_refused_append_is_retriable_and_keeps_the_producer() -> None:
    producer = FakeProducer(KafkaTimeoutError())
    fresh: list[FakeProducer] = []

    def factory() -> FakeProducer:
        fresh.append(FakeProducer())
        return fresh[-1]

    appender = KafkaAppender(producer, factory=factory)
    with pytest.raises(AppendFailed) as caught:
        await appender.append("t", [(b"k", b"v")])
    assert caught.value.retriable
    assert fresh == [] and appender.replaced == 0


async def test_a_producer_that_lost_its_sequence_state_is_replaced_and_the_next_append_succeeds() -> None:
    broken = FakeProducer(OutOfOrderSequenceNumber())
    fresh = FakeProducer()
    appender = KafkaAppender(broken, factory=lambda: fresh)
    with pytest.raises(AppendFailed):
        await appender.append("t", [(b"k", b"v")])
    assert appender.replaced == 1 and fresh.started and broken.stopped
    await appender.append("t", [(b"k", b"v")])
    assert fresh.sent == [("t", b"k", b"v")]
