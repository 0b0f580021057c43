"""The §10.4 recipe, its test vector, and every way a signature check must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ingest.signature import REASONS, Rejected, Verified, check_headers, sign, verify_signature
from tests.support.ingest_fakes import SECRET, VECTOR_BODY, VECTOR_SIGNATURE, VECTOR_TIMESTAMP

NOW = int(VECTOR_TIMESTAMP)
TOL = 300_000
KEY = SECRET.encode()


def verify(
    body: bytes = VECTOR_BODY, sigs=(VECTOR_SIGNATURE,), stamps=(VECTOR_TIMESTAMP,), secrets=(KEY,), now=NOW
):
    return verify_signature(body, list(sigs), list(stamps), list(secrets), now_ms=now, tolerance_ms=TOL)


def test_the_reference_test_vector_verifies() -> None:
    assert len(VECTOR_BODY) == 135
    assert sign(KEY, VECTOR_TIMESTAMP.encode(), VECTOR_BODY) == VECTOR_SIGNATURE
    assert verify() == Verified(timestamp_ms=NOW, secret_index=0)


def test_reserialised_json_signs_differently_so_raw_bytes_matter() -> None:
    spaced = VECTOR_BODY.replace(b'":', b'": ').replace(b'",', b'", ').replace(b"3,", b"3, ")
    assert sign(KEY, VECTOR_TIMESTAMP.encode(), spaced) == "F5Q6ILlfMClbt5raj8YW/P4Coks/ow5ZlvcudwVTZIY="
    assert verify(body=spaced) == Rejected("signature_mismatch")


@pytest.mark.parametrize(
    "body",
    [
        VECTOR_BODY.replace(b"482913", b"482914"),
        VECTOR_BODY + b"\n",
        VECTOR_BODY[:-1],
        b"",
    ],
)
def test_a_tampered_body_is_a_mismatch(body: bytes) -> None:
    assert verify(body=body) == Rejected("signature_mismatch")


def test_a_tampered_signature_or_timestamp_is_a_mismatch() -> None:
    flipped = ("D" if VECTOR_SIGNATURE[0] != "D" else "E") + VECTOR_SIGNATURE[1:]
    assert verify(sigs=(flipped,)) == Rejected("signature_mismatch")
    assert verify(stamps=(str(NOW + 1),)) == Rejected("signature_mismatch")
    assert verify(stamps=("0" + VECTOR_TIMESTAMP,)) == Rejected("signature_mismatch")  # verbatim, not numeric


def test_a_wrong_secret_is_a_mismatch_and_hex_encoding_is_malformed() -> None:
    assert verify(secrets=(b"another-secret",)) == Rejected("signature_mismatch")
    hexsig = hmac.new(KEY, VECTOR_TIMESTAMP.encode() + VECTOR_BODY, hashlib.sha256).hexdigest()
    assert verify(sigs=(hexsig,)) == Rejected("malformed_signature")


def test_the_previous_secret_is_accepted_during_rotation() -> None:
    assert verify(secrets=(b"the-new-secret", KEY)) == Verified(NOW, 1)
    assert verify(secrets=(KEY, b"old")) == Verified(NOW, 0)
    assert verify(secrets=(b"new", b"old")) == Rejected("signature_mismatch")


@pytest.mark.parametrize(
    ("sigs", "stamps", "reason"),
    [
        ((), (VECTOR_TIMESTAMP,), "missing_signature"),
        ((VECTOR_SIGNATURE,), (), "missing_timestamp"),
        ((), (), "missing_signature"),
        ((VECTOR_SIGNATURE, VECTOR_SIGNATURE), (VECTOR_TIMESTAMP,), "duplicate_signature"),
        ((VECTOR_SIGNATURE,), (VECTOR_TIMESTAMP, VECTOR_TIMESTAMP), "duplicate_timestamp"),
    ],
)
def test_missing_and_duplicated_headers(sigs, stamps, reason) -> None:
    assert verify(sigs=sigs, stamps=stamps) == Rejected(reason)


@pytest.mark.parametrize(
    "stamp",
    [
        "",
        " 1760437512345",
        "1760437512345 ",
        "1760437512.345",
        "-1760437512345",
        "1e12",
        "0x1A",
        "١٧٦٠٤٣٧٥١٢٣٤٥",
        "1" * 17,
        "17604375123450000000000000",
        "1760437512345\x00",
        "NaN",
    ],
)
def test_hostile_timestamps_are_malformed(stamp: str) -> None:
    assert verify(stamps=(stamp,)) == Rejected("malformed_timestamp")


@pytest.mark.parametrize(
    "sig",
    [
        "",
        " " + VECTOR_SIGNATURE,
        VECTOR_SIGNATURE + "=",
        VECTOR_SIGNATURE[:-1],
        VECTOR_SIGNATURE.replace("+", "-"),
        "é" * 44,
        "\x00" * 44,
        "A" * 10_000,
        "sha256=" + VECTOR_SIGNATURE,
        base64.urlsafe_b64encode(b"\xfb" * 32).decode(),
    ],
)
def test_hostile_signatures_are_malformed(sig: str) -> None:
    assert verify(sigs=(sig,)) == Rejected("malformed_signature")


def test_stale_and_future_timestamps_are_refused_at_the_window_edges() -> None:
    assert verify(now=NOW + TOL) == Verified(NOW, 0)
    assert verify(now=NOW - TOL) == Verified(NOW, 0)
    assert verify(now=NOW + TOL + 1) == Rejected("timestamp_too_old")
    assert verify(now=NOW - TOL - 1) == Rejected("timestamp_in_future")


def test_headers_are_checked_before_the_body_is_needed() -> None:
    assert check_headers(
        [VECTOR_SIGNATURE], [VECTOR_TIMESTAMP], now_ms=NOW + 10**9, tolerance_ms=TOL
    ) == Rejected("timestamp_too_old")


def test_every_reason_is_listed() -> None:
    assert len(set(REASONS)) == len(REASONS) == 9
