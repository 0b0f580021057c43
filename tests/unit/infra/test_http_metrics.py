"""Request metrics: counted by route template (never the raw path) and status, with a latency histogram."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from infra.http_metrics import UNMATCHED, RequestMetrics, measured

pytestmark = pytest.mark.unit


async def _item(request: Request) -> Response:
    return PlainTextResponse("ok", 200 if request.path_params["user_id"] != "missing" else 404)


async def _boom(request: Request) -> Response:
    raise RuntimeError("bug")


def _app() -> tuple[Starlette, RequestMetrics]:
    metrics = RequestMetrics(CollectorRegistry(), "test")
    routes = [Route("/v1/data/{user_id}/sleep", _item), Route("/boom", _boom)]
    return Starlette(routes=routes, middleware=[measured(metrics)]), metrics


def _count(metrics: RequestMetrics, route: str, status: str) -> float:
    value = metrics.registry.get_sample_value("test_http_requests_total", {"route": route, "status": status})
    return value or 0.0


async def test_requests_are_counted_by_route_template_and_status() -> None:
    app, metrics = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/v1/data/user-1/sleep")
        await client.get("/v1/data/user-2/sleep")
        await client.get("/v1/data/missing/sleep")
        await client.get("/nowhere/user-3")
    assert _count(metrics, "/v1/data/{user_id}/sleep", "200") == 2
    assert _count(metrics, "/v1/data/{user_id}/sleep", "404") == 1
    assert _count(metrics, UNMATCHED, "404") == 1
    exposition = [s.labels for m in metrics.registry.collect() for s in m.samples]
    assert not any("user-1" in str(labels) or "user-3" in str(labels) for labels in exposition)
    observed = metrics.registry.get_sample_value(
        "test_http_request_seconds_count", {"route": "/v1/data/{user_id}/sleep"}
    )
    assert observed == 3


async def test_an_unhandled_error_counts_as_500() -> None:
    app, metrics = _app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert _count(metrics, "/boom", "500") == 1
