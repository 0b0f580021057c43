"""Requests by route and status, with a latency histogram: one ASGI middleware for every HTTP app.

:class:`RequestMetrics` holds ``<prefix>_http_requests_total{route,status}`` and
``<prefix>_http_request_seconds{route}`` on a given registry. ``route`` is the matched route's
template (``/v1/data/{user_id}/sleep``), never the raw path: its values are a fixed set, whatever a
client sends (no user id, no token in a label). A request no route matched is ``route="unmatched"``.

Starlette writes the matched endpoint into the request's scope while routing; the template is looked
up from it after the response, so measuring adds no second routing pass.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["UNMATCHED", "RequestMetrics", "RequestMetricsMiddleware", "measured"]

UNMATCHED = "unmatched"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    """The request counter and latency histogram of one app, named ``<prefix>_http_...``."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{prefix}_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            f"{prefix}_http_request_seconds",
            "Time from a request's arrival to the start of its response, by route template.",
            ["route"],
            buckets=_BUCKETS,
            registry=registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.seconds.labels(route).observe(seconds)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request of ``app``: ``Middleware(RequestMetricsMiddleware, metrics=m)``."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[int, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any response start is answered 500 by Starlette

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.observe(self._route(scope), status, time.perf_counter() - started)
                observed.append(True)
            await send(message)

        observed: list[bool] = []
        try:
            await self.app(scope, receive, send_status)
        finally:
            if not observed:
                self.metrics.observe(self._route(scope), status, time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        if self._templates is None:
            self._templates = _templates(getattr(scope.get("app"), "routes", []))
        return self._templates.get(id(endpoint), UNMATCHED)


def _templates(routes: list[BaseRoute]) -> dict[int, str]:
    """Each route endpoint's path template, by ``id`` (the first route of a shared endpoint wins)."""
    found: dict[int, str] = {}
    for route in routes:
        endpoint: Any = route.app if isinstance(route, Mount) else getattr(route, "endpoint", None)
        path = getattr(route, "path", None)
        if endpoint is not None and path is not None:
            found.setdefault(id(endpoint), path or "/")  # a Mount at the root has the path ""
    return found


def measured(metrics: RequestMetrics) -> Middleware:
    """The middleware counting into ``metrics``, for ``Starlette(middleware=[...])``."""
    return Middleware(RequestMetricsMiddleware, metrics=metrics)
