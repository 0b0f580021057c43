"""The simulator's webhook sender (WHOOP's signing recipe, its retries and duplicates) into the real edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from infra.settings import KafkaSettings, PostgresSettings, WhoopAppSettings
from infra.vault import TokenVault
from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from ingest.store import PgStore
from ingest.whoop_oauth import HttpWhoopOAuth
from schemas.events import WebhookReceived
from schemas.identity import user_id_for_whoop_member
from simulator.app import create_app as create_simulator
from simulator.settings import SimulatorSettings
from tests.conftest import TopicFactory
from tests.integration.ingest.conftest import Edge, edge_settings, read_topic


class LateASGITransport(httpx.AsyncBaseTransport):
    """An ASGI transport whose app is set after the client was built (the two apps call each other)."""

    def __init__(self) -> None:
        self.app: Starlette | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.app is not None
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


@pytest.fixture
async def wired(
    publisher: KafkaPublisher,
    db_pool: asyncpg.Pool,
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    topic_factory: TopicFactory,
) -> AsyncIterator[Edge]:
    to_edge = LateASGITransport()
    sim = create_simulator(
        SimulatorSettings(members=2, days=2, webhooks_enabled=True),
        WhoopAppSettings(),
        webhook_transport=to_edge,
    )
    webhooks = await topic_factory("whoop.webhooks.v1", partitions=3)
    connections = await topic_factory("whoop.connections.v1", partitions=3)
    settings = edge_settings(
        postgres_settings, kafka_settings, webhook_topic=webhooks, connections_topic=connections
    )
    vault = TokenVault(settings.vault.keyring())
    store = PgStore(db_pool, vault)
    whoop = HttpWhoopOAuth.create(settings.whoop, 5.0, transport=httpx.ASGITransport(app=sim))
    app = create_app(settings, publisher, store, whoop)
    to_edge.app = app
    async with (
        sim.router.lifespan_context(sim),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sim), base_url="http://127.0.0.1:8100"
        ) as sim_http,
    ):
        yield Edge(
            app, http, sim, sim_http, store, db_pool, vault, settings, kafka_settings, webhooks, connections
        )
    await whoop.aclose()


async def deliveries(edge: Edge) -> list[dict[str, Any]]:
    await edge.sim_http.post("/_sim/webhooks/settle")
    rows: list[dict[str, Any]] = (await edge.sim_http.get("/_sim/webhooks/deliveries")).json()["deliveries"]
    return rows


async def test_simulated_whoop_webhooks_are_verified_and_appended(wired: Edge) -> None:
    members = (await wired.sim_http.get("/_sim/members")).json()
    member = int((members["members"] if isinstance(members, dict) else members)[0]["user_id"])
    connected = await wired.connect_sdk(member)
    assert connected["user_id"] == user_id_for_whoop_member(member)

    created = await wired.sim_http.post(
        "/_sim/scenarios/new-workout", json={"user_id": member, "scoring": "scored"}
    )
    assert created.status_code == 201, created.text
    workout_id = created.json()["record"]["id"]
    sent = await wired.sim_http.post(
        "/_sim/webhooks/send", json={"user_id": member, "type": "cycle.updated", "id": "1"}
    )
    assert sent.status_code == 202
    await wired.sim_http.put("/_sim/webhooks/switches", json={"duplicate_rate": 1.0})
    await wired.sim_http.post("/_sim/scenarios/edit-workout", json={"workout_id": workout_id})

    rows = await deliveries(wired)
    by_type = {(row["type"], row["status"]) for row in rows}
    assert ("workout.updated", 204) in by_type and ("cycle.updated", 200) in by_type
    assert all(row["status"] in (200, 204) for row in rows), rows

    events = await read_topic(wired.kafka_settings, wired.webhook_topic)
    assert events and all(isinstance(e, WebhookReceived) for e in events)
    assert {e.whoop_event_type for e in events} == {"workout.updated"}
    assert {e.resource_id for e in events} == {workout_id}
    assert {e.user_id for e in events} == {connected["user_id"]}
    # the edited workout was delivered twice (same trace_id): the same event, twice on the log
    workout_rows = [row for row in rows if row["type"] == "workout.updated" and row["status"] == 204]
    assert len(events) == len(workout_rows) >= 3
    assert len({e.event_id for e in events}) == len({row["trace_id"] for row in workout_rows}) == 2
