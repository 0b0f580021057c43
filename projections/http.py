"""HTTP plumbing of the query API: JSON bodies, the error shape, ETags and conditional requests.

Errors are ``{"error": {"code", "message", "trace_id"}}`` (``phone-contract.md``); the ``trace_id``
also appears in the log line, so an operator can find the request. Data answers carry a strong
``ETag`` derived from the member's data version and the request (computed before the body, so an
``If-None-Match`` hit costs one primary-key read) or, where no version exists, from the body;
``If-None-Match`` with a current tag answers 304 without a body.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "API_REVISION",
    "DATA_HEADERS",
    "body_etag",
    "error_response",
    "json_bytes",
    "not_modified",
    "request_etag",
    "wants",
]

logger = logging.getLogger(__name__)

API_REVISION = "2025-11-query-v1"  # part of every ETag: a change of the answers' form invalidates them
DATA_HEADERS = {"Cache-Control": "private, no-cache", "Vary": "Authorization"}
_JSON = "application/json"


def json_bytes(body: bytes, status: int = 200, etag: str | None = None) -> Response:
    """A JSON answer from ready bytes, with the data headers and the ETag."""
    headers = dict(DATA_HEADERS)
    if etag is not None:
        headers["ETag"] = etag
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The error shape of every route; logs the status, code and trace id (never a token or data)."""
    trace_id = uuid.uuid4().hex
    if status >= 500:
        logger.warning("answered %s %s trace_id=%s", status, code, trace_id)
    else:
        logger.debug("answered %s %s trace_id=%s", status, code, trace_id)
    body = orjson.dumps({"error": {"code": code, "message": message, "trace_id": trace_id}})
    all_headers = {"Cache-Control": "no-store"}
    all_headers.update(headers or {})
    return Response(body, status_code=status, media_type=_JSON, headers=all_headers)


def request_etag(version: int, request: Request) -> str:
    """A strong ETag of the answer to ``request`` at the member's data ``version``."""
    query = b"&".join(sorted(request.scope["query_string"].split(b"&")))
    material = f"{API_REVISION}\x1f{version}\x1f{request.scope['path']}\x1f".encode() + query
    return '"' + hashlib.blake2b(material, digest_size=16).hexdigest() + '"'


def body_etag(body: bytes) -> str:
    """A strong ETag of a body that has no data version (e.g. the sync status)."""
    return '"' + hashlib.blake2b(API_REVISION.encode() + b"\x1f" + body, digest_size=16).hexdigest() + '"'


def wants(request: Request) -> list[str]:
    """The entity tags of ``If-None-Match`` (weak ones compared weakly), ``["*"]`` for any."""
    raw = ",".join(request.headers.getlist("if-none-match"))
    tags = []
    for part in raw.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def not_modified(request: Request, etag: str) -> Response | None:
    """304 when ``If-None-Match`` names ``etag`` (or ``*``), else None."""
    tags = wants(request)
    if tags and ("*" in tags or etag in tags):
        headers = dict(DATA_HEADERS)
        headers["ETag"] = etag
        return Response(status_code=304, headers=headers)
    return None
