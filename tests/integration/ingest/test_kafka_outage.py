"""Guarantee 1 at the edge: with Kafka stopped, 503 + Retry-After and never a 204; nothing that got
a 204 is lost once Kafka is back.

The local single-node broker is stopped for real (``deploy.kafka_local``) and restarted at the end,
whatever happens, so the other tests keep their broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from deploy import kafka_local
from infra.settings import KafkaSettings, PostgresSettings
from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from tests.conftest import TopicFactory
from tests.integration.ingest.conftest import edge_settings, read_topic
from tests.integration.ingest.test_webhooks_kafka import event_id, webhook
from tests.support.ingest_fakes import NoStore, signed_headers

PATH = "/v1/webhooks/whoop"


@pytest.fixture
async def broker_restarted_at_the_end(kafka_settings: KafkaSettings) -> AsyncIterator[kafka_local.Node]:
    node = kafka_local.single_node()
    assert kafka_settings.kafka_bootstrap_servers == node.address, (
        "this test stops the local single-node broker"
    )
    assert node.pid() is not None, (
        f"the broker on {node.address} was not started from this checkout (no pid in {node.pid_file}): "
        "this test could not stop it"
    )
    try:
        yield node
    finally:
        await asyncio.to_thread(kafka_local.start_nodes, [node])


async def test_kafka_stopped_gives_503_never_204_and_every_204_survives(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    topic_factory: TopicFactory,
    broker_restarted_at_the_end: kafka_local.Node,
) -> None:
    node = broker_restarted_at_the_end
    topic = await topic_factory("whoop.webhooks.v1", partitions=3)
    settings = edge_settings(
        postgres_settings, kafka_settings, webhook_topic=topic, append_timeout_s=0.8, retry_after_s=9
    )
    publisher = await KafkaPublisher.start(kafka_settings, timeout_s=0.8, linger_ms=2)
    app = create_app(settings, publisher, NoStore())
    acknowledged: set[str] = set()
    outcomes: list[int] = []
    counter = iter(range(1_000_000))

    async def post(client: httpx.AsyncClient) -> int:
        body = webhook(next(counter))
        started = time.monotonic()
        response = await client.post(PATH, content=body, headers=signed_headers(body))
        elapsed = time.monotonic() - started
        assert response.status_code in (204, 503), response.text
        if response.status_code == 204:
            acknowledged.add(event_id(body))
        else:
            assert response.headers["retry-after"] == "9"
            assert orjson.loads(response.content)["error"]["code"] == "kafka_unavailable"
            assert elapsed < 2.0, f"a 503 took {elapsed:.2f}s: the append bound is not enforced"
        outcomes.append(response.status_code)
        return response.status_code

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
        ) as client:
            # before: the first append also fetches the topic's metadata; on a busy machine an
            # append may miss the 0.8 s bound and honestly answer 503, so wait for the first 204
            deadline = time.monotonic() + 30
            while await post(client) != 204:
                assert time.monotonic() < deadline, "no 204 within 30 s with the broker up"
            before = [await post(client) for _ in range(20)]
            assert before.count(204) >= 10, before

            # stop the broker while requests are in flight
            in_flight = asyncio.gather(*(post(client) for _ in range(30)))
            await asyncio.to_thread(kafka_local.stop_nodes, [node])
            await in_flight
            assert node.pid() is None
            down = [await post(client) for _ in range(10)]
            assert down == [503] * 10, "a 204 while the broker is down would be a lie"
            assert (await client.get("/readyz")).status_code == 503

            await asyncio.to_thread(kafka_local.start_nodes, [node])
            deadline = time.monotonic() + 60
            while await post(client) != 204:
                assert time.monotonic() < deadline, (
                    "the edge did not recover within 60 s of the broker's return"
                )
            after = [await post(client) for _ in range(20)]
            assert after.count(204) >= 10, after
    finally:
        await publisher.stop()

    assert outcomes.count(503) >= 10
    on_topic = {e.event_id for e in await read_topic(kafka_settings, topic)}
    missing = acknowledged - on_topic
    assert not missing, f"{len(missing)} webhooks got a 204 but are not on the topic"
