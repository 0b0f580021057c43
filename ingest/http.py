"""HTTP plumbing shared by the routes: orjson responses, the error shape and a size-capped body reader.

Errors are ``{"error": {"code", "message", "trace_id"}}`` (``phone-contract.md``); ``trace_id``
is a fresh id that also appears in the log line, so an operator can find the request. Messages
name the problem, never a token, a secret or a payload.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["BodyTooLarge", "BodyUnreadable", "JsonResponse", "error_response", "read_body", "read_json"]


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
    trace_id = uuid.uuid4().hex
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
