"""HTTP plumbing of the query API: requests read from the ASGI scope, answers sent as ready bytes, the
error shape, ETags and conditional requests.

The routes are plain ASGI endpoints (Starlette only routes): a :class:`Call` holds what they read of a
request (path, path parameters, query string, ``Authorization``, ``If-None-Match`` and the client's
address), taken from the scope in one pass over its headers, and an :class:`Answer` is sent as two
ASGI messages with its headers already encoded. The query string is parsed as Starlette parses it
(``parse_qsl``, blank values kept), with a shortcut for the common case of nothing to unescape.

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
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import orjson
from starlette.types import Scope, Send

__all__ = [
    "API_REVISION",
    "Answer",
    "Call",
    "body_etag",
    "error_response",
    "json_bytes",
    "not_modified",
    "parse_query",
    "request_etag",
    "wants",
]

logger = logging.getLogger(__name__)

API_REVISION = "2025-11-query-v1"  # part of every ETag: a change of the answers' form invalidates them
_DATA_HEADERS = [(b"cache-control", b"private, no-cache"), (b"vary", b"Authorization")]
_JSON = (b"content-type", b"application/json")


def parse_query(raw: bytes) -> dict[str, list[str]]:
    """The values of each parameter of a query string, in order (Starlette's reading of it)."""
    query: dict[str, list[str]] = {}
    if b"%" in raw or b"+" in raw:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    else:  # nothing to unescape: parse_qsl would only split
        pairs = [part.partition("=")[::2] for part in raw.decode("latin-1").split("&") if part]
    for name, value in pairs:
        query.setdefault(name, []).append(value)
    return query


@dataclass(slots=True)
class Call:
    """What the routes read of one request."""

    path: str
    path_params: dict[str, str]
    query_string: bytes
    authorization: list[str]
    if_none_match: list[str]
    client: str | None = None
    _query: dict[str, list[str]] | None = field(default=None, repr=False)

    @classmethod
    def from_scope(cls, scope: Scope) -> Call:
        authorization: list[str] = []
        if_none_match: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif name == b"if-none-match":
                if_none_match.append(value.decode("latin-1"))
        client = scope.get("client")
        return cls(
            scope["path"],
            scope.get("path_params", {}),
            scope.get("query_string", b""),
            authorization,
            if_none_match,
            client[0] if client else None,
        )

    def params(self, name: str) -> list[str]:
        """Every value of the query parameter ``name`` (none: an empty list)."""
        if self._query is None:
            self._query = parse_query(self.query_string)
        return self._query.get(name, [])


@dataclass(frozen=True, slots=True)
class Answer:
    """A response: status, body and encoded headers (``content-length`` and ``content-type`` included)."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), or None."""
        key = name.encode("latin-1")
        return next((value.decode("latin-1") for k, value in self.headers if k == key), None)


def _encoded(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def json_bytes(
    body: bytes, status: int = 200, etag: str | None = None, read_model: int | None = None
) -> Answer:
    """A JSON answer from ready bytes, with the data headers, the ETag and the read-model version."""
    headers = list(_DATA_HEADERS)
    if etag is not None:
        headers.append((b"etag", etag.encode("latin-1")))
    if read_model is not None:
        headers.append((b"x-read-model-version", str(read_model).encode("latin-1")))
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    headers.append(_JSON)
    return Answer(status, body, headers)


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    """The error shape of every route; logs the status, code and trace id (never a token or data)."""
    trace_id = uuid.uuid4().hex
    if status >= 500:
        logger.warning("answered %s %s trace_id=%s", status, code, trace_id)
    else:
        logger.debug("answered %s %s trace_id=%s", status, code, trace_id)
    body = orjson.dumps({"error": {"code": code, "message": message, "trace_id": trace_id}})
    all_headers = {"Cache-Control": "no-store"}
    all_headers.update(headers or {})
    encoded = _encoded(all_headers)
    encoded.append((b"content-length", str(len(body)).encode("latin-1")))
    encoded.append(_JSON)
    return Answer(status, body, encoded)


def request_etag(version: int, call: Call) -> str:
    """A strong ETag of the answer to ``call`` at the member's data ``version``."""
    query = b"&".join(sorted(call.query_string.split(b"&")))
    material = f"{API_REVISION}\x1f{version}\x1f{call.path}\x1f".encode() + query
    return '"' + hashlib.blake2b(material, digest_size=16).hexdigest() + '"'


def body_etag(body: bytes) -> str:
    """A strong ETag of a body that has no data version (e.g. the sync status)."""
    return '"' + hashlib.blake2b(API_REVISION.encode() + b"\x1f" + body, digest_size=16).hexdigest() + '"'


def wants(call: Call) -> list[str]:
    """The entity tags of ``If-None-Match`` (weak ones compared weakly), ``["*"]`` for any."""
    tags = []
    for part in ",".join(call.if_none_match).split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def not_modified(call: Call, etag: str) -> Answer | None:
    """304 when ``If-None-Match`` names ``etag`` (or ``*``), else None."""
    tags = wants(call)
    if tags and ("*" in tags or etag in tags):
        return Answer(304, b"", [*_DATA_HEADERS, (b"etag", etag.encode("latin-1"))])
    return None
