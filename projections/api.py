"""The query API (Starlette): the phone contract, served from the read models.

``create_api(settings, pool=None)`` is the standalone app (its lifespan opens its own connections
unless a pool is given). To serve these routes from another app (the HTTP edge on :8000), mount
``query_routes()`` and, in that app's lifespan, ``async with QueryServices.open(settings) as
services: app.state.projections = services``; every route reads ``scope["app"].state.projections``
and answers its own errors in the error shape, whatever the hosting app's handlers are. The data
routes are plain ASGI endpoints (``http.Call`` in, ``http.Answer`` out): Starlette routes them, and
no Request or Response object is built per request. ``/openapi.json`` serves
``projections/openapi.json`` (OpenAPI 3.1), which documents every route. The standalone app also
answers ``/healthz`` and ``/readyz`` (PostgreSQL answers; the result reused for
``PROJECTIONS_READYZ_CACHE_S``); behind the edge, ingest's answer them.

Routes (``{kind}``: ``recovery``, ``sleep``, ``workouts``, ``cycles``):
- ``GET /v1/data/{user_id}/{kind}``: ``{records, next_token}``, WHOOP-shaped records newest first;
- ``GET /v1/whoop/data/{user_id}/{kind}``: ``{vendor, app_id, user_id, records, cursor}`` (later SDKs);
- ``GET /v1/data|whoop-cloud/data|whoop/data/{user_id}/{kind}/{id}``: one ``WearMetrics``;
- ``GET /v1/data/{user_id}/metrics?start&end``: the ``WearMetrics`` of a window (``fetchRange``);
- ``GET /v1/data/{user_id}/daily``: daily summaries; ``GET /v1/data/{user_id}/sync``: sync status.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from infra.auth_throttle import FailureThrottle
from infra.cached_check import CachedCheck

from .auth import Authenticator, Principal, RateLimiter
from .cursor import decode_cursor, encode_cursor, scope_digest
from .errors import (
    ApiError,
    AuthenticationThrottled,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    Unavailable,
)
from .http import Answer, Call, body_etag, error_response, json_bytes, not_modified, request_etag, wants
from .query import KINDS, parse_date, parse_id, parse_limit, parse_window
from .read_connections import ConnectionSource, begin_request
from .reads import ReadModelReader, open_read_connections
from .settings import ProjectionsSettings, Settings
from .wear_metrics import iso_instant, wear_metrics

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
_RECORD_KEY = {"recovery": "cycle_id", "sleep": "sleep_id", "workouts": "workout_id", "cycles": "cycle_id"}


@dataclass
class QueryServices:
    """What the routes use: the settings, the reader, the authenticator, the rate limiter and the
    cached readiness check."""

    settings: ProjectionsSettings
    reader: ReadModelReader
    auth: Authenticator
    limiter: RateLimiter
    readiness: CachedCheck[bool]

    @classmethod
    def create(
        cls, settings: ProjectionsSettings, connections: asyncpg.Pool | ConnectionSource
    ) -> QueryServices:
        timeout = settings.statement_timeout_s
        reader = ReadModelReader(connections, timeout=timeout)
        failures = FailureThrottle(settings.auth_failures_max, settings.auth_failure_window_s)
        return cls(
            settings=settings,
            reader=reader,
            auth=Authenticator(connections, settings.admin(), settings.auth_cache_s, failures=failures),
            limiter=RateLimiter(settings.rate_per_s, settings.rate_burst),
            readiness=CachedCheck(reader.ready, settings.readyz_cache_s),
        )

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, pool: asyncpg.Pool | None = None) -> AsyncIterator[QueryServices]:
        """Services on ``pool``, or on connections of their own (migrated), closed with the context."""
        if pool is not None:
            yield cls.create(settings.projections, pool)
            return
        own = await open_read_connections(settings.postgres, settings.projections.db_pool_size)
        try:
            yield cls.create(settings.projections, own)
        finally:
            await own.close()


Handler = Callable[[Call, QueryServices], Awaitable[Answer]]


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


def _param(call: Call, *names: str) -> str | None:
    """The one value of the first present parameter among ``names``; repeated → BadRequest."""
    for name in names:
        values = call.params(name)
        if len(values) > 1:
            raise BadRequest(f"{name} is given more than once", "invalid_parameter")
        if values:
            return values[0]
    return None


async def _caller(call: Call, services: QueryServices, scope: str = "read") -> tuple[Principal, str]:
    principal = await services.auth.authenticate(call)
    services.limiter.check(principal)
    user_id = call.path_params["user_id"]
    principal.authorize(user_id, scope)
    if not user_id or len(user_id) > 64 or ":" in user_id:
        raise NotFound("no such member", "not_found")
    return principal, user_id


def _position(kind: str, position: str, record_id: str) -> tuple[datetime, int | str]:
    """The keyset position a cursor holds; a forged one is refused, never passed to PostgreSQL."""
    invalid = BadRequest("next_token is not a cursor of this API", "invalid_cursor")
    try:
        start = datetime.fromisoformat(position)
        if start.tzinfo is None:
            raise invalid
        start = start.astimezone(UTC)
        key: int | str = record_id
        if _RECORD_KEY[kind] == "cycle_id":
            key = parse_id("cycles", record_id)[1]
    except (ValueError, OverflowError, BadRequest):
        raise invalid from None
    return start, key


async def _unchanged(call: Call, services: QueryServices, user_id: str) -> Answer | None:
    """304 when ``If-None-Match`` names the current tag of ``call`` (one primary-key read), else None."""
    if not wants(call):
        return None
    return not_modified(call, request_etag(await services.reader.data_version(user_id), call))


def _collection(kind: str, envelope: str) -> Handler:
    async def handle(call: Call, services: QueryServices) -> Answer:
        _, user_id = await _caller(call, services)
        app_id = _param(call, "app_id") or ""
        if len(app_id) > 128:
            raise BadRequest("app_id is longer than 128 characters", "invalid_parameter")
        window = parse_window(_param(call, "start"), _param(call, "end"))
        limit = parse_limit(_param(call, "limit"))
        token = _param(call, "next_token", "nextToken", "cursor")
        after = None
        if token:
            scope = scope_digest(kind, user_id, window.start, window.end)
            after = _position(kind, *decode_cursor(token, scope))
        unchanged = await _unchanged(call, services, user_id)
        if unchanged is not None:
            return unchanged
        page = await services.reader.page(kind, user_id, window, after, limit)
        next_token = b"null"
        if page.next_after is not None:
            last_start, last_id = page.next_after
            scope = scope_digest(kind, user_id, window.start, window.end)
            next_token = orjson.dumps(encode_cursor(scope, last_start.isoformat(), last_id))
        if envelope == "whoop":
            head = orjson.dumps({"vendor": "whoop", "app_id": app_id, "user_id": user_id})[:-1]
            body = b"".join((head, b',"records":[', page.records, b'],"cursor":', next_token, b"}"))
        else:
            body = b"".join((b'{"records":[', page.records, b'],"next_token":', next_token, b"}"))
        return json_bytes(body, etag=request_etag(page.version, call), read_model=page.read_model)

    return handle


def _single(kind: str) -> Handler:
    async def handle(call: Call, services: QueryServices) -> Answer:
        _, user_id = await _caller(call, services)
        column, value = parse_id(kind, call.path_params["record_id"])
        version, row, read_model = await services.reader.one(kind, user_id, column, value)
        etag = request_etag(version, call)
        unchanged = not_modified(call, etag)
        if unchanged is not None:
            return unchanged
        if row is None:
            raise NotFound(f"no such {kind} record", "not_found")
        return json_bytes(orjson.dumps(wear_metrics(kind, row)), etag=etag, read_model=read_model)

    return handle


async def _metrics(call: Call, services: QueryServices) -> Answer:
    _, user_id = await _caller(call, services)
    start, end = _param(call, "start"), _param(call, "end")
    if start is None or end is None:
        raise BadRequest("start and end are required", "invalid_window")
    window = parse_window(start, end)
    span = window.days()
    if span is not None and span > services.settings.metrics_max_days:
        raise BadRequest(
            f"the window may span at most {services.settings.metrics_max_days} days", "window_too_wide"
        )
    kinds = _kinds(_param(call, "types"))
    unchanged = await _unchanged(call, services, user_id)
    if unchanged is not None:
        return unchanged
    version, items, read_model = await services.reader.metrics(user_id, window, kinds)
    return json_bytes(items, etag=request_etag(version, call), read_model=read_model)


def _kinds(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return KINDS
    kinds = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise BadRequest(f"types must be a comma-separated subset of {', '.join(KINDS)}", "invalid_parameter")
    return kinds


async def _daily(call: Call, services: QueryServices) -> Answer:
    _, user_id = await _caller(call, services)
    raw_first, raw_last = _param(call, "start_date"), _param(call, "end_date")
    first = date.min if raw_first is None else parse_date(raw_first, "start_date")
    last = date.max if raw_last is None else parse_date(raw_last, "end_date")
    if first > last:
        raise BadRequest("start_date must not be after end_date", "invalid_window")
    limit = parse_limit(_param(call, "limit"))
    token = _param(call, "next_token", "nextToken", "cursor")
    scope = scope_digest("daily", user_id, first, last)
    before = None
    if token:
        position, _ = decode_cursor(token, scope)
        try:
            before = date.fromisoformat(position)
        except ValueError:
            raise BadRequest("next_token is not a cursor of this API", "invalid_cursor") from None
    unchanged = await _unchanged(call, services, user_id)
    if unchanged is not None:
        return unchanged
    page = await services.reader.daily(user_id, first, last, before, limit)
    next_token = None
    if len(page.summaries) > limit:
        next_token = encode_cursor(scope, page.dates[limit - 1].isoformat(), "")
    body = (
        b'{"user_id":'
        + orjson.dumps(user_id)
        + b',"records":['
        + ",".join(page.summaries[:limit]).encode()
        + b'],"next_token":'
        + orjson.dumps(next_token)
        + b"}"
    )
    return json_bytes(body, etag=request_etag(page.version, call), read_model=page.read_model)


def _instant(value: datetime | None) -> str | None:
    return None if value is None else iso_instant(value)


async def _sync(call: Call, services: QueryServices) -> Answer:
    _, user_id = await _caller(call, services, scope="status")
    row = await services.reader.sync_status(user_id)
    backfill = None
    if row["job_id"] is not None:
        backfill = {
            "job_id": row["job_id"],
            "status": row["backfill_status"],
            "range_start": _instant(row["range_start"]),
            "range_end": _instant(row["range_end"]),
            "progress": orjson.loads(row["progress"]) if row["progress"] else {},
            "requested_at": _instant(row["backfill_requested_at"]),
            "updated_at": _instant(row["backfill_updated_at"]),
        }
    status = row["connection_status"] or "not_connected"
    body = orjson.dumps(
        {
            "user_id": user_id,
            "connection": {
                "status": status,
                "connected": status == "connected",
                "needs_reauth": status == "needs_reauth",
                "connected_at": _instant(row["connected_at"]),
                "disconnected_at": _instant(row["disconnected_at"]),
                "updated_at": _instant(row["connection_updated_at"]),
            },
            "last_webhook_at": _instant(row["last_webhook_at"]),
            "last_fetch_at": _instant(row["last_fetch_at"]),
            "last_record_at": _instant(row["last_record_at"]),
            "last_whoop_update_at": _instant(row["last_whoop_update_at"]),
            "records_applied": row["records_applied"] or 0,
            "webhooks_seen": row["webhooks_seen"] or 0,
            "documents_fetched": row["documents_seen"] or 0,
            "backfill": backfill,
        }
    )
    etag = body_etag(body)
    return not_modified(call, etag) or json_bytes(body, etag=etag, read_model=row["served"])


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
        Route(f"/v1/data/{{user_id}}/{kind}", _Endpoint(_collection(kind, "phone")), methods=["GET"])
        for kind in KINDS
    ]
    for kind in KINDS:
        routes.append(
            Route(
                f"/v1/whoop/data/{{user_id}}/{kind}", _Endpoint(_collection(kind, "whoop")), methods=["GET"]
            )
        )
        for prefix in ("/v1/data", "/v1/whoop-cloud/data", "/v1/whoop/data"):
            routes.append(
                Route(f"{prefix}/{{user_id}}/{kind}/{{record_id}}", _Endpoint(_single(kind)), methods=["GET"])
            )
    routes.append(Route("/v1/data/{user_id}/metrics", _Endpoint(_metrics), methods=["GET"]))
    routes.append(Route("/v1/data/{user_id}/daily", _Endpoint(_daily), methods=["GET"]))
    routes.append(Route("/v1/data/{user_id}/sync", _Endpoint(_sync), methods=["GET"]))
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

    routes = [
        *query_routes(),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
