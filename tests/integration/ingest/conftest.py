"""Fixtures of the ingest integration tests: the edge on real Kafka and PostgreSQL; WHOOP is the simulator.

The simulator runs in-process (its own lifespan) and our WHOOP client reaches it through
``httpx.ASGITransport``; the edge is driven in-process too. Topics are uuid-named per test
(``topic_factory``), the database schema is fresh per test (``db_pool``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from aiokafka import TopicPartition
from starlette.applications import Starlette

from infra.kafka import make_consumer
from infra.settings import KafkaSettings, PostgresSettings, WhoopAppSettings
from infra.vault import TokenVault, VaultSettings
from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from ingest.settings import IngestSettings, Settings
from ingest.store import PgStore
from ingest.whoop_oauth import HttpWhoopOAuth
from schemas.serde import decode
from simulator.app import create_app as create_simulator
from simulator.settings import SimulatorSettings
from tests.conftest import TopicFactory

SDK_REDIRECT = "synheart://oauth/callback"
BROWSER_REDIRECT = "http://127.0.0.1:8000/v1/oauth/callback"


async def read_topic(kafka_settings: KafkaSettings, topic: str, partitions: int = 3) -> list[Any]:
    """Every record on ``topic`` now (beginning to the current end offsets), decoded, in offset order."""
    consumer = make_consumer(kafka_settings, "test-reader", None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            batch = await consumer.getmany(*tps, timeout_ms=2000)
            for tp_records in batch.values():
                records.extend(r for r in tp_records if r.offset < ends[TopicPartition(r.topic, r.partition)])
    finally:
        await consumer.stop()
    return [decode(r.value) for r in sorted(records, key=lambda r: (r.partition, r.offset))]


@dataclass
class Edge:
    """The edge under test, its dependencies and the simulator."""

    app: Starlette
    http: httpx.AsyncClient
    sim: Starlette
    sim_http: httpx.AsyncClient
    store: PgStore
    pool: asyncpg.Pool
    vault: TokenVault
    settings: Settings
    kafka_settings: KafkaSettings
    webhook_topic: str
    connections_topic: str

    async def events(self) -> list[Any]:
        return await read_topic(self.kafka_settings, self.connections_topic)

    async def authorize(self, prefix: str = "/v1/whoop-cloud/oauth", **params: str) -> dict[str, Any]:
        response = await self.http.get(f"{prefix}/authorize", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def consent(self, authorization_url: str) -> dict[str, str]:
        """What the browser does at WHOOP: follow the consent URL; returns the redirect's query."""
        parts = urlsplit(authorization_url)
        response = await self.sim_http.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    async def connect_sdk(self, member: int | None = None) -> dict[str, Any]:
        """The SDK flow end to end; returns the callback's JSON."""
        if member is not None:
            await self.sim_http.post("/_sim/oauth/next-user", json={"user_id": member})
        started = await self.authorize(redirect_uri=SDK_REDIRECT, state="sdk-own-state")
        granted = await self.consent(started["authorization_url"])
        response = await self.http.post(
            "/v1/whoop-cloud/oauth/callback",
            json={
                "code": granted["code"],
                "state": granted["state"],
                "redirect_uri": SDK_REDIRECT,
                "vendor": "whoop",
            },
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def simulator() -> AsyncIterator[Starlette]:
    app = create_simulator(SimulatorSettings(members=3, days=3, webhooks_enabled=False), WhoopAppSettings())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaPublisher]:
    kafka = await KafkaPublisher.start(kafka_settings, timeout_s=5.0, linger_ms=2)
    try:
        yield kafka
    finally:
        await kafka.stop()


def edge_settings(
    postgres_settings: PostgresSettings, kafka_settings: KafkaSettings, **ingest: Any
) -> Settings:
    return Settings(
        ingest=IngestSettings(**ingest),
        kafka=kafka_settings,
        postgres=postgres_settings,
        whoop=WhoopAppSettings(),
        vault=VaultSettings(),
    )


@pytest.fixture
async def edge(
    simulator: Starlette,
    publisher: KafkaPublisher,
    db_pool: asyncpg.Pool,
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    topic_factory: TopicFactory,
) -> AsyncIterator[Edge]:
    webhooks = await topic_factory("whoop.webhooks.v1", partitions=3)
    connections = await topic_factory("whoop.connections.v1", partitions=3)
    settings = edge_settings(
        postgres_settings,
        kafka_settings,
        webhook_topic=webhooks,
        connections_topic=connections,
        retry_after_s=3,
    )
    vault = TokenVault(settings.vault.keyring())
    store = PgStore(db_pool, vault)
    whoop = HttpWhoopOAuth.create(settings.whoop, 5.0, transport=httpx.ASGITransport(app=simulator))
    app = create_app(settings, publisher, store, whoop)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=simulator), base_url="http://127.0.0.1:8100"
        ) as sim,
    ):
        try:
            yield Edge(
                app,
                http,
                simulator,
                sim,
                store,
                db_pool,
                vault,
                settings,
                kafka_settings,
                webhooks,
                connections,
            )
        finally:
            await whoop.aclose()
