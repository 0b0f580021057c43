"""Opaque ``next_token`` cursors (pure): base64 of a small JSON anchor, like WHOOP's own tokens.

WHOOP's tokens are base64 JSON offsets (``{"$":"o@1","o":10}``). Ours carry a keyset anchor, the
sort key of the last record served (``{"$":"k@1","s":-start_ms,"i":"id"}``), so a full walk
returns every record exactly once even while records are added or deleted between pages.
"""

from __future__ import annotations

import base64
import binascii

import orjson

__all__ = ["SortKey", "decode_token", "encode_token"]

SortKey = tuple[int, str]
_TAG = "k@1"


def encode_token(key: SortKey) -> str:
    """The cursor that resumes right after the record with sort key ``key``."""
    return base64.b64encode(orjson.dumps({"$": _TAG, "s": key[0], "i": key[1]})).decode("ascii")


def decode_token(token: str) -> SortKey:
    """The anchor inside a cursor; ``ValueError`` for anything we did not issue."""
    try:
        payload = orjson.loads(base64.b64decode(token.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError) as exc:
        raise ValueError("malformed nextToken") from exc
    if not isinstance(payload, dict) or payload.get("$") != _TAG:
        raise ValueError("unknown nextToken")
    start, ident = payload.get("s"), payload.get("i")
    if not isinstance(start, int) or isinstance(start, bool) or not isinstance(ident, str):
        raise ValueError("malformed nextToken")  # noqa: TRY004 - a bad client value, not a type bug
    return start, ident
