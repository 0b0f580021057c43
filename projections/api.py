"""The query API (Starlette): the phone contract, served from the read models.

``create_api(settings, pool=None)`` is the standalone app (its lifespan opens its connections unless a pool is
given). To serve these routes from another app (the HTTP edge on :8000), mount ``query_routes()``
and, in that app's lifespan, ``async with QueryServices.open(settings) as services:
app.state.projections = services``; every route reads ``request.app.state.projections`` and answers
its own errors in the error shape, whatever the hosting app's handlers are. ``/openapi.json``
serves ``projections/openapi.json`` (OpenAPI 3.1), which documents every route.

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

from .auth import Authenticator, Principal, RateLimiter
from .cursor import decode_cursor, encode_cursor, scope_digest
from .errors import ApiError, BadRequest, MethodNotAllowed, NotFound, RateLimited, Unavailable
from .http import body_etag, error_response, json_bytes, not_modified, request_etag
from .query import KINDS, parse_date, parse_id, parse_limit, parse_window
from .read_connections import ConnectionSource
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
    OSError,
    TimeoutError,
)
_RECORD_KEY = {"recovery": "cycle_id", "sleep": "sleep_id", "workouts": "workout_id", "cycles": "cycle_id"}


@dataclass
class QueryServices:
    """What the routes use: the settings, the reader, the authenticator and the rate limiter."""

    settings: ProjectionsSettings
    reader: ReadModelReader
    auth: Authenticator
    limiter: RateLimiter

    @classmethod
    def create(
        cls, settings: ProjectionsSettings, connections: asyncpg.Pool | ConnectionSource
    ) -> QueryServices:
        timeout = settings.statement_timeout_s
        return cls(
            settings=settings,
            reader=ReadModelReader(connections, timeout=timeout),
            auth=Authenticator(connections, settings.admin(), settings.auth_cache_s),
            limiter=RateLimiter(settings.rate_per_s, settings.rate_burst),
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


Handler = Callable[[Request, QueryServices], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Run ``handler`` with the services; every failure becomes the error shape, never a bare 500."""

    async def endpoint(request: Request) -> Response:
        services: QueryServices = getattr(request.app.state, STATE_KEY)
        retry_after = {"Retry-After": str(services.settings.retry_after_s)}
        try:
            return await handler(request, services)
        except ApiError as exc:
            headers = retry_after if isinstance(exc, RateLimited | Unavailable) else None
            if exc.status == 401:
                headers = {"WWW-Authenticate": 'Bearer realm="whoop-pipeline"'}
            return error_response(exc.status, exc.code, exc.message, headers)
        except _UNAVAILABLE as exc:
            logger.warning("PostgreSQL unavailable: %s", type(exc).__name__)
            return error_response(503, "unavailable", "the database is unavailable; retry later", retry_after)
        except Exception:
            logger.exception("unexpected failure answering %s", request.url.path)
            return error_response(500, "internal", "an unexpected error; it was logged")

    return endpoint


def _param(request: Request, *names: str) -> str | None:
    """The one value of the first present parameter among ``names``; repeated → BadRequest."""
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise BadRequest(f"{name} is given more than once", "invalid_parameter")
        if values:
            return values[0]
    return None


async def _caller(request: Request, services: QueryServices, scope: str = "read") -> tuple[Principal, str]:
    principal = await services.auth.authenticate(request)
    services.limiter.check(principal)
    user_id = request.path_params["user_id"]
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


def _collection(kind: str, envelope: str) -> Handler:
    async def handle(request: Request, services: QueryServices) -> Response:
        _, user_id = await _caller(request, services)
        app_id = _param(request, "app_id") or ""
        if len(app_id) > 128:
            raise BadRequest("app_id is longer than 128 characters", "invalid_parameter")
        window = parse_window(_param(request, "start"), _param(request, "end"))
        limit = parse_limit(_param(request, "limit"))
        token = _param(request, "next_token", "nextToken", "cursor")
        scope = scope_digest(kind, user_id, window.start, window.end)
        after = None if not token else _position(kind, *decode_cursor(token, scope))
        if request.headers.get("if-none-match"):
            unchanged = not_modified(
                request, request_etag(await services.reader.data_version(user_id), request)
            )
            if unchanged is not None:
                return unchanged
        page = await services.reader.page(kind, user_id, window, after, limit)
        next_token = None
        if page.next_after is not None:
            last_start, last_id = page.next_after
            next_token = encode_cursor(scope, last_start.isoformat(), last_id)
        records = b"[" + page.records + b"]"
        if envelope == "whoop":
            head = orjson.dumps({"vendor": "whoop", "app_id": app_id, "user_id": user_id})
            body = head[:-1] + b',"records":' + records + b',"cursor":' + orjson.dumps(next_token) + b"}"
        else:
            body = b'{"records":' + records + b',"next_token":' + orjson.dumps(next_token) + b"}"
        return json_bytes(body, etag=request_etag(page.version, request))

    return handle


def _single(kind: str) -> Handler:
    async def handle(request: Request, services: QueryServices) -> Response:
        _, user_id = await _caller(request, services)
        column, value = parse_id(kind, request.path_params["record_id"])
        version = await services.reader.data_version(user_id)
        etag = request_etag(version, request)
        unchanged = not_modified(request, etag)
        if unchanged is not None:
            return unchanged
        row = await services.reader.one(kind, user_id, column, value)
        if row is None:
            raise NotFound(f"no such {kind} record", "not_found")
        return json_bytes(orjson.dumps(wear_metrics(kind, row)), etag=etag)

    return handle


async def _metrics(request: Request, services: QueryServices) -> Response:
    _, user_id = await _caller(request, services)
    start, end = _param(request, "start"), _param(request, "end")
    if start is None or end is None:
        raise BadRequest("start and end are required", "invalid_window")
    window = parse_window(start, end)
    span = window.days()
    if span is not None and span > services.settings.metrics_max_days:
        raise BadRequest(
            f"the window may span at most {services.settings.metrics_max_days} days", "window_too_wide"
        )
    kinds = _kinds(_param(request, "types"))
    if request.headers.get("if-none-match"):
        unchanged = not_modified(request, request_etag(await services.reader.data_version(user_id), request))
        if unchanged is not None:
            return unchanged
    version, rows = await services.reader.in_window(user_id, window, kinds)
    items = [
        (row["start_at"], kind, str(row[_RECORD_KEY[kind]]), wear_metrics(kind, row)) for kind, row in rows
    ]
    items.sort(key=lambda item: (item[0], item[1], item[2]), reverse=True)
    return json_bytes(orjson.dumps([item[3] for item in items]), etag=request_etag(version, request))


def _kinds(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return KINDS
    kinds = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise BadRequest(f"types must be a comma-separated subset of {', '.join(KINDS)}", "invalid_parameter")
    return kinds


async def _daily(request: Request, services: QueryServices) -> Response:
    _, user_id = await _caller(request, services)
    raw_first, raw_last = _param(request, "start_date"), _param(request, "end_date")
    first = date.min if raw_first is None else parse_date(raw_first, "start_date")
    last = date.max if raw_last is None else parse_date(raw_last, "end_date")
    if first > last:
        raise BadRequest("start_date must not be after end_date", "invalid_window")
    limit = parse_limit(_param(request, "limit"))
    token = _param(request, "next_token", "nextToken", "cursor")
    scope = scope_digest("daily", user_id, first, last)
    before = None
    if token:
        position, _ = decode_cursor(token, scope)
        try:
            before = date.fromisoformat(position)
        except ValueError:
            raise BadRequest("next_token is not a cursor of this API", "invalid_cursor") from None
    if request.headers.get("if-none-match"):
        unchanged = not_modified(request, request_etag(await services.reader.data_version(user_id), request))
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
    return json_bytes(body, etag=request_etag(page.version, request))


def _instant(value: datetime | None) -> str | None:
    return None if value is None else iso_instant(value)


async def _sync(request: Request, services: QueryServices) -> Response:
    _, user_id = await _caller(request, services, scope="status")
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
    return not_modified(request, etag) or json_bytes(body, etag=etag)


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
    """Every route of the query API (they read ``request.app.state.projections``)."""
    routes: list[BaseRoute] = [  # the phone's collections first: Starlette tries routes in order
        Route(f"/v1/data/{{user_id}}/{kind}", _endpoint(_collection(kind, "phone")), methods=["GET"])
        for kind in KINDS
    ]
    for kind in KINDS:
        routes.append(
            Route(
                f"/v1/whoop/data/{{user_id}}/{kind}", _endpoint(_collection(kind, "whoop")), methods=["GET"]
            )
        )
        for prefix in ("/v1/data", "/v1/whoop-cloud/data", "/v1/whoop/data"):
            routes.append(
                Route(f"{prefix}/{{user_id}}/{kind}/{{record_id}}", _endpoint(_single(kind)), methods=["GET"])
            )
    routes.append(Route("/v1/data/{user_id}/metrics", _endpoint(_metrics), methods=["GET"]))
    routes.append(Route("/v1/data/{user_id}/daily", _endpoint(_daily), methods=["GET"]))
    routes.append(Route("/v1/data/{user_id}/sync", _endpoint(_sync), methods=["GET"]))
    routes.append(Route("/openapi.json", _openapi, methods=["GET"]))
    return routes


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = exc.headers if isinstance(exc, HTTPException) else None
    if status == 405:
        error: ApiError = MethodNotAllowed("this route does not answer that method")
        return error_response(error.status, error.code, error.message, headers)
    if status == 404:
        return error_response(404, "not_found", "no such route")
    return error_response(status, "http_error", "the request cannot be answered")


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

    return Starlette(
        routes=query_routes(), lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
