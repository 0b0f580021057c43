"""The query API's data routes: each reads what it needs of a :class:`~.http.Call`, checks who is
calling (``auth``) and the parameters (``params``, ``cursor``), reads (``reads``) and answers ready bytes.

``collection`` and ``single`` make the handlers of one record type (a page; one record as
``WearMetrics``); ``metrics`` (a window across types), ``daily`` and ``sync`` are handlers themselves.
Errors are raised (``projections.errors``); ``api`` answers them in the error shape.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson

from ..errors import BadRequest, NotFound
from .auth import Principal, authorize
from .cursor import decode_cursor, encode_cursor, scope_digest
from .http import Answer, Call, body_etag, json_bytes, not_modified, request_etag, wants
from .params import KINDS, parse_date, parse_id, parse_limit, parse_window
from .services import Handler, QueryServices
from .wear_metrics import iso_instant, wear_metrics

__all__ = ["collection", "daily", "metrics", "single", "sync"]

_RECORD_KEY = {"recovery": "cycle_id", "sleep": "sleep_id", "workouts": "workout_id", "cycles": "cycle_id"}


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
    authorize(principal, user_id, scope)
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


def collection(kind: str, envelope: str) -> Handler:
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


def single(kind: str) -> Handler:
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


async def metrics(call: Call, services: QueryServices) -> Answer:
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


async def daily(call: Call, services: QueryServices) -> Answer:
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


async def sync(call: Call, services: QueryServices) -> Answer:
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
