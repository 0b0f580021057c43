"""Scoped admin tokens, and ``python -m ingest`` as a real process (migrations at start, health, SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import replace

import httpx
import orjson

from infra.settings import KafkaSettings
from infra.vault import hash_token
from ingest.app import create_app
from schemas.events import BackfillRequested, WebhookReceived
from schemas.identity import user_id_for_whoop_member
from tests.conftest import TopicFactory
from tests.integration.ingest.conftest import Edge, read_topic
from tests.support.ingest_fakes import SECRET, signed_headers

PULLER, READER = "wpa_" + "p" * 40, "wpa_" + "r" * 40


async def test_admin_tokens_are_scoped(edge: Edge) -> None:
    admins = (f"ops:{hash_token(PULLER)}:pull", f"dash:{hash_token(READER)}:read")
    settings = replace(edge.settings, ingest=edge.settings.ingest.model_copy(update={"admin_tokens": admins}))
    app = create_app(settings, edge.app.state.services.publisher, edge.store, edge.app.state.services.whoop)
    user_id = (await edge.connect_sdk())["user_id"]
    await edge.pool.execute("UPDATE pull_jobs SET status = 'done'")  # the connect backfill is over
    puller, reader = {"Authorization": f"Bearer {PULLER}"}, {"Authorization": f"Bearer {READER}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
    ) as http:
        accepted = await http.post(f"/v1/pull/{user_id}", json={"types": ["workout"]}, headers=puller)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()["status_url"]
        status = await http.get(job, headers=reader)
        assert status.status_code == 200 and status.json()["requested_by"] == "admin:ops"
        refused = await http.post(f"/v1/pull/{user_id}", json={}, headers=reader)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
        no_disconnect = await http.delete("/v1/oauth/disconnect", params={"user_id": user_id}, headers=puller)
        assert no_disconnect.status_code == 403
        unknown = user_id_for_whoop_member(123_456_789)
        assert (await http.post(f"/v1/pull/{unknown}", json={}, headers=puller)).status_code == 404
        await edge.pool.execute("UPDATE whoop_connections SET status = 'needs_reauth'")
        conflict = await http.post(f"/v1/pull/{user_id}", json={}, headers=puller)
        assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "not_connected"
        almost = await http.post(
            f"/v1/pull/{user_id}", json={}, headers={"Authorization": f"Bearer {PULLER}x"}
        )
        assert almost.status_code == 401
    pulls = [e for e in await edge.events() if isinstance(e, BackfillRequested)]
    assert [p.resource_types for p in pulls] == [("cycle", "sleep", "recovery", "workout"), ("workout",)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_python_m_ingest_migrates_serves_and_stops_on_sigterm(
    database_url: str, pg_schema: str, kafka_settings: KafkaSettings, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory("whoop.webhooks.v1", partitions=3)
    port = _free_port()
    separator = "&" if "?" in database_url else "?"
    env = {
        **os.environ,
        "INGEST_PORT": str(port),
        "INGEST_WEBHOOK_TOPIC": topic,
        "INGEST_APPEND_TIMEOUT_S": "5",  # a busy CI machine must not turn this one webhook into a 503
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "DATABASE_URL": f"{database_url}{separator}search_path={pg_schema}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ingest",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                assert process.returncode is None, "python -m ingest exited"
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "python -m ingest did not serve within 60 s"
                await asyncio.sleep(0.1)
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": "ok", "postgres": "ok"}
            body = orjson.dumps(
                {
                    "user_id": 7,
                    "id": "e4a8c1f0-2b6d-47a9-93e1-5c0b8d7f6a24",
                    "type": "workout.deleted",
                    "trace_id": "p1",
                }
            )
            response = await http.post("/v1/webhooks/whoop", content=body, headers=signed_headers(body))
            assert response.status_code == 204
            assert "server" not in response.headers
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    # uvicorn shuts down gracefully (the lifespan closes the producer and the pool); the exit is clean
    assert "Application shutdown complete" in log, log[-2000:]
    assert process.returncode == 0  # not killed by the signal uvicorn re-raises (infra.http_server)
    assert "public development key" in log
    assert SECRET not in log
    import asyncpg

    connection = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
    try:
        versions = [
            r["version"] for r in await connection.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        ]
    finally:
        await connection.close()
    assert versions[:7] == [1, 2, 3, 4, 5, 6, 7]
    [event] = await read_topic(kafka_settings, topic)
    assert isinstance(event, WebhookReceived) and event.whoop_event_type == "workout.deleted"
