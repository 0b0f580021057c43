"""Opaque, stable page cursors (``next_token``): a keyset position bound to the query it came from.

A cursor holds the sort key of the last record of a page (``start`` and ``id``; for daily summaries
the date). The next page is everything strictly after it in the order newest first, so records that
arrive while a client pages (newer ones land before page one; older ones in their place) never shift
the pages already served: no duplicates, no gaps. A cursor is bound to its route, member and window
by a digest, so reusing it with other parameters is refused (400) instead of silently mixing pages.
It is base64url JSON, without padding; it is not a secret and carries no health data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import orjson

from ..errors import BadRequest

__all__ = ["decode_cursor", "encode_cursor", "scope_digest"]

_VERSION = 1
_MAX_LENGTH = 512


def scope_digest(*parts: object) -> str:
    """A short digest of what a cursor is valid for (route kind, member, window)."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=6).hexdigest()


def encode_cursor(scope: str, position: str, record_id: str) -> str:
    """The cursor after ``(position, record_id)`` for ``scope``."""
    raw = orjson.dumps([_VERSION, scope, position, record_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, scope: str) -> tuple[str, str]:
    """``(position, record_id)`` of a cursor made for ``scope``; BadRequest otherwise."""
    if not token or len(token) > _MAX_LENGTH or not token.isascii():
        raise BadRequest("next_token is not a cursor of this API", "invalid_cursor")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise BadRequest("next_token is not a cursor of this API", "invalid_cursor") from None
    if (
        not isinstance(data, list)
        or len(data) != 4
        or data[0] != _VERSION
        or not all(isinstance(item, str) for item in data[1:])
    ):
        raise BadRequest("next_token is not a cursor of this API", "invalid_cursor")
    if data[1] != scope:
        raise BadRequest(
            "next_token belongs to another query: keep the same start, end and route while paging",
            "cursor_mismatch",
        )
    return data[2], data[3]
