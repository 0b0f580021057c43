"""``python -m projections --serve-api``: the worker and the query API in one process, on real services.

Records produced to the topic become visible through the API (the phone's view), the process's
two consumers (records, sync activity) and its HTTP server share it, and SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import asyncpg
import httpx

from infra.settings import KafkaSettings
from infra.vault import ApiTokens
from tests.conftest import TopicFactory
from tests.integration.projections.conftest import with_search_path
from tests.integration.projections.helpers import produce, wait_for
from tests.unit.projections.factory import Member, history

ALICE = Member(482913)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_records_on_the_topic_become_visible_through_the_api_of_the_same_process(
    kafka_settings: KafkaSettings,
    records_topic: str,
    topic_factory: TopicFactory,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
) -> None:
    webhooks = await topic_factory("whoop.webhooks.v1", partitions=3)
    token = (await ApiTokens().issue(db_pool, ALICE.user_id)).token
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
            "DATABASE_URL": with_search_path(database_url, pg_schema),
            "PROJECTIONS_RECORDS_TOPIC": records_topic,
            "PROJECTIONS_GROUP_ID": group_id,
            "PROJECTIONS_ACTIVITY_TOPICS": webhooks,
            "PROJECTIONS_ACTIVITY_GROUP_ID": group_id + "-activity",
            "PROJECTIONS_API_PORT": str(port),
            "PROJECTIONS_METRICS_PORT": "0",
            "PROJECTIONS_LOG_LEVEL": "WARNING",
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "projections", "--serve-api", env=env
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:

            async def serving() -> bool:
                try:
                    return (await client.get("/openapi.json")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(serving, 60, "the API answering")
            empty = await client.get(f"/v1/data/{ALICE.user_id}/cycles", headers=headers)
            assert empty.status_code == 200 and empty.json() == {"records": [], "next_token": None}

            days = history(ALICE, 3)
            await produce(kafka_settings, records_topic, [r for day in days for r in day.records()])

            async def visible() -> bool:
                response = await client.get(f"/v1/data/{ALICE.user_id}/cycles", headers=headers)
                return len(response.json()["records"]) == 3

            await wait_for(visible, 60, "the records visible through the API")
            newest = (await client.get(f"/v1/data/{ALICE.user_id}/cycles?limit=1", headers=headers)).json()
            assert newest["records"][0]["id"] == days[-1].cycle.cycle_id
            sync = (await client.get(f"/v1/data/{ALICE.user_id}/sync", headers=headers)).json()
            assert sync["records_applied"] == sum(len(day.records()) for day in days)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
