"""The query API's OpenAPI 3.1 document, built from one description of every route.

``python -m projections openapi`` writes it to ``projections/openapi.json`` (kept in the
repository and served at ``/openapi.json``); ``python -m projections openapi --check`` fails when
the file differs from what this module builds. Units and time semantics are stated here once.
"""

from __future__ import annotations

from typing import Any

import orjson

from .query import DEFAULT_LIMIT, KINDS, MAX_LIMIT

__all__ = ["build_spec", "render_spec"]

JSON = dict[str, Any]
_REF = "#/components/schemas/"
_NULLABLE_NUMBER: JSON = {"type": ["number", "null"]}
_NULLABLE_INTEGER: JSON = {"type": ["integer", "null"]}
_NULLABLE_STRING: JSON = {"type": ["string", "null"]}
_INSTANT: JSON = {"type": "string", "format": "date-time"}
_NULLABLE_INSTANT: JSON = {"type": ["string", "null"], "format": "date-time"}
_SCORE_STATE: JSON = {"type": "string", "enum": ["SCORED", "PENDING_SCORE", "UNSCORABLE"]}

TIME_SEMANTICS = (
    "ISO-8601 date-time, e.g. `2025-10-14T02:41:07.312Z`, `2025-10-14T02:41:07+02:00` or "
    "`2025-10-14T02:41:07`. **A value without an offset is read as UTC** (not as the phone's or the "
    "server's local time); a date alone means 00:00 UTC of that date. Fractional seconds: up to 6 digits."
)
_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"

METRIC_UNITS = {
    "hr": "average heart rate, bpm",
    "hr_max": "maximum heart rate, bpm",
    "resting_hr": "resting heart rate, bpm",
    "hrv_rmssd": "heart-rate variability (RMSSD), milliseconds",
    "calories": "energy, kcal (WHOOP's kJ / 4.184)",
    "distance": "distance, metres",
    "spo2": "blood oxygen, %",
    "skin_temp_c": "skin temperature, °C (absolute)",
    "recovery_score": "WHOOP recovery, 0-100 %",
    "strain": "WHOOP strain, 0-21",
    "sleep_performance": "sleep performance, 0-100 %",
    "sleep_efficiency": "sleep efficiency, 0-100 %",
    "sleep_consistency": "sleep consistency, 0-100 %",
    "respiratory_rate": "breaths per minute",
    "asleep_ms": "time asleep (light + slow wave + REM), milliseconds",
    "in_bed_ms": "time in bed, milliseconds",
    "awake_ms": "time awake in bed, milliseconds",
    "light_ms": "light sleep, milliseconds",
    "slow_wave_ms": "slow-wave (deep) sleep, milliseconds",
    "rem_ms": "REM sleep, milliseconds",
    "altitude_gain": "altitude gained, metres",
    "percent_recorded": "heart-rate data received, 0-100 %",
}


def _ref(name: str) -> JSON:
    return {"$ref": _REF + name}


def _object(properties: JSON, required: list[str], additional: bool | JSON = False, **extra: Any) -> JSON:
    schema: JSON = {"type": "object", "properties": properties, "required": required}
    schema["additionalProperties"] = additional
    schema.update(extra)
    return schema


def _whoop_common() -> JSON:
    return {
        "user_id": {"type": "integer", "description": "WHOOP member id."},
        "created_at": _INSTANT,
        "updated_at": _INSTANT,
        "score_state": _SCORE_STATE,
    }


def _schemas() -> JSON:
    error = _object(
        {
            "error": _object(
                {
                    "code": {"type": "string", "description": "Machine-readable reason."},
                    "message": {"type": "string", "description": "Human-readable; never data or tokens."},
                    "trace_id": {"type": "string", "description": "Also in the server's log line."},
                },
                ["code", "message", "trace_id"],
            )
        },
        ["error"],
    )
    cycle = _object(
        {
            "id": {"type": "integer"},
            **_whoop_common(),
            "start": _INSTANT,
            "end": _NULLABLE_INSTANT,
            "timezone_offset": {"type": "string"},
            "score": {
                "type": ["object", "null"],
                "properties": {
                    "strain": {"type": "number", "description": "0-21"},
                    "kilojoule": {"type": "number", "description": "kJ (WHOOP's unit)"},
                    "average_heart_rate": {"type": "integer"},
                    "max_heart_rate": {"type": "integer"},
                },
            },
        },
        ["id", "user_id", "created_at", "updated_at", "start", "timezone_offset", "score_state"],
        True,
        description="WHOOP v2 Cycle, as WHOOP sent it (unknown WHOOP fields are kept).",
    )
    sleep = _object(
        {
            "id": {"type": "string"},
            "cycle_id": {"type": "integer"},
            "v1_id": _NULLABLE_INTEGER,
            **_whoop_common(),
            "start": _INSTANT,
            "end": _INSTANT,
            "timezone_offset": {"type": "string"},
            "nap": {"type": "boolean"},
            "score": {
                "type": ["object", "null"],
                "description": "SleepScore: stage times in ms, percentages.",
            },
        },
        [
            "id",
            "user_id",
            "created_at",
            "updated_at",
            "start",
            "end",
            "timezone_offset",
            "nap",
            "score_state",
        ],
        True,
        description="WHOOP v2 Sleep, as WHOOP sent it.",
    )
    recovery = _object(
        {
            "cycle_id": {"type": "integer"},
            "sleep_id": {"type": "string"},
            **_whoop_common(),
            "score": {
                "type": ["object", "null"],
                "properties": {
                    "user_calibrating": {"type": "boolean"},
                    "recovery_score": {"type": "number", "description": "0-100 %"},
                    "resting_heart_rate": {"type": "number", "description": "bpm"},
                    "hrv_rmssd_milli": {"type": "number", "description": "milliseconds"},
                    "spo2_percentage": {"type": "number"},
                    "skin_temp_celsius": {"type": "number"},
                },
            },
        },
        ["cycle_id", "sleep_id", "user_id", "created_at", "updated_at", "score_state"],
        True,
        description="WHOOP v2 Recovery, as WHOOP sent it.",
    )
    workout = _object(
        {
            "id": {"type": "string"},
            "v1_id": _NULLABLE_INTEGER,
            **_whoop_common(),
            "start": _INSTANT,
            "end": _INSTANT,
            "timezone_offset": {"type": "string"},
            "sport_name": {"type": "string"},
            "sport_id": _NULLABLE_INTEGER,
            "score": {"type": ["object", "null"], "description": "WorkoutScore: kJ, metres, zone ms."},
        },
        [
            "id",
            "user_id",
            "created_at",
            "updated_at",
            "start",
            "end",
            "timezone_offset",
            "sport_name",
            "score_state",
        ],
        True,
        description="WHOOP v2 Workout, as WHOOP sent it.",
    )
    wear_metrics = _object(
        {
            "timestamp": {
                **_INSTANT,
                "description": "Start of what the record measures (a recovery: start of its sleep), UTC.",
            },
            "device_id": {"type": "string", "description": "`whoop_<WHOOP member id>`."},
            "source": {"type": "string", "enum": ["whoop"]},
            "metrics": {
                "type": "object",
                "description": "Name → number or null, in these units. WHOOP has no stress, steps or SDNN: "
                "`stress` (0-1), `steps` and `hrv_sdnn` are never sent.",
                "properties": {
                    name: {**_NULLABLE_NUMBER, "description": unit} for name, unit in METRIC_UNITS.items()
                },
                "additionalProperties": _NULLABLE_NUMBER,
            },
            "meta": {
                "type": "object",
                "description": "`vendor`, `type` (recovery, sleep, workout, cycle), `id`, `score_state`, "
                "`local_date`, `timezone_offset`, `end` and type-specific ids.",
                "additionalProperties": True,
            },
            "rr_ms": {
                "type": "array",
                "items": {"type": "number"},
                "description": "RR intervals, ms (not sent).",
            },
        },
        ["timestamp", "device_id", "source", "metrics"],
        description="The phone SDK's normalized record.",
    )
    daily = _object(
        {
            "local_date": {"type": "string", "format": "date"},
            "recovery_score_pct": _NULLABLE_NUMBER,
            "hrv_rmssd_ms": _NULLABLE_NUMBER,
            "resting_heart_rate_bpm": _NULLABLE_NUMBER,
            "spo2_pct": _NULLABLE_NUMBER,
            "skin_temp_c": _NULLABLE_NUMBER,
            "sleep_performance_pct": _NULLABLE_NUMBER,
            "sleep_duration_ms": {**_NULLABLE_INTEGER, "description": "Main sleep, time asleep, ms."},
            "in_bed_ms": _NULLABLE_INTEGER,
            "nap_count": {"type": "integer"},
            "nap_duration_ms": _NULLABLE_INTEGER,
            "day_strain": {**_NULLABLE_NUMBER, "description": "0-21"},
            "calories_kcal": {**_NULLABLE_NUMBER, "description": "The cycle's energy, kcal."},
            "workout_count": {"type": "integer"},
            "recovery_cycle_id": _NULLABLE_STRING,
            "sleep_id": _NULLABLE_STRING,
            "cycle_id": _NULLABLE_STRING,
        },
        ["local_date", "nap_count", "workout_count"],
        description="One member's day (local date of the wake-up, per record's own offset).",
    )
    nullable_token = {**_NULLABLE_STRING, "description": "Opaque cursor of the next page; null on the last."}

    def page(item: str) -> JSON:
        return _object(
            {"records": {"type": "array", "items": _ref(item)}, "next_token": nullable_token},
            ["records", "next_token"],
        )

    def envelope(item: str) -> JSON:
        return _object(
            {
                "vendor": {"type": "string", "enum": ["whoop"]},
                "app_id": {"type": "string", "description": "The `app_id` of the request, or empty."},
                "user_id": {"type": "string"},
                "records": {"type": "array", "items": _ref(item)},
                "cursor": nullable_token,
            },
            ["vendor", "app_id", "user_id", "records", "cursor"],
        )

    sync = _object(
        {
            "user_id": {"type": "string"},
            "connection": _object(
                {
                    "status": {
                        "type": "string",
                        "enum": ["connected", "needs_reauth", "disconnected", "not_connected"],
                    },
                    "connected": {"type": "boolean"},
                    "needs_reauth": {"type": "boolean"},
                    "connected_at": _NULLABLE_INSTANT,
                    "disconnected_at": _NULLABLE_INSTANT,
                    "updated_at": _NULLABLE_INSTANT,
                },
                ["status", "connected", "needs_reauth", "connected_at", "disconnected_at", "updated_at"],
            ),
            "last_webhook_at": _NULLABLE_INSTANT,
            "last_fetch_at": _NULLABLE_INSTANT,
            "last_record_at": _NULLABLE_INSTANT,
            "last_whoop_update_at": _NULLABLE_INSTANT,
            "records_applied": {"type": "integer"},
            "webhooks_seen": {"type": "integer"},
            "documents_fetched": {"type": "integer"},
            "backfill": {
                "oneOf": [
                    {"type": "null"},
                    _object(
                        {
                            "job_id": {"type": "string"},
                            "status": {"type": "string"},
                            "range_start": _NULLABLE_INSTANT,
                            "range_end": _NULLABLE_INSTANT,
                            "progress": {"type": "object"},
                            "requested_at": _NULLABLE_INSTANT,
                            "updated_at": _NULLABLE_INSTANT,
                        },
                        [
                            "job_id",
                            "status",
                            "range_start",
                            "range_end",
                            "progress",
                            "requested_at",
                            "updated_at",
                        ],
                    ),
                ]
            },
        },
        [
            "user_id",
            "connection",
            "last_webhook_at",
            "last_fetch_at",
            "last_record_at",
            "last_whoop_update_at",
            "records_applied",
            "webhooks_seen",
            "documents_fetched",
            "backfill",
        ],
        description="Connection and sync status of a member.",
    )
    return {
        "Error": error,
        "Cycle": cycle,
        "Sleep": sleep,
        "Recovery": recovery,
        "Workout": workout,
        "WearMetrics": wear_metrics,
        "DailySummary": daily,
        "CyclePage": page("Cycle"),
        "SleepPage": page("Sleep"),
        "RecoveryPage": page("Recovery"),
        "WorkoutPage": page("Workout"),
        "CycleEnvelope": envelope("Cycle"),
        "SleepEnvelope": envelope("Sleep"),
        "RecoveryEnvelope": envelope("Recovery"),
        "WorkoutEnvelope": envelope("Workout"),
        "DailyPage": _object(
            {
                "user_id": {"type": "string"},
                "records": {"type": "array", "items": _ref("DailySummary")},
                "next_token": nullable_token,
            },
            ["user_id", "records", "next_token"],
        ),
        "SyncStatus": sync,
    }


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


_PARAMETERS: dict[str, JSON] = {
    "user_id": {
        "name": "user_id",
        "in": "path",
        "required": True,
        "description": "Our member id (as returned by the OAuth callback). A user token reads only its own.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^:/]+$"},
    },
    "start": {
        "name": "start",
        "in": "query",
        "description": "Records that end at or after this time (overlap). " + TIME_SEMANTICS,
        "schema": {"type": "string", "maxLength": 64, "pattern": _TIME_PATTERN},
    },
    "end": {
        "name": "end",
        "in": "query",
        "description": "Records that start before this time (exclusive). " + TIME_SEMANTICS,
        "schema": {"type": "string", "maxLength": 64, "pattern": _TIME_PATTERN},
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "description": f"Page size, 1 to {MAX_LIMIT} (WHOOP's cap); default {DEFAULT_LIMIT}. More is refused "
        "with 400, never clamped.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    "next_token": {
        "name": "next_token",
        "in": "query",
        "description": "Cursor from the previous page (`nextToken` and `cursor` are accepted too). Keep the "
        "same start and end while paging.",
        "schema": {"type": "string", "maxLength": 512},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "description": "Cursor from the previous answer's `cursor`.",
        "schema": {"type": "string", "maxLength": 512},
    },
    "app_id": {
        "name": "app_id",
        "in": "query",
        "description": "The calling app's id; echoed in the answer.",
        "schema": {"type": "string", "maxLength": 128},
    },
    "if_none_match": {
        "name": "If-None-Match",
        "in": "header",
        "description": "An `ETag` of an earlier answer: 304 when unchanged.",
        "schema": {"type": "string", "maxLength": 512},
    },
    "start_date": {
        "name": "start_date",
        "in": "query",
        "description": "First local date (inclusive), `YYYY-MM-DD`.",
        "schema": {"type": "string", "format": "date"},
    },
    "end_date": {
        "name": "end_date",
        "in": "query",
        "description": "Last local date (inclusive), `YYYY-MM-DD`.",
        "schema": {"type": "string", "format": "date"},
    },
    "types": {
        "name": "types",
        "in": "query",
        "description": "Comma-separated subset of `recovery,sleep,workouts,cycles` (default: all).",
        "schema": {"type": "string", "maxLength": 64},
    },
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
        item = _ITEM[kind]
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
                "parameters": _params(
                    "user_id", "app_id", "start", "end", "limit", "cursor", "if_none_match"
                ),
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
            "schemas": _schemas(),
        },
    }


def render_spec() -> bytes:
    """The document as written to ``projections/openapi.json`` (indented, sorted keys, final newline)."""
    return orjson.dumps(build_spec(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
