"""HTTP plumbing shared by the routes: orjson responses, the error shape and a size-capped body reader.

Errors are ``{"error": {"code", "message", "trace_id"}}`` (``phone-contract.md``); ``trace_id``
is the trace of the request when it has one (a webhook's: ``infra.logs.trace_context``), else a
fresh id, and it appears in the log line of the answer (WARNING for a 5xx, DEBUG otherwise), so an
operator can find the request. Messages name the problem, never a token, a secret or a payload.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response

from infra.logs import current_trace

__all__ = ["BodyTooLarge", "BodyUnreadable", "JsonResponse", "error_response", "read_body", "read_json"]

logger = logging.getLogger(__name__)


class JsonResponse(Response):
    """A JSON response rendered with orjson."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, object] | None = None,
) -> JsonResponse:
    """The error shape of every route (``details``: more machine-readable fields of the error)."""
    trace = current_trace()
    trace_id = trace.trace_id if trace is not None and trace.trace_id else uuid.uuid4().hex
    logger.log(
        logging.WARNING if status >= 500 else logging.DEBUG,
        "answered %s %s",
        status,
        code,
        extra={"trace_id": trace_id},
    )
    return JsonResponse(
        {"error": {**(details or {}), "code": code, "message": message, "trace_id": trace_id}},
        status_code=status,
        headers=headers,
    )


class BodyTooLarge(Exception):
    """The body is (or declares itself) larger than the cap."""


class BodyUnreadable(Exception):
    """The request framing is wrong (e.g. two Content-Length headers or a non-numeric one)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whatever Content-Length claims (or if absent)."""
    declared = request.headers.getlist("content-length")
    if len(declared) > 1:
        raise BodyUnreadable("more than one Content-Length header")
    if declared:
        value = declared[0].strip()
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise BodyUnreadable("Content-Length is not a number")
        if int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> object:
    """A size-capped JSON body; ``ValueError`` when it is not JSON, BodyTooLarge when too big."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError("the body is not valid JSON") from exc
