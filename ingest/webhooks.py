"""``POST /v1/webhooks/whoop``: verified WHOOP webhooks into ``whoop.webhooks.v1``.

Order of checks, each refusal counted by reason and nothing appended:
1. Content-Length above the cap → 413 (before reading); malformed framing → 400;
2. signature headers: missing, duplicated, malformed, timestamp outside the window → 401;
3. the body, read with the cap whatever Content-Length claimed (or when it is absent) → 413; a client
   gone before its body is in (or cut by the server's body deadline) is neither answered nor counted;
4. the HMAC of timestamp + raw bytes under the current or the previous secret → 401;
5. the JSON: malformed or missing/mistyped fields → 400; an unknown event type → 200, counted,
   not appended;
6. the append: 204 only once Kafka acknowledged it; 503 + Retry-After when it could not
   within the bound (WHOOP retries).

From the parsed body on, the work runs in the webhook's trace (``infra.logs.trace_context``: WHOOP's
``trace_id`` and our user id): its log lines carry them, the append writes the Kafka header
``trace_id``, and an error answer names that trace id.

This is the hot path (every WHOOP event, thousands per second per process), so it is a plain ASGI
endpoint: one pass over the raw headers, the body read straight from ``receive``, a pre-built 204.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

from infra.logs import progress_logger, trace_context
from ingest.errors import AppendUnavailable
from ingest.http import JsonResponse, error_response
from ingest.payload import KNOWN_TYPES, Ignored, Malformed, WhoopWebhook, parse_webhook, to_record, user_id_of
from ingest.services import Services
from ingest.signature import Rejected, check_body, check_headers, signing_keys

__all__ = ["WEBHOOK_PATH", "WebhookEndpoint", "WebhookFastPath"]

logger = logging.getLogger(__name__)
progress = progress_logger(__name__)

WEBHOOK_PATH = "/v1/webhooks/whoop"
_SIGNATURE = b"x-whoop-signature"
_TIMESTAMP = b"x-whoop-signature-timestamp"
_LENGTH = b"content-length"


class _TooLarge(Exception):
    pass


class _ClientGone(Exception):
    """The client left before its body was in (or the server cut it: the body deadline passed)."""


class WebhookEndpoint:
    """The ASGI endpoint; ``services`` gives the settings, the publisher and the metrics."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._keys = signing_keys(services.webhook_secrets)
        self._limit = services.settings.ingest.max_body_bytes
        self._tolerance_ms = services.settings.ingest.timestamp_tolerance_s * 1000
        self._topic = services.settings.ingest.webhook_topic
        self._retry_after = str(services.settings.ingest.retry_after_s)
        metrics = services.metrics
        self._rejected = metrics.webhooks_rejected
        self._accepted = {t: metrics.webhooks_accepted.labels(t) for t in KNOWN_TYPES}
        self._append_seconds = metrics.append_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = await self._handle(scope, receive, send)
        if status == 204:
            # fresh messages each time: a middleware may add headers to the list it is given
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> int:
        self._rejected.labels(code).inc()
        await error_response(status, code, message)(scope, receive, send)
        return status

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> int:
        signatures: list[str] = []
        timestamps: list[str] = []
        lengths: list[bytes] = []
        for name, value in scope["headers"]:
            if name == _SIGNATURE:
                signatures.append(value.decode("latin-1"))
            elif name == _TIMESTAMP:
                timestamps.append(value.decode("latin-1"))
            elif name == _LENGTH:
                lengths.append(value)
        if len(lengths) > 1 or (lengths and not (lengths[0].isdigit() and len(lengths[0]) <= 18)):
            return await self._refuse(scope, receive, send, 400, "bad_framing", "invalid Content-Length")
        if lengths and int(lengths[0]) > self._limit:
            return await self._refuse(
                scope, receive, send, 413, "body_too_large", f"the body exceeds {self._limit} bytes"
            )
        headers = check_headers(
            signatures, timestamps, now_ms=int(time.time() * 1000), tolerance_ms=self._tolerance_ms
        )
        if isinstance(headers, Rejected):
            return await self._refuse(
                scope, receive, send, 401, headers.reason, "webhook signature rejected: " + headers.reason
            )
        try:
            raw = await self._read(receive)
        except _TooLarge:
            return await self._refuse(
                scope, receive, send, 413, "body_too_large", f"the body exceeds {self._limit} bytes"
            )
        except _ClientGone:
            return 499  # nobody to answer; a partial body is not a bad signature
        verdict = check_body(headers, raw, self._keys)
        if isinstance(verdict, Rejected):
            return await self._refuse(
                scope, receive, send, 401, verdict.reason, "webhook signature rejected: " + verdict.reason
            )
        metrics = self._services.metrics
        if verdict.secret_index > 0:
            metrics.webhooks_previous_secret.inc()
        parsed = parse_webhook(raw)
        if isinstance(parsed, Malformed):
            return await self._refuse(scope, receive, send, 400, parsed.code, parsed.message)
        if isinstance(parsed, Ignored):
            metrics.webhooks_unknown_type.inc()
            logger.info("ignored a webhook of unknown type %r", parsed.event_type)
            response = JsonResponse({"status": "ignored", "reason": "unknown_event_type"}, status_code=200)
            await response(scope, receive, send)
            return 200
        with trace_context(parsed.trace_id, user_id=user_id_of(parsed)):
            return await self._append(scope, receive, send, parsed, verdict.timestamp_ms)

    async def _append(
        self, scope: Scope, receive: Receive, send: Send, parsed: WhoopWebhook, timestamp_ms: int
    ) -> int:
        metrics = self._services.metrics
        key, value = to_record(parsed, timestamp_ms=timestamp_ms, now=datetime.now(UTC))
        started = time.perf_counter()
        try:
            await self._services.require_publisher().append(self._topic, key, value)
        except AppendUnavailable as exc:
            metrics.append_failures.labels(exc.code).inc()
            logger.warning("webhook %s not appended: %s", parsed.trace_id, exc.code)
            response = error_response(
                503,
                "kafka_unavailable",
                "the event log did not acknowledge in time; retry later",
                headers={"Retry-After": self._retry_after},
            )
            await response(scope, receive, send)
            return 503
        self._append_seconds.observe(time.perf_counter() - started)
        self._accepted[parsed.event_type].inc()
        if progress.isEnabledFor(logging.INFO):
            progress.info("webhook appended: %s %s", parsed.event_type, parsed.resource_id)
        return 204

    async def _read(self, receive: Receive) -> bytes:
        """The body from ``receive``, refusing more than the cap whatever the headers said."""
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self._limit:
                raise _TooLarge
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)


class WebhookFastPath:
    """ASGI middleware serving ``POST /v1/webhooks/whoop`` ahead of Starlette's router (the hot path).

    The route is also registered on the router (so other methods get 405 and it shows in the table);
    this only skips routing and the exception wrappers for the one request WHOOP sends.
    """

    def __init__(self, app: ASGIApp, endpoint: WebhookEndpoint) -> None:
        self._app = app
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST":
            await self._endpoint(scope, receive, send)
        else:
            await self._app(scope, receive, send)
