"""``create_app``: the Starlette application of the WHOOP simulator (no module-level app).

Routes: the data API under ``/developer``, OAuth under ``/oauth/oauth2``, the control API under
``/_sim``; ``/healthz``, ``/readyz`` and ``/metrics`` (requests by route template and status, with
latency; ``infra.http_metrics``). Unknown paths answer like WHOOP's edge: ``HTTP 404 Not Found``
(plain text) under ``/developer``, ``default backend - 404`` elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from infra.http_metrics import RequestMetrics, measured
from infra.ops_server import ops_routes
from infra.settings import WhoopAppSettings
from simulator.clock import Clock, Sleeper, SystemClock, asyncio_sleeper
from simulator.control_api import control_routes
from simulator.data_api import data_routes
from simulator.oauth_api import oauth_routes
from simulator.runtime import Simulator
from simulator.settings import SimulatorSettings

__all__ = ["create_app"]


async def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code != 404:
        return PlainTextResponse(exc.detail, exc.status_code)
    if request.url.path.startswith("/developer/"):
        return PlainTextResponse("HTTP 404 Not Found", 404)
    return PlainTextResponse("default backend - 404", 404)


async def _serving() -> dict[str, bool]:
    """Ready once it answers: the simulator depends on nothing."""
    return {"simulator": True}


def create_app(
    settings: SimulatorSettings,
    app_settings: WhoopAppSettings,
    *,
    clock: Clock | None = None,
    sleeper: Sleeper | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """Build the simulator for one registered app; the lifespan runs the webhook sender.

    ``clock`` and ``sleeper`` default to real time; tests inject a manual clock, and a mock
    transport when the webhook receiver is in-process.
    """
    simulator = Simulator(
        settings,
        app_settings,
        clock=clock or SystemClock(),
        sleeper=sleeper or asyncio_sleeper,
        webhook_transport=webhook_transport,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await simulator.start()
        try:
            yield
        finally:
            await simulator.aclose()

    metrics = RequestMetrics(CollectorRegistry(auto_describe=True), "simulator")
    routes = data_routes() + oauth_routes() + (control_routes() if settings.control_enabled else [])
    routes += ops_routes(metrics.registry, _serving)
    app = Starlette(
        routes=routes,
        middleware=[measured(metrics)],
        lifespan=lifespan,
        exception_handlers={404: _not_found},
    )
    app.state.simulator = simulator
    return app
