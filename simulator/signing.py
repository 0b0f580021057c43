"""Webhook bodies and signatures exactly as WHOOP makes them (§10.2, §10.4). Pure functions.

``signature = base64(HMAC-SHA256(key=client_secret, msg=timestamp_header + raw_body))`` with the
standard base64 alphabet and padding; the body is compact JSON with the keys in WHOOP's order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

__all__ = ["sign", "webhook_body", "webhook_headers"]


def sign(client_secret: str, timestamp: str, raw_body: bytes) -> str:
    """The ``X-WHOOP-Signature`` value for a timestamp header value and the raw body bytes."""
    mac = hmac.new(client_secret.encode("utf-8"), timestamp.encode("ascii") + raw_body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def webhook_body(user_id: int, resource_id: str | int, event_type: str, trace_id: str) -> bytes:
    """The compact JSON body ``{"user_id":…,"id":…,"type":…,"trace_id":…}``."""
    return orjson.dumps({"user_id": user_id, "id": resource_id, "type": event_type, "trace_id": trace_id})


def webhook_headers(client_secret: str, timestamp_ms: int, raw_body: bytes) -> dict[str, str]:
    """The request headers of one delivery attempt signed at ``timestamp_ms``."""
    timestamp = str(timestamp_ms)
    return {
        "Content-Type": "application/json",
        "X-WHOOP-Signature": sign(client_secret, timestamp, raw_body),
        "X-WHOOP-Signature-Timestamp": timestamp,
    }
