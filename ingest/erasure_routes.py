"""``DELETE /v1/me`` (a member erases themself: 202 + job) and ``GET /v1/erasures/{job_id}`` (its status).

The erasure runs in the background (``ingest.erasure``); the member's token stops working at its
first step, so the status route needs no token: the job id is a random uuid only the member was
given, and the status shows no user id and no data (the step and the WHOOP outcome, no counts).
Admins erase with ``python -m ingest erase``.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import authenticated
from ingest.http import JsonResponse, error_response
from ingest.services import ErasureStatus, services_of

__all__ = ["erasure_routes"]

logger = logging.getLogger(__name__)

_STATUS_PATH = "/v1/erasures/{job_id}"


_SHOWN = ("step", "whoop_access")  # counts of deleted rows say how many sleeps or workouts: not shown


def _job(job: ErasureStatus) -> dict[str, object]:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "progress": {name: job.progress[name] for name in _SHOWN if name in job.progress},
        "status_url": _STATUS_PATH.format(job_id=job.job_id),
    }


async def erase_me(request: Request) -> Response:
    services = services_of(request)
    principal = await authenticated(request, services)
    if isinstance(principal, Response):
        return principal
    if principal.kind != "user" or principal.user_id is None:
        return error_response(
            403, "members_only", "only a member erases themself here; operators use python -m ingest erase"
        )
    if services.erasures is None:
        return error_response(503, "erasure_unavailable", "erasure is not available; retry later")
    job = await services.erasures.request(principal.user_id)
    logger.info("erasure %s requested by the member", job.job_id)
    return JsonResponse(_job(job), status_code=202, headers={"Cache-Control": "no-store"})


async def erasure_status(request: Request) -> Response:
    services = services_of(request)
    job_id = request.path_params["job_id"]
    job = None if services.erasures is None else await services.erasures.status(job_id)
    if job is None:
        return error_response(404, "not_found", "no such erasure")
    return JsonResponse(_job(job), headers={"Cache-Control": "no-store"})


def erasure_routes() -> list[Route]:
    """The member's erasure and its status."""
    return [
        Route("/v1/me", erase_me, methods=["DELETE"]),
        Route(_STATUS_PATH, erasure_status, methods=["GET"]),
    ]
