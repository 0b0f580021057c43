"""WHOOP webhook signature verification (``whoop-api-v2.md`` §10.4). Pure: no I/O, no clock reads.

    signature = base64(HMAC-SHA256(key=client_secret, msg=timestamp_header_verbatim + raw_body))

Verification runs in two steps so the edge can refuse bad headers before it reads a body:
:func:`check_headers` validates the header values (exactly one of each, well-formed, timestamp
inside the window around ``now_ms``) and :func:`check_body` compares the HMAC of the raw bytes,
in constant time, under each accepted secret (the current client secret and, during a rotation,
the previous one; keys prepared once by :func:`signing_keys`). :func:`verify_signature` runs
both. A refusal names its reason precisely; the reasons are the label values of the rejection metric.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "REASONS",
    "Reason",
    "Rejected",
    "SignedHeaders",
    "Verified",
    "check_body",
    "check_headers",
    "sign",
    "signing_keys",
    "verify_signature",
]

Reason = Literal[
    "missing_signature",
    "missing_timestamp",
    "duplicate_signature",
    "duplicate_timestamp",
    "malformed_signature",
    "malformed_timestamp",
    "timestamp_too_old",
    "timestamp_in_future",
    "signature_mismatch",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
"""Every reason, in the order above (the rejection metric's label values)."""
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")  # base64 of 32 bytes, standard alphabet, padded
_TIMESTAMP = re.compile(r"[0-9]{1,16}")  # milliseconds since the epoch, ASCII digits only


@dataclass(frozen=True, slots=True)
class Rejected:
    """Verification failed for ``reason``."""

    reason: Reason


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """Header values that passed the format and window checks."""

    signature: bytes
    timestamp: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Verified:
    """The body is authentic; ``secret_index`` 0 is the current secret, 1 the previous one."""

    timestamp_ms: int
    secret_index: int


def sign(secret: bytes, timestamp: bytes, raw_body: bytes) -> str:
    """The ``X-WHOOP-Signature`` value of ``raw_body`` signed at ``timestamp`` (header bytes)."""
    return base64.b64encode(hmac.digest(secret, timestamp + raw_body, hashlib.sha256)).decode("ascii")


def check_headers(
    signatures: Sequence[str], timestamps: Sequence[str], *, now_ms: int, tolerance_ms: int
) -> SignedHeaders | Rejected:
    """Exactly one well-formed signature and timestamp, the timestamp within ``±tolerance_ms``."""
    if not signatures:
        return Rejected("missing_signature")
    if not timestamps:
        return Rejected("missing_timestamp")
    if len(signatures) > 1:
        return Rejected("duplicate_signature")
    if len(timestamps) > 1:
        return Rejected("duplicate_timestamp")
    signature, timestamp = signatures[0], timestamps[0]
    if _TIMESTAMP.fullmatch(timestamp) is None:
        return Rejected("malformed_timestamp")
    if _SIGNATURE.fullmatch(signature) is None:
        return Rejected("malformed_signature")
    timestamp_ms = int(timestamp)
    if timestamp_ms < now_ms - tolerance_ms:
        return Rejected("timestamp_too_old")
    if timestamp_ms > now_ms + tolerance_ms:
        return Rejected("timestamp_in_future")
    return SignedHeaders(signature.encode("ascii"), timestamp.encode("ascii"), timestamp_ms)


def signing_keys(secrets: Sequence[bytes]) -> tuple[hmac.HMAC, ...]:
    """HMAC-SHA256 states keyed with each secret, prepared once (copied per message)."""
    return tuple(hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets)


def check_body(headers: SignedHeaders, raw_body: bytes, keys: Sequence[hmac.HMAC]) -> Verified | Rejected:
    """Compare the signature of ``timestamp + raw_body`` under each key, in constant time."""
    matched: int | None = None
    for index, key in enumerate(keys):
        mac = key.copy()
        mac.update(headers.timestamp)
        mac.update(raw_body)
        expected = binascii.b2a_base64(mac.digest(), newline=False)
        if hmac.compare_digest(expected, headers.signature) and matched is None:
            matched = index
    if matched is None:
        return Rejected("signature_mismatch")
    return Verified(headers.timestamp_ms, matched)


def verify_signature(
    raw_body: bytes,
    signatures: Sequence[str],
    timestamps: Sequence[str],
    secrets: Sequence[bytes],
    *,
    now_ms: int,
    tolerance_ms: int,
) -> Verified | Rejected:
    """Both checks: headers first, then the HMAC of the raw body."""
    headers = check_headers(signatures, timestamps, now_ms=now_ms, tolerance_ms=tolerance_ms)
    if isinstance(headers, Rejected):
        return headers
    return check_body(headers, raw_body, signing_keys(secrets))
