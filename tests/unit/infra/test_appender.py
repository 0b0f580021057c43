"""The durable appender: acknowledged or ``AppendFailed``; a producer broken for good is replaced in the
background, once, and only for such errors (aiokafka's sender stops on OutOfOrderSequenceNumber and
fails every later append).

The producers here are stand-ins built by the test (what a ``make`` function returns): the real-broker
cases are tests/integration/test_durable_appender.py and tests/integration/ingest/test_kafka_outage.py.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)

from infra.appender import AppendFailed, DurableAppender

Headers = list[tuple[str, bytes]] | None
Sent = tuple[str, bytes | None, bytes | None, Headers]


class StandIn:
    """A producer whose every append fails with ``error`` (None: succeeds); records what happened."""

    def __init__(self, error: KafkaError | None = None, start_error: KafkaError | None = None) -> None:
        self.error = error
        self.start_error = start_error
        self.sent: list[Sent] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.error is None:
            self.sent.append((topic, key, value, headers))
            delivery.set_result(None)
        else:
            delivery.set_exception(self.error)
        return delivery


def _appender(first: StandIn, later: list[StandIn]) -> tuple[DurableAppender, list[StandIn]]:
    made: list[StandIn] = []

    def make() -> AIOKafkaProducer:
        made.append(later.pop(0))
        return cast(AIOKafkaProducer, made[-1])

    return DurableAppender(cast(AIOKafkaProducer, first), timeout_s=1.0, make=make), made


async def test_an_append_returns_once_every_record_is_acknowledged_with_its_headers() -> None:
    producer = StandIn()
    appender, _ = _appender(producer, [])
    await appender.append("t", [(b"k1", b"v1"), (b"k2", None)], [("h", b"1")])
    await appender.append("t", [(b"k3", b"v3")])
    await appender.append("t", [])
    assert producer.sent == [
        ("t", b"k1", b"v1", [("h", b"1")]),
        ("t", b"k2", None, [("h", b"1")]),
        ("t", b"k3", b"v3", None),
    ]


@pytest.mark.parametrize("error", [KafkaTimeoutError(), KafkaConnectionError()])
async def test_an_error_the_producer_survives_is_retriable_and_keeps_the_producer(error: KafkaError) -> None:
    appender, made = _appender(StandIn(error), [StandIn()])
    with pytest.raises(AppendFailed) as caught:
        await appender.append("t", [(b"k", b"v")])
    assert caught.value.retriable and caught.value.code == "kafka_error"
    assert appender.replacing is None and made == [] and appender.replaced == 0


async def test_no_acknowledgement_within_the_bound_is_a_retriable_timeout() -> None:
    class Silent(StandIn):
        async def send(
            self, topic: str, value: bytes | None, key: bytes | None, headers: object = None
        ) -> asyncio.Future[None]:
            return asyncio.get_running_loop().create_future()  # never acknowledged

    appender = DurableAppender(cast(AIOKafkaProducer, Silent()), timeout_s=0.05)
    with pytest.raises(AppendFailed) as caught:
        await appender.append("t", [(b"k", b"v"), (b"k", b"w")])
    assert caught.value.retriable and caught.value.code == "kafka_timeout"


@pytest.mark.parametrize(
    "error",
    [
        OutOfOrderSequenceNumber(),
        UnknownProducerId(),
        InvalidProducerEpoch(),
        InvalidProducerIdMapping(),
        ProducerFenced(),
        ProducerClosed(),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_producer_broken_for_good_is_replaced_and_the_next_append_succeeds(error: KafkaError) -> None:
    broken, healthy = StandIn(error), StandIn()
    appender, made = _appender(broken, [healthy])
    with pytest.raises(AppendFailed) as caught:
        await appender.append("t", [(b"k", b"v")])
    assert caught.value.retriable and caught.value.code == "kafka_error"
    assert appender.replacing is not None
    await appender.replacing
    assert made == [healthy] and healthy.started and broken.stopped and appender.replaced == 1
    await appender.append("t", [(b"k", b"v")])
    assert healthy.sent == [("t", b"k", b"v", None)]


async def test_concurrent_failures_replace_the_producer_once() -> None:
    broken = StandIn(OutOfOrderSequenceNumber())
    appender, made = _appender(broken, [StandIn(), StandIn()])
    results = await asyncio.gather(
        *(appender.append("t", [(b"k", b"v")]) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(result, AppendFailed) for result in results)
    assert appender.replacing is not None
    await appender.replacing
    assert len(made) == 1 and appender.replaced == 1


async def test_a_replacement_that_cannot_start_is_tried_again_by_the_next_failure() -> None:
    broken, unstartable, healthy = (
        StandIn(OutOfOrderSequenceNumber()),
        StandIn(start_error=KafkaConnectionError()),
        StandIn(),
    )
    appender, made = _appender(broken, [unstartable, healthy])
    with pytest.raises(AppendFailed):
        await appender.append("t", [(b"k", b"v")])
    assert appender.replacing is not None
    await appender.replacing
    assert appender.replaced == 0 and not broken.stopped and unstartable.stopped
    with pytest.raises(AppendFailed):
        await appender.append("t", [(b"k", b"v")])
    assert appender.replacing is not None
    await appender.replacing
    assert made == [unstartable, healthy] and appender.replaced == 1 and broken.stopped
    await appender.append("t", [(b"k", b"v")])
    assert len(healthy.sent) == 1


async def test_a_stopping_appender_does_not_replace_its_producer() -> None:
    producer = StandIn()
    appender, made = _appender(producer, [StandIn()])
    await appender.stop()
    producer.error = ProducerClosed()  # what a send on a closed producer raises
    with pytest.raises(AppendFailed):
        await appender.append("t", [(b"k", b"v")])
    assert appender.replacing is None and made == [] and producer.stopped


async def test_without_a_make_function_a_broken_producer_stays() -> None:
    appender = DurableAppender(cast(AIOKafkaProducer, StandIn(OutOfOrderSequenceNumber())))
    with pytest.raises(AppendFailed):
        await appender.append("t", [(b"k", b"v")])
    assert appender.replacing is None and appender.replaced == 0
