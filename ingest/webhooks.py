"""``POST /v1/webhooks/whoop``: verified WHOOP webhooks into ``whoop.webhooks.v1``.

Order of checks, each refusal counted by reason and nothing appended:
1. Content-Length above the cap → 413 (before reading); malformed framing → 400;
2. signature headers: missing, duplicated, malformed, timestamp outside the window → 401;
3. the body, read with the cap whatever Content-Length claimed → 413;
4. the HMAC of timestamp + raw bytes under the current or the previous secret → 401;
5. the JSON: malformed or missing/mistyped fields → 400; an unknown event type → 200, counted,
   not appended;
6. the append: 204 only once Kafka acknowledged it; 503 + Retry-After when it could not
   within the bound (WHOOP retries).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from ingest.errors import AppendUnavailable
from ingest.http import BodyTooLarge, BodyUnreadable, JsonResponse, error_response, read_body
from ingest.payload import Ignored, Malformed, parse_webhook, to_record
from ingest.services import services_of
from ingest.signature import Rejected, check_body, check_headers

__all__ = ["receive_webhook"]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-whoop-signature"
TIMESTAMP_HEADER = "x-whoop-signature-timestamp"


async def receive_webhook(request: Request) -> Response:
    """Verify, parse, append, and answer only what is true."""
    services = services_of(request)
    settings, metrics = services.settings.ingest, services.metrics
    rejected = metrics.webhooks_rejected
    if _declares_too_much(request, settings.max_body_bytes):
        rejected.labels("body_too_large").inc()
        return error_response(413, "body_too_large", f"the body exceeds {settings.max_body_bytes} bytes")
    headers = check_headers(
        request.headers.getlist(SIGNATURE_HEADER),
        request.headers.getlist(TIMESTAMP_HEADER),
        now_ms=int(time.time() * 1000),
        tolerance_ms=settings.timestamp_tolerance_s * 1000,
    )
    if isinstance(headers, Rejected):
        rejected.labels(headers.reason).inc()
        return error_response(401, headers.reason, "webhook signature rejected: " + headers.reason)
    try:
        raw = await read_body(request, settings.max_body_bytes)
    except BodyTooLarge:
        rejected.labels("body_too_large").inc()
        return error_response(413, "body_too_large", f"the body exceeds {settings.max_body_bytes} bytes")
    except BodyUnreadable as exc:
        rejected.labels("bad_framing").inc()
        return error_response(400, "bad_framing", str(exc))
    verdict = check_body(headers, raw, services.webhook_secrets)
    if isinstance(verdict, Rejected):
        rejected.labels(verdict.reason).inc()
        return error_response(401, verdict.reason, "webhook signature rejected: " + verdict.reason)
    if verdict.secret_index > 0:
        metrics.webhooks_previous_secret.inc()
    parsed = parse_webhook(raw)
    if isinstance(parsed, Malformed):
        rejected.labels(parsed.code).inc()
        return error_response(400, parsed.code, parsed.message)
    if isinstance(parsed, Ignored):
        metrics.webhooks_unknown_type.inc()
        logger.info("ignored a webhook of unknown type %r", parsed.event_type)
        return JsonResponse({"status": "ignored", "reason": "unknown_event_type"}, status_code=200)
    key, value = to_record(parsed, timestamp_ms=verdict.timestamp_ms, now=datetime.now(UTC))
    started = time.perf_counter()
    try:
        await services.require_publisher().append(settings.webhook_topic, key, value)
    except AppendUnavailable as exc:
        metrics.append_failures.labels(exc.code).inc()
        logger.warning("webhook %s not appended: %s", parsed.trace_id, exc.code)
        return error_response(
            503,
            "kafka_unavailable",
            "the event log did not acknowledge in time; retry later",
            headers={"Retry-After": str(settings.retry_after_s)},
        )
    metrics.append_seconds.observe(time.perf_counter() - started)
    metrics.webhooks_accepted.labels(parsed.event_type).inc()
    return Response(status_code=204)


def _declares_too_much(request: Request, limit: int) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isascii() and declared.isdigit() and len(declared) <= 18 and int(declared) > limit
