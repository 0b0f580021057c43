"""KafkaPublisher is the durable appender (tests/unit/infra/test_appender.py) with the edge's error:
what the appender fails becomes ``AppendUnavailable`` (a 503) with the appender's code.

The producers here are stand-ins: the real broker case is tests/integration/ingest/test_kafka_outage.py.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber

from infra.appender import DurableAppender
from ingest.errors import AppendUnavailable
from ingest.publisher import KafkaPublisher


class StandIn:
    """A producer that acknowledges, fails every send with ``error``, or never answers (``silent``)."""

    def __init__(self, error: KafkaError | None = None, *, silent: bool = False) -> None:
        self.error = error
        self.silent = silent
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(
        self, topic: str, value: bytes | None, key: bytes, headers: object = None
    ) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            delivery.set_exception(self.error)
        elif not self.silent:
            self.sent.append((topic, key, value))
            delivery.set_result(None)
        return delivery


def _publisher(producer: StandIn, make: StandIn | None = None) -> KafkaPublisher:
    later = None if make is None else (lambda: cast(AIOKafkaProducer, make))
    return KafkaPublisher(DurableAppender(cast(AIOKafkaProducer, producer), timeout_s=0.05, make=later))


async def test_an_acknowledged_append_returns_and_a_tombstone_goes_as_none() -> None:
    producer = StandIn()
    publisher = _publisher(producer)
    await publisher.append("t", b"k", b"v")
    await publisher.append("t", b"k", None)
    assert producer.sent == [("t", b"k", b"v"), ("t", b"k", None)]


@pytest.mark.parametrize(
    ("producer", "code"),
    [(StandIn(silent=True), "kafka_timeout"), (StandIn(OutOfOrderSequenceNumber()), "kafka_error")],
)
async def test_what_the_appender_fails_answers_append_unavailable_with_its_code(
    producer: StandIn, code: str
) -> None:
    healthy = StandIn()
    publisher = _publisher(producer, healthy)
    with pytest.raises(AppendUnavailable) as refused:
        await publisher.append("t", b"k", b"v")
    assert refused.value.code == code and refused.value.retriable
    broken_for_good = code == "kafka_error"
    assert (publisher.appender.replacing is not None) is broken_for_good
    if publisher.appender.replacing is not None:  # the next append takes the new producer
        await publisher.appender.replacing
        await publisher.append("t", b"k", b"v")
        assert healthy.sent == [("t", b"k", b"v")]
