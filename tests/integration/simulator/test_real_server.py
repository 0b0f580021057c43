"""The simulator on real sockets: ``python -m simulator`` as a process, and signed webhooks with retries
delivered to a real local HTTP receiver (the retry hour compressed by the time scale)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.settings import WhoopAppSettings
from simulator.app import create_app
from simulator.settings import SimulatorSettings
from simulator.signing import sign
from tests.support.server import free_port, serve_in_thread

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_python_m_simulator_serves_on_the_configured_port() -> None:
    port = free_port()
    env = dict(os.environ, SIMULATOR_PORT=str(port), SIMULATOR_MEMBERS="2", SIMULATOR_DAYS="5")
    proc = subprocess.Popen([sys.executable, "-m", "simulator"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_sim/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert health.json() == {
            "status": "ok",
            "members": 2,
            "client_id": WhoopAppSettings().whoop_client_id,
        }
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) is not None


def test_signed_webhooks_with_retries_reach_a_real_receiver() -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    done = threading.Event()

    async def receive(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        if len(received) >= 3:
            done.set()
            return Response(status_code=204)
        return Response(status_code=503)  # the first two attempts fail

    receiver = Starlette(routes=[Route("/v1/webhooks/whoop", receive, methods=["POST"])])
    with serve_in_thread(receiver) as receiver_url:
        app_settings = WhoopAppSettings(whoop_webhook_url=f"{receiver_url}/v1/webhooks/whoop")
        settings = SimulatorSettings(members=1, days=5, time_scale=3600.0)  # 30 s + 120 s -> 42 ms
        with serve_in_thread(create_app(settings, app_settings)) as sim_url:
            user_id = httpx.get(f"{sim_url}/_sim/members").json()["members"][0]["user_id"]
            httpx.post(f"{sim_url}/_sim/members/{user_id}/tokens", json={}).raise_for_status()
            created = httpx.post(f"{sim_url}/_sim/scenarios/new-workout", json={"user_id": user_id}).json()
            assert done.wait(timeout=20)
            httpx.post(f"{sim_url}/_sim/webhooks/settle", timeout=20).raise_for_status()
            stats = httpx.get(f"{sim_url}/_sim/webhooks").json()["stats"]
    secret = app_settings.whoop_client_secret.get_secret_value()
    assert len(received) == 3 and stats["delivered"] == 1 and stats["failed_attempts"] == 2
    for headers, body in received:
        assert headers["x-whoop-signature"] == sign(secret, headers["x-whoop-signature-timestamp"], body)
        assert body == received[0][1]  # same body, same trace_id, on every retry
    assert created["events"][0]["trace_id"].encode() in received[0][1]
