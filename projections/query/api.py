"""The query API (Starlette): the phone contract, served from the read models.

``create_api(settings, pool=None)`` is the standalone app (its lifespan opens its own connections
unless a pool is given). To serve these routes from another app (the HTTP edge on :8000), mount
``query_routes()`` and, in that app's lifespan, ``async with QueryServices.open(settings) as
services: app.state.projections = services``; every route reads ``scope["app"].state.projections``
and answers its own errors in the error shape, whatever the hosting app's handlers are. The data
routes are plain ASGI endpoints (``http.Call`` in, ``http.Answer`` out; their handlers are in
``handlers``, what they share in ``services``): Starlette routes them, and no Request or Response
object is built per request. ``/openapi.json`` serves
``projections/query/openapi.json`` (OpenAPI 3.1), which documents every route. The standalone app also
answers ``/healthz`` and ``/readyz`` (PostgreSQL answers; the result reused for
``PROJECTIONS_READYZ_CACHE_S``) and ``/metrics`` (requests by route template and status, latency;
``infra.http_metrics``); behind the edge, ingest's answer them (the edge's ``/metrics`` holds both).

Routes (``{kind}``: ``recovery``, ``sleep``, ``workouts``, ``cycles``):
- ``GET /v1/data/{user_id}/{kind}``: ``{records, next_token}``, WHOOP-shaped records newest first;
- ``GET /v1/whoop/data/{user_id}/{kind}``: ``{vendor, app_id, user_id, records, cursor}`` (later SDKs);
- ``GET /v1/data|whoop-cloud/data|whoop/data/{user_id}/{kind}/{id}``: one ``WearMetrics``;
- ``GET /v1/data/{user_id}/metrics?start&end``: the ``WearMetrics`` of a window (``fetchRange``);
- ``GET /v1/data/{user_id}/daily``: daily summaries; ``GET /v1/data/{user_id}/sync``: sync status.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import orjson
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from infra.http_metrics import RequestMetrics, measured
from infra.ops_server import metrics_route

from ..errors import ApiError, AuthenticationThrottled, MethodNotAllowed, RateLimited, Unavailable
from ..settings import Settings
from . import handlers
from .http import Answer, Call, error_response
from .params import KINDS
from .read_connections import begin_request
from .services import Handler, QueryServices

__all__ = ["OPENAPI_PATH", "QueryServices", "create_api", "query_routes"]

logger = logging.getLogger(__name__)

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"
STATE_KEY = "projections"
_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InternalClientError,  # a connection whose backend just ended, seen before its socket closes
    OSError,
    TimeoutError,
)


class _Endpoint:
    """A route's ASGI endpoint: the handler's answer; every failure in the error shape, never a bare 500."""

    __slots__ = ("_handler",)

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        begin_request()
        answer = await self.answer(getattr(scope["app"].state, STATE_KEY), Call.from_scope(scope))
        await answer.send(send)

    async def answer(self, services: QueryServices, call: Call) -> Answer:
        try:
            return await self._handler(call, services)
        except ApiError as exc:
            headers = None
            if isinstance(exc, AuthenticationThrottled):
                headers = {"Retry-After": str(exc.retry_after_s)}
            elif isinstance(exc, RateLimited | Unavailable):
                headers = {"Retry-After": str(services.settings.retry_after_s)}
            elif exc.status == 401:
                headers = {"WWW-Authenticate": 'Bearer realm="whoop-pipeline"'}
            return error_response(exc.status, exc.code, exc.message, headers)
        except _UNAVAILABLE as exc:
            logger.warning("PostgreSQL unavailable: %s", type(exc).__name__)
            retry_after = {"Retry-After": str(services.settings.retry_after_s)}
            return error_response(503, "unavailable", "the database is unavailable; retry later", retry_after)
        except Exception:
            logger.exception("unexpected failure answering %s", call.path)
            return error_response(500, "internal", "an unexpected error; it was logged")


async def _healthz(request: Request) -> Response:
    """Alive: the event loop answers."""
    return Response(b'{"status":"ok"}', media_type="application/json")


async def _readyz(request: Request) -> Response:
    """Ready when PostgreSQL answers (a result at most ``PROJECTIONS_READYZ_CACHE_S`` old); else 503."""
    services: QueryServices = getattr(request.app.state, STATE_KEY)
    ready = await services.readiness.result()
    postgres = "ok" if ready else "unavailable"
    body = orjson.dumps({"status": "ready" if ready else "unavailable", "checks": {"postgres": postgres}})
    if ready:
        return Response(body, media_type="application/json")
    headers = {"Retry-After": str(services.settings.retry_after_s), "Cache-Control": "no-store"}
    return Response(body, status_code=503, media_type="application/json", headers=headers)


async def _openapi(request: Request) -> Response:
    """The OpenAPI document (public: it describes the API, not any member's data)."""
    return Response(
        _SPEC.read(), media_type="application/json", headers={"Cache-Control": "public, max-age=300"}
    )


class _SpecFile:
    """The OpenAPI file, read once."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._body: bytes | None = None

    def read(self) -> bytes:
        if self._body is None:
            self._body = self._path.read_bytes()
        return self._body


_SPEC = _SpecFile(OPENAPI_PATH)


def query_routes() -> list[BaseRoute]:
    """Every route of the query API (they read ``scope["app"].state.projections``)."""
    routes: list[BaseRoute] = [  # the phone's collections first: Starlette tries routes in order
        Route(f"/v1/data/{{user_id}}/{kind}", _Endpoint(handlers.collection(kind, "phone")), methods=["GET"])
        for kind in KINDS
    ]
    for kind in KINDS:
        routes.append(
            Route(
                f"/v1/whoop/data/{{user_id}}/{kind}",
                _Endpoint(handlers.collection(kind, "whoop")),
                methods=["GET"],
            )
        )
        for prefix in ("/v1/data", "/v1/whoop-cloud/data", "/v1/whoop/data"):
            routes.append(
                Route(
                    f"{prefix}/{{user_id}}/{kind}/{{record_id}}",
                    _Endpoint(handlers.single(kind)),
                    methods=["GET"],
                )
            )
    routes.append(Route("/v1/data/{user_id}/metrics", _Endpoint(handlers.metrics), methods=["GET"]))
    routes.append(Route("/v1/data/{user_id}/daily", _Endpoint(handlers.daily), methods=["GET"]))
    routes.append(Route("/v1/data/{user_id}/sync", _Endpoint(handlers.sync), methods=["GET"]))
    routes.append(Route("/openapi.json", _openapi, methods=["GET"]))
    return routes


def _response(answer: Answer) -> Response:
    """``answer`` as a Starlette response (for Starlette's own exception handlers)."""
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = list(answer.headers)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = exc.headers if isinstance(exc, HTTPException) else None
    if status == 405:
        error: ApiError = MethodNotAllowed("this route does not answer that method")
        return _response(error_response(error.status, error.code, error.message, headers))
    if status == 404:
        return _response(error_response(404, "not_found", "no such route"))
    return _response(error_response(status, "http_error", "the request cannot be answered"))


def create_api(settings: Settings, pool: asyncpg.Pool | None = None) -> Starlette:
    """The standalone query API; its lifespan opens (and closes) the pool unless ``pool`` is given."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with QueryServices.open(settings, pool) as services:
            setattr(app.state, STATE_KEY, services)
            try:
                yield
            finally:
                delattr(app.state, STATE_KEY)

    metrics = RequestMetrics(CollectorRegistry(auto_describe=True), "query_api")
    routes = [
        *query_routes(),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz, methods=["GET"]),
        metrics_route(metrics.registry),
    ]
    app = Starlette(
        routes=routes,
        middleware=[measured(metrics)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.request_metrics = metrics  # the edge adds them to its own /metrics
    return app
