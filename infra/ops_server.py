"""The ops HTTP server of a process that serves no HTTP of its own: ``/metrics``, ``/healthz``, ``/readyz``.

The processors and the projection workers run one :class:`OpsServer` in their event loop, on
``<STAGE>_METRICS_HOST:PORT`` (``docs/operations.md``):

- ``GET /healthz``: 200 while the event loop answers (liveness);
- ``GET /readyz``: 200 when every named check of the process's readiness callback passes, else 503
  with the failing checks (``{"status": "unavailable", "checks": {"postgres": "unavailable"}}``);
  the callback's answer is reused for ``ready_cache_s`` (``infra.cached_check``);
- ``GET /metrics``: the Prometheus text exposition of the process's registry, after an optional
  ``refresh`` (gauges read on scrape: consumer lag, quota left) bounded by ``refresh_timeout_s``; a
  refresh that fails or times out is logged and the last values are served.

The same routes serve apps that have an HTTP server of their own: the simulator mounts
:func:`ops_routes`, the query API :func:`metrics_route`.

Port 0 binds a free port; :attr:`OpsServer.port` is the bound one (also logged), known as soon as
:meth:`OpsServer.start` returns. The socket listens before ``start`` returns, so a client never
races the server's start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, Protocol

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.cached_check import CachedCheck
from infra.http_limits import HttpLimits
from infra.http_server import server_config

__all__ = [
    "OpsServer",
    "Probe",
    "Readiness",
    "Refresh",
    "metrics_route",
    "ops_app",
    "ops_routes",
    "serve_ops",
]

logger = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[Mapping[str, bool]]]
"""The process's readiness: each named check (``kafka``, ``postgres``...) and whether it passes."""
Refresh = Callable[[], Awaitable[None]]
"""Updates the gauges read on scrape, before ``/metrics`` answers."""


class Probe(Protocol):
    """What a process tells its ops server: readiness, and the gauges to refresh on scrape."""

    async def readiness(self) -> Mapping[str, bool]: ...

    async def refresh(self) -> None: ...


_LIMITS = HttpLimits(max_connections=16)
_JSON = "application/json"


def metrics_route(
    registry: CollectorRegistry, refresh: Refresh | None = None, *, timeout_s: float = 5.0
) -> Route:
    """``GET /metrics``: ``registry`` in the Prometheus text format, after ``refresh`` (if any)."""

    async def metrics(request: Request) -> Response:
        if refresh is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await refresh()
            except Exception as exc:  # noqa: BLE001 - stale gauges beat no scrape at all; the type is logged
                logger.warning("metrics refresh failed: %s", type(exc).__name__)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])


def ops_routes(
    registry: CollectorRegistry,
    readiness: Readiness,
    refresh: Refresh | None = None,
    *,
    ready_cache_s: float = 1.0,
    refresh_timeout_s: float = 5.0,
) -> list[Route]:
    """``/healthz``, ``/readyz`` (``readiness``, reused for ``ready_cache_s``) and ``/metrics``."""
    cached = CachedCheck(readiness, ready_cache_s)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    async def readyz(request: Request) -> Response:
        try:
            checks = dict(await cached.result())
        except Exception as exc:  # noqa: BLE001 - a check that raises means not ready; its type is logged
            logger.warning("readiness check failed: %s", type(exc).__name__)
            checks = {"readiness": False}
        ready = bool(checks) and all(checks.values())
        body = {
            "status": "ready" if ready else "unavailable",
            "checks": {name: "ok" if ok else "unavailable" for name, ok in checks.items()},
        }
        headers = None if ready else {"Cache-Control": "no-store"}
        return Response(orjson.dumps(body), 200 if ready else 503, headers, _JSON)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        metrics_route(registry, refresh, timeout_s=refresh_timeout_s),
    ]


def ops_app(
    registry: CollectorRegistry, readiness: Readiness, refresh: Refresh | None = None, **options: float
) -> Starlette:
    """The Starlette app of :func:`ops_routes` (``options``: its keyword arguments; no lifespan)."""
    return Starlette(routes=ops_routes(registry, readiness, refresh, **options))


class OpsServer:
    """``app`` served by uvicorn on ``host:port`` inside the running event loop, until :meth:`stop`."""

    def __init__(
        self, app: Starlette, host: str, port: int, *, http: Literal["httptools", "h11"] = "h11"
    ) -> None:
        self._config = server_config(app, host=host, port=port, limits=_LIMITS, http=http, lifespan="off")
        self._server = uvicorn.Server(self._config)
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment] # the process owns the signals
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        """The bound port, once :meth:`start` returned."""

    async def start(self) -> None:
        """Bind and listen (port 0: a free one), then serve in a task of the running loop."""
        sock = _listening(self._config.host, self._config.port)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="ops-server")
        logger.info("ops server (/metrics, /healthz, /readyz) on %s:%d", self._config.host, self.port)

    async def stop(self) -> None:
        """Stop serving and wait for the server to close (at most a few seconds)."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, 10)
        except TimeoutError:
            logger.warning("ops server did not stop in time")
        finally:
            self._task = None


async def serve_ops(
    stack: contextlib.AsyncExitStack, registry: CollectorRegistry, probe: Probe, host: str, port: int
) -> OpsServer:
    """Start an ops server for ``registry`` and ``probe`` on ``host:port``; ``stack`` stops it."""
    server = OpsServer(ops_app(registry, probe.readiness, probe.refresh), host, port)
    await server.start()
    stack.push_async_callback(server.stop)
    return server


def _listening(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
