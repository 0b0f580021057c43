"""The query API's OpenAPI 3.1 document, built from one description of every route.

``python -m projections openapi`` writes it to ``projections/query/openapi.json`` (kept in the
repository and served at ``/openapi.json``); ``python -m projections openapi --check`` fails when
the file differs from what this module builds. Units and time semantics are stated once: the time
semantics here, the units in the component schemas. Those schemas are data (``openapi_schemas.json``,
edited by hand) but for the page shapes of each record type, made here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from .params import DEFAULT_LIMIT, KINDS, MAX_LIMIT

__all__ = ["build_spec", "component_schemas", "render_spec"]

JSON = dict[str, Any]
_REF = "#/components/schemas/"
_NULLABLE_STRING: JSON = {"type": ["string", "null"]}

TIME_SEMANTICS = (
    "ISO-8601 date-time, e.g. `2025-10-14T02:41:07.312Z`, `2025-10-14T02:41:07+02:00` or "
    "`2025-10-14T02:41:07`. **A value without an offset is read as UTC** (not as the phone's or the "
    "server's local time); a date alone means 00:00 UTC of that date. Fractional seconds: up to 6 digits."
)
_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"

_SCHEMAS_FILE = Path(__file__).with_name("openapi_schemas.json")
"""The component schemas (records, ``WearMetrics`` and its units, daily summaries, sync status, errors)."""
_PAGED = ("Cycle", "Sleep", "Recovery", "Workout")
_NEXT = {**_NULLABLE_STRING, "description": "Opaque cursor of the next page; null on the last."}


def _ref(name: str) -> JSON:
    return {"$ref": _REF + name}


def _object(properties: JSON, required: list[str]) -> JSON:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _collections(item: str) -> JSON:
    """The two page shapes of ``item``: ``<item>Page`` (``/v1/data``), ``<item>Envelope`` (later SDKs)."""
    records = {"type": "array", "items": _ref(item)}
    envelope = {
        "vendor": {"type": "string", "enum": ["whoop"]},
        "app_id": {"type": "string", "description": "The `app_id` of the request, or empty."},
        "user_id": {"type": "string"},
        "records": records,
        "cursor": _NEXT,
    }
    return {
        f"{item}Page": _object({"records": records, "next_token": _NEXT}, ["records", "next_token"]),
        f"{item}Envelope": _object(envelope, list(envelope)),
    }


def component_schemas() -> JSON:
    """The component schemas: the data of ``openapi_schemas.json`` and each record's page shapes."""
    schemas: JSON = orjson.loads(_SCHEMAS_FILE.read_bytes())
    for item in _PAGED:
        schemas.update(_collections(item))
    return schemas


_ITEM = {"recovery": "Recovery", "sleep": "Sleep", "workouts": "Workout", "cycles": "Cycle"}
_ETAG = {"ETag": {"description": "Strong entity tag of this answer.", "schema": {"type": "string"}}}


def _error(description: str, headers: JSON | None = None) -> JSON:
    response: JSON = {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}
    if headers:
        response["headers"] = headers
    return response


def _responses(
    ok: JSON, *, conditional: bool = True, not_found: str = "Another member's data, or none."
) -> JSON:
    retry = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
    responses: JSON = {"200": ok}
    if conditional:
        responses["304"] = {"description": "Unchanged since the `If-None-Match` tag.", "headers": _ETAG}
    responses.update(
        {
            "400": _error("A parameter is malformed (named in the message)."),
            "401": _error(
                "No, a malformed, unknown, revoked or expired bearer token.",
                {"WWW-Authenticate": {"description": "Bearer.", "schema": {"type": "string"}}},
            ),
            "403": _error("An admin token without the scope this route needs."),
            "404": _error(not_found),
            "429": _error("This token's request budget is spent.", retry),
            "500": _error("An unexpected failure (a bug): logged with the trace id."),
            "503": _error("The database is unavailable.", retry),
        }
    )
    return responses


_READ_MODEL = {
    "X-Read-Model-Version": {
        "description": "The read-model version the answer was read from (one per answer; it changes when"
        " the data team switches versions, see `python -m projections versions`).",
        "schema": {"type": "string"},
    }
}


def _ok(schema: JSON, description: str) -> JSON:
    headers = {**_ETAG, **_READ_MODEL}
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": schema}},
    }


def _params(*names: str) -> list[JSON]:
    return [_PARAMETERS[name] for name in names]


def _param(name: str, description: str, schema: JSON, where: str = "query", **extra: Any) -> JSON:
    """An operation parameter: ``in`` ``where``, then ``extra`` (e.g. ``required``)."""
    return {"name": name, "in": where, **extra, "description": description, "schema": schema}


_PARAMETERS: dict[str, JSON] = {
    "user_id": _param(
        "user_id",
        "Our member id (as returned by the OAuth callback). A user token reads only its own.",
        {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^:/]+$"},
        where="path",
        required=True,
    ),
    "start": _param(
        "start",
        "Records that end at or after this time (overlap). " + TIME_SEMANTICS,
        {"type": "string", "maxLength": 64, "pattern": _TIME_PATTERN},
    ),
    "end": _param(
        "end",
        "Records that start before this time (exclusive). " + TIME_SEMANTICS,
        {"type": "string", "maxLength": 64, "pattern": _TIME_PATTERN},
    ),
    "limit": _param(
        "limit",
        f"Page size, 1 to {MAX_LIMIT} (WHOOP's cap); default {DEFAULT_LIMIT}. More is refused "
        "with 400, never clamped.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    "next_token": _param(
        "next_token",
        "Cursor from the previous page (`nextToken` and `cursor` are accepted too). Keep the "
        "same start and end while paging.",
        {"type": "string", "maxLength": 512},
    ),
    "cursor": _param(
        "cursor", "Cursor from the previous answer's `cursor`.", {"type": "string", "maxLength": 512}
    ),
    "app_id": _param(
        "app_id", "The calling app's id; echoed in the answer.", {"type": "string", "maxLength": 128}
    ),
    "if_none_match": _param(
        "If-None-Match",
        "An `ETag` of an earlier answer: 304 when unchanged.",
        {"type": "string", "maxLength": 512},
        where="header",
    ),
    "start_date": _param(
        "start_date", "First local date (inclusive), `YYYY-MM-DD`.", {"type": "string", "format": "date"}
    ),
    "end_date": _param(
        "end_date", "Last local date (inclusive), `YYYY-MM-DD`.", {"type": "string", "format": "date"}
    ),
    "types": _param(
        "types",
        "Comma-separated subset of `recovery,sleep,workouts,cycles` (default: all).",
        {"type": "string", "maxLength": 64},
    ),
}

_ID_SCHEMA = {
    "cycles": {"type": "string", "pattern": "^[0-9]{1,19}$", "description": "Cycle id."},
    "sleep": {"type": "string", "format": "uuid", "description": "Sleep UUID."},
    "workouts": {"type": "string", "format": "uuid", "description": "Workout UUID."},
    "recovery": {
        "type": "string",
        "description": "The recovery's cycle id (WHOOP's key) or its sleep's UUID.",
        "anyOf": [{"pattern": "^[0-9]{1,19}$"}, {"format": "uuid"}],
    },
}


def _paths() -> JSON:
    paths: JSON = {}
    for kind in KINDS:
        paths.update(_kind_paths(kind))
    paths.update(_member_paths())
    return paths


def _kind_paths(kind: str) -> JSON:
    """The routes of one record type: its pages (two shapes), and one record (three prefixes)."""
    item = _ITEM[kind]
    paths: JSON = {}
    paths[f"/v1/data/{{user_id}}/{kind}"] = {
        "get": {
            "operationId": f"list_{kind}",
            "summary": f"{item} records of a member, newest first (WHOOP v2 shape).",
            "description": "Records overlapping [start, end), ordered by start descending "
            "(recoveries: by the start of their sleep). Pages are keyset cursors: stable while new "
            "records arrive.",
            "parameters": _params("user_id", "start", "end", "limit", "next_token", "if_none_match"),
            "responses": _responses(_ok(_ref(f"{item}Page"), "A page of records.")),
        }
    }
    paths[f"/v1/whoop/data/{{user_id}}/{kind}"] = {
        "get": {
            "operationId": f"list_{kind}_whoop_alias",
            "summary": f"{item} records in the later SDKs' envelope "
            "`{vendor, app_id, user_id, records, cursor}`.",
            "parameters": _params("user_id", "app_id", "start", "end", "limit", "cursor", "if_none_match"),
            "responses": _responses(_ok(_ref(f"{item}Envelope"), "A page of records.")),
        }
    }
    for prefix, name in (
        ("/v1/data", "get"),
        ("/v1/whoop-cloud/data", "get_whoop_cloud"),
        ("/v1/whoop/data", "get_whoop_alias"),
    ):
        paths[f"{prefix}/{{user_id}}/{kind}/{{record_id}}"] = {
            "get": {
                "operationId": f"{name}_{kind}",
                "summary": f"One {kind} record as WearMetrics.",
                "parameters": [
                    _PARAMETERS["user_id"],
                    {"name": "record_id", "in": "path", "required": True, "schema": _ID_SCHEMA[kind]},
                    _PARAMETERS["if_none_match"],
                ],
                "responses": _responses(
                    _ok(_ref("WearMetrics"), "The record."),
                    not_found="No such record (or another member's).",
                ),
            }
        }
    return paths


def _member_paths() -> JSON:
    """A member's routes across record types (a window, daily summaries, sync status), and this document."""
    paths: JSON = {}
    paths["/v1/data/{user_id}/metrics"] = {
        "get": {
            "operationId": "fetch_range",
            "summary": "Every record overlapping [start, end) as WearMetrics, newest first "
            "(the SDK's fetchRange).",
            "description": "start and end are required; the window may span at most "
            "PROJECTIONS_METRICS_MAX_DAYS days (92 by default).",
            "parameters": [
                _PARAMETERS["user_id"],
                {**_PARAMETERS["start"], "required": True},
                {**_PARAMETERS["end"], "required": True},
                _PARAMETERS["types"],
                _PARAMETERS["if_none_match"],
            ],
            "responses": _responses(_ok({"type": "array", "items": _ref("WearMetrics")}, "The records.")),
        }
    }
    paths["/v1/data/{user_id}/daily"] = {
        "get": {
            "operationId": "list_daily_summaries",
            "summary": "Daily summaries (recovery, HRV, resting HR, sleep, strain, calories), newest first.",
            "parameters": _params(
                "user_id", "start_date", "end_date", "limit", "next_token", "if_none_match"
            ),
            "responses": _responses(_ok(_ref("DailyPage"), "A page of days.")),
        }
    }
    paths["/v1/data/{user_id}/sync"] = {
        "get": {
            "operationId": "get_sync_status",
            "summary": "Connection and sync status: connected / needs re-auth, last webhook, fetch, "
            "record, backfill.",
            "description": "Admin tokens need the `status` or `read` scope.",
            "parameters": _params("user_id", "if_none_match"),
            "responses": _responses(_ok(_ref("SyncStatus"), "The status.")),
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return paths


def build_spec() -> JSON:
    """The OpenAPI 3.1 document of the query API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "WHOOP pipeline query API",
            "version": "1.0.0",
            "description": "Read models of the WHOOP pipeline for the phone SDK and the data team. "
            "Every data route needs `Authorization: Bearer <token>`: a member's token reads only that "
            "member (another member's data answers 404); admin tokens carry scopes. Errors are "
            '`{"error": {"code", "message", "trace_id"}}`. Times: ' + TIME_SEMANTICS + " Units: energy kcal, "
            "distance metres, HRV ms, durations ms, percentages 0-100, strain 0-21.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": component_schemas(),
        },
    }


def render_spec() -> bytes:
    """The document as written to ``openapi.json`` (indented, sorted keys, final newline)."""
    return orjson.dumps(build_spec(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
