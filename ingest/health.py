"""``/healthz`` (the process is alive), ``/readyz`` (Kafka and PostgreSQL answer) and ``/metrics``.

``/readyz`` is public, so its answer is reused for ``INGEST_READYZ_CACHE_S`` (``Services.readiness``):
however often it is called, Kafka and PostgreSQL are asked at most once per that interval.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from ingest.http import JsonResponse
from ingest.services import services_of

__all__ = ["healthz", "metrics", "readyz"]


async def healthz(request: Request) -> Response:
    """Alive: the event loop answers."""
    return JsonResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when both the Kafka cluster and PostgreSQL answer; 503 naming what does not."""
    services = services_of(request)
    kafka, postgres = await services.readiness.result()
    checks = {"kafka": "ok" if kafka else "unavailable", "postgres": "ok" if postgres else "unavailable"}
    ready = kafka and postgres
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": str(services.settings.ingest.retry_after_s)},
    )


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry."""
    registry = services_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
