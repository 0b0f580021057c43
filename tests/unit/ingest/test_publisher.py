"""KafkaPublisher replaces a producer that broke for good (aiokafka's sender stops on
OutOfOrderSequenceNumber and fails every later append), once, and only for such errors.

The producers here are stand-ins built by the test (what a ``make`` function returns): the real
broker case is tests/integration/ingest/test_kafka_outage.py.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, OutOfOrderSequenceNumber

from ingest.errors import AppendUnavailable
from ingest.publisher import KafkaPublisher


class StandIn:
    """A producer whose every append fails with ``error`` (None: succeeds); counts what happened."""

    def __init__(self, error: KafkaError | None = None, start_error: KafkaError | None = None) -> None:
        self.error = error
        self.start_error = start_error
        self.sent = 0
        self.stopped = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.error is None:
            self.sent += 1
            delivery.set_result(None)
        else:
            delivery.set_exception(self.error)
        return delivery


def _publisher(first: StandIn, later: list[StandIn]) -> tuple[KafkaPublisher, list[StandIn]]:
    made: list[StandIn] = []

    def make() -> AIOKafkaProducer:
        made.append(later.pop(0))
        return cast(AIOKafkaProducer, made[-1])

    return KafkaPublisher(cast(AIOKafkaProducer, first), timeout_s=1.0, make=make), made


async def test_an_out_of_order_sequence_answers_503_then_a_new_producer_takes_the_appends() -> None:
    broken, healthy = StandIn(OutOfOrderSequenceNumber()), StandIn()
    publisher, made = _publisher(broken, [healthy])
    with pytest.raises(AppendUnavailable) as refused:
        await publisher.append("t", b"k", b"v")
    assert refused.value.code == "kafka_error"
    assert publisher.replacing is not None
    await publisher.replacing
    assert made == [healthy] and broken.stopped and publisher.replaced == 1
    await publisher.append("t", b"k", b"v")
    assert healthy.sent == 1


async def test_concurrent_failures_replace_the_producer_once() -> None:
    broken = StandIn(OutOfOrderSequenceNumber())
    publisher, made = _publisher(broken, [StandIn(), StandIn()])
    results = await asyncio.gather(
        *(publisher.append("t", b"k", b"v") for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(result, AppendUnavailable) for result in results)
    assert publisher.replacing is not None
    await publisher.replacing
    assert len(made) == 1 and publisher.replaced == 1


async def test_an_error_the_producer_survives_does_not_replace_it() -> None:
    publisher, made = _publisher(StandIn(KafkaConnectionError()), [StandIn()])
    with pytest.raises(AppendUnavailable):
        await publisher.append("t", b"k", b"v")
    assert publisher.replacing is None and made == []


async def test_a_replacement_that_cannot_start_is_tried_again_by_the_next_failure() -> None:
    broken, unstartable, healthy = (
        StandIn(OutOfOrderSequenceNumber()),
        StandIn(start_error=KafkaConnectionError()),
        StandIn(),
    )
    publisher, made = _publisher(broken, [unstartable, healthy])
    with pytest.raises(AppendUnavailable):
        await publisher.append("t", b"k", b"v")
    assert publisher.replacing is not None
    await publisher.replacing
    assert publisher.replaced == 0 and not broken.stopped and unstartable.stopped
    with pytest.raises(AppendUnavailable):
        await publisher.append("t", b"k", b"v")
    assert publisher.replacing is not None
    await publisher.replacing
    assert made == [unstartable, healthy] and publisher.replaced == 1 and broken.stopped
    await publisher.append("t", b"k", b"v")
    assert healthy.sent == 1
