"""The HTTP edge of a one-box deployment: the ingest app and the query API on one port.

In production each is its own deployment behind a load balancer; locally one uvicorn process on
``INGEST_HOST:INGEST_PORT`` (127.0.0.1:8000) serves both. ``Edge`` routes a request by its path:
the query API's paths (``/v1/data/...``, ``/v1/whoop-cloud/data/...``, ``/v1/whoop/data/...``,
``/openapi.json``) go to the query API, everything else to ingest (``/metrics`` shows both apps'
metrics). Both apps' lifespans run. The
server applies the ``INGEST_*`` HTTP limits (``infra.http_server``).
Unless ``PIPELINE_ENV=dev``, it refuses to start on a public development secret
(``infra/pipeline_env.py``), before it connects anywhere.
"""

from __future__ import annotations

import logging
import sys
from contextlib import AsyncExitStack

import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from infra.http_server import serve, server_config
from infra.logs import LogSettings, configure_logging
from infra.pipeline_env import EXIT_REFUSED, PipelineEnvSettings, dev_secret_problems, refusal_line
from ingest.app import create_app as create_ingest_app
from ingest.settings import Settings as IngestAppSettings
from projections.query.api import create_api
from projections.settings import Settings as ProjectionsAppSettings

__all__ = ["QUERY_PREFIXES", "Edge", "edge_config", "serve_edge"]

logger = logging.getLogger(__name__)

QUERY_PREFIXES = ("/v1/data/", "/v1/whoop-cloud/data/", "/v1/whoop/data/", "/openapi.json")


class Edge:
    """One ASGI app in front of two: the query API for its prefixes, ingest for the rest."""

    def __init__(self, ingest: Starlette, query: Starlette) -> None:
        self.ingest = ingest
        self.query = query

    def route(self, path: str) -> Starlette:
        return self.query if path.startswith(QUERY_PREFIXES) else self.ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.route(scope["path"])(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with AsyncExitStack() as stack:
            await receive()  # lifespan.startup
            try:
                for app in (self.ingest, self.query):
                    await stack.enter_async_context(app.router.lifespan_context(app))
            except Exception as exc:
                logger.exception("the edge could not start")
                await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


def edge_config(ingest_settings: IngestAppSettings, edge: Edge) -> uvicorn.Config:
    """uvicorn's config of the edge: INGEST_HOST:INGEST_PORT under the INGEST_* HTTP limits."""
    own = ingest_settings.ingest
    return server_config(edge, host=own.host, port=own.port, limits=own.http_limits(), lifespan="on")


def serve_edge() -> int:
    """Serve ingest + query API until SIGTERM/SIGINT, then stop gracefully; the exit status (0)."""
    ingest_settings = IngestAppSettings.from_env()
    if problems := dev_secret_problems(
        PipelineEnvSettings(),
        token_vault_keys=ingest_settings.vault.token_vault_keys,
        whoop_client_secret=ingest_settings.whoop.whoop_client_secret,
        whoop_client_secret_previous=ingest_settings.ingest.whoop_client_secret_previous,
    ):
        sys.stderr.write(refusal_line("python -m deploy edge", problems))
        return EXIT_REFUSED
    logs = LogSettings()
    configure_logging(
        "edge", logs.log_format, level=ingest_settings.ingest.log_level, records=logs.log_records
    )
    ingest, query = create_ingest_app(ingest_settings), create_api(ProjectionsAppSettings.from_env())
    ingest.state.services.metrics.registry.register(query.state.request_metrics.registry)  # one /metrics
    edge = Edge(ingest, query)
    return serve(edge_config(ingest_settings, edge))
