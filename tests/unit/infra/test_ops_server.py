"""The ops server: /healthz, /readyz (503 with the failing checks), /metrics (refreshed on scrape), port 0."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge

from infra.ops_server import OpsServer, ops_app, serve_ops

pytestmark = pytest.mark.unit


class _Probe:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.lag = Gauge("test_lag", "lag", ["partition"], registry=self.registry)
        self.checks = {"postgres": True, "kafka": True}
        self.refreshed = 0
        self.refresh_fails = False

    async def readiness(self) -> Mapping[str, bool]:
        return dict(self.checks)

    async def refresh(self) -> None:
        if self.refresh_fails:
            raise ConnectionError("down")
        self.refreshed += 1
        self.lag.labels("0").set(self.refreshed * 10)


def _client(probe: _Probe) -> httpx.AsyncClient:
    app = ops_app(probe.registry, probe.readiness, probe.refresh, ready_cache_s=0)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops")


async def test_healthz_answers_while_not_ready() -> None:
    probe = _Probe()
    probe.checks["kafka"] = False
    async with _client(probe) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_check_passes_and_503_naming_the_failing_one() -> None:
    probe = _Probe()
    async with _client(probe) as client:
        ready = await client.get("/readyz")
        probe.checks["postgres"] = False
        unready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "kafka": "ok"}}
    assert unready.status_code == 503
    assert unready.json() == {"status": "unavailable", "checks": {"postgres": "unavailable", "kafka": "ok"}}
    assert unready.headers["cache-control"] == "no-store"


async def test_readyz_is_503_when_the_check_raises() -> None:
    probe = _Probe()

    async def broken() -> Mapping[str, bool]:
        raise OSError("refused")

    app = ops_app(probe.registry, broken, ready_cache_s=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


async def test_metrics_refreshes_the_gauges_before_each_scrape() -> None:
    probe = _Probe()
    async with _client(probe) as client:
        first = await client.get("/metrics")
        second = await client.get("/metrics")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    assert 'test_lag{partition="0"} 10.0' in first.text
    assert 'test_lag{partition="0"} 20.0' in second.text


async def test_a_failing_refresh_still_serves_the_last_values() -> None:
    probe = _Probe()
    async with _client(probe) as client:
        await client.get("/metrics")
        probe.refresh_fails = True
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'test_lag{partition="0"} 10.0' in response.text


async def test_a_refresh_that_hangs_is_cut_short() -> None:
    probe = _Probe()
    gate = asyncio.Event()

    async def hangs() -> None:
        await gate.wait()

    app = ops_app(probe.registry, probe.readiness, hangs, refresh_timeout_s=0.05)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        response = await asyncio.wait_for(client.get("/metrics"), 5)
    assert response.status_code == 200
    assert "# TYPE test_lag gauge" in response.text


async def test_port_zero_binds_a_free_port_that_answers_at_once_and_is_released_on_stop() -> None:
    probe = _Probe()
    async with contextlib.AsyncExitStack() as stack:
        server = await serve_ops(stack, probe.registry, probe, "127.0.0.1", 0)
        assert server.port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            assert "test_lag" in (await client.get("/metrics")).text
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{server.port}/healthz")


async def test_a_taken_port_fails_start_with_the_os_error() -> None:
    probe = _Probe()
    app = ops_app(probe.registry, probe.readiness)
    first = OpsServer(app, "127.0.0.1", 0)
    await first.start()
    try:
        with pytest.raises(OSError):
            await OpsServer(app, "127.0.0.1", first.port).start()
    finally:
        await first.stop()
