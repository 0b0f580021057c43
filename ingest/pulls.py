"""``POST /v1/pull/{user_id}`` (202 + job id) and ``GET /v1/pull/{user_id}/jobs/{job_id}`` (progress).

A pull asks the fetcher to (re)fetch given resource types over a range: the job is recorded in
``pull_jobs`` and announced as ``BackfillRequested`` (with the job id) on ``whoop.connections.v1``;
the fetcher reports status and progress in the job row. Callers: the user's own token, or an admin
token with the ``pull`` scope (status also with ``read``). Body (all optional):
``{"types": ["cycle", "sleep", "recovery", "workout"], "start": ISO-8601, "end": ISO-8601}``; a
datetime without an offset is read as UTC; defaults: every type, the last ``INGEST_BACKFILL_DAYS``.
A member has at most one active pull (409 ``pull_in_progress`` naming it) and ``INGEST_PULLS_PER_DAY``
pulls a day (429 ``pull_rate_limited`` with ``Retry-After``): ``ingest.pull_jobs``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import AccessDenied, Principal, authenticate, authorize_for_user
from ingest.connect import ALL_RESOURCE_TYPES, publish_backfill
from ingest.errors import AppendUnavailable, PullInProgress, PullRateLimited
from ingest.http import BodyTooLarge, BodyUnreadable, JsonResponse, error_response, read_json
from ingest.pull_jobs import APPEND_FAILED, PullLimits
from ingest.services import services_of
from ingest.store import PullJob

__all__ = ["job_json", "parse_pull_request", "pull_routes"]

logger = logging.getLogger(__name__)

_MAX_RANGE = timedelta(days=3650)
_FUTURE_SLACK = timedelta(days=1)


def _datetime(value: object, name: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"{name!r} must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name!r} is not an ISO-8601 datetime") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_pull_request(
    body: object, now: datetime, default_days: int
) -> tuple[tuple[str, ...], datetime, datetime]:
    """``(types, start, end)`` of a pull body (pure); ValueError names the bad field."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")  # noqa: TRY004 - a 400, like every bad field
    unknown = set(body) - {"types", "start", "end"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)[:5]}")
    types_value = body.get("types", list(ALL_RESOURCE_TYPES))
    if (
        not isinstance(types_value, list)
        or not types_value
        or not all(isinstance(t, str) and t in ALL_RESOURCE_TYPES for t in types_value)
    ):
        raise ValueError(f"'types' must be a non-empty list among {list(ALL_RESOURCE_TYPES)}")
    types = tuple(t for t in ALL_RESOURCE_TYPES if t in types_value)
    end = _datetime(body["end"], "end") if body.get("end") is not None else now
    start = (
        _datetime(body["start"], "start")
        if body.get("start") is not None
        else end - timedelta(days=default_days)
    )
    if start >= end:
        raise ValueError("'start' must be before 'end'")
    if end > now + _FUTURE_SLACK:
        raise ValueError("'end' is in the future")
    if end - start > _MAX_RANGE:
        raise ValueError("the range is longer than ten years")
    return types, start, end


def _requested_by(principal: Principal) -> str:
    return "user" if principal.kind == "user" else f"admin:{principal.name}"


def _status_url(user_id: str, job_id: str) -> str:
    return f"/v1/pull/{user_id}/jobs/{job_id}"


def job_json(job: PullJob) -> dict[str, object]:
    """A pull job as the pull-status route answers it (``wear pull --json`` adds its totals)."""
    return {
        "job_id": job.job_id,
        "user_id": job.user_id,
        "status": job.status,
        "types": list(job.resource_types),
        "start": job.start.isoformat(),
        "end": job.end.isoformat(),
        "requested_by": job.requested_by,
        "progress": job.progress,
        "error": job.error,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "updated_at": job.updated_at.isoformat() if job.updated_at else None,
    }


async def request_pull(request: Request) -> Response:
    services = services_of(request)
    user_id: str = request.path_params["user_id"]
    try:
        principal = await authenticate(request, services)
        authorize_for_user(principal, user_id, "pull")
    except AccessDenied as exc:
        return error_response(exc.status, exc.code, exc.message)
    try:
        body = await read_json(request, services.settings.ingest.max_body_bytes)
        types, start, end = parse_pull_request(
            body, datetime.now(UTC), services.settings.ingest.backfill_days
        )
    except BodyTooLarge:
        return error_response(413, "body_too_large", "the body is too large")
    except BodyUnreadable as exc:
        return error_response(400, "bad_framing", str(exc))
    except ValueError as exc:
        return error_response(400, "invalid_request", str(exc))
    store = services.require_store()
    connection = await store.connection(user_id)
    if connection is None:
        return error_response(404, "not_found", "no such user")
    if connection.status != "connected":
        return error_response(409, "not_connected", f"the WHOOP connection is {connection.status}")
    job = PullJob(str(uuid.uuid4()), user_id, types, start, end, _requested_by(principal))
    settings = services.settings.ingest
    try:
        await store.create_pull_job(job, PullLimits(settings.pulls_per_day, settings.pull_stale_s))
    except PullInProgress as exc:
        active = {"job_id": exc.job_id, "status_url": _status_url(user_id, exc.job_id)}
        return error_response(409, exc.code, str(exc), details=active)
    except PullRateLimited as exc:
        return error_response(429, exc.code, str(exc), {"Retry-After": str(exc.retry_after_s)})
    try:
        await publish_backfill(services, user_id, job)
    except AppendUnavailable:
        await store.fail_pull_job(job.job_id, APPEND_FAILED)
        return error_response(
            503,
            "kafka_unavailable",
            "the event log is unavailable; retry later",
            {"Retry-After": str(services.settings.ingest.retry_after_s)},
        )
    services.metrics.pulls_requested.inc()
    logger.info("pull %s requested for user %s by %s", job.job_id, user_id, job.requested_by)
    return JsonResponse(
        {"job_id": job.job_id, "status": "requested", "status_url": _status_url(user_id, job.job_id)},
        status_code=202,
    )


async def pull_status(request: Request) -> Response:
    services = services_of(request)
    user_id: str = request.path_params["user_id"]
    job_id: str = request.path_params["job_id"]
    try:
        principal = await authenticate(request, services)
        scope = "pull" if principal.kind == "admin" and "pull" in principal.scopes else "read"
        authorize_for_user(principal, user_id, scope)
    except AccessDenied as exc:
        return error_response(exc.status, exc.code, exc.message)
    job = await services.require_store().pull_job(user_id, job_id) if len(job_id) <= 64 else None
    if job is None:
        return error_response(404, "not_found", "no such job")
    return JsonResponse(job_json(job))


def pull_routes() -> list[Route]:
    """The pull routes."""
    return [
        Route("/v1/pull/{user_id}", request_pull, methods=["POST"]),
        Route("/v1/pull/{user_id}/jobs/{job_id}", pull_status, methods=["GET"]),
    ]
