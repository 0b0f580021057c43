"""PKCE (RFC 7636, S256) and the browser binding: the pure decisions behind the OAuth routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.vault import IssuedToken
from ingest.pkce import (
    binding_cookie_name,
    challenge_of,
    challenge_problem,
    is_challenge,
    is_verifier,
    new_binding,
    new_verifier,
    verifies,
)
from ingest.token_routes import DEFAULT_DEVICE, device_id_of, token_fields

# RFC 7636 appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_s256_challenge_is_rfc_7636s_example() -> None:
    assert challenge_of(VERIFIER) == CHALLENGE and is_challenge(CHALLENGE)


def test_fresh_verifiers_and_bindings_are_random_and_well_formed() -> None:
    verifiers = {new_verifier() for _ in range(50)}
    assert len(verifiers) == 50 and all(is_verifier(v) and len(v) == 43 for v in verifiers)
    assert all(is_challenge(challenge_of(v)) for v in verifiers)
    assert new_binding() != new_binding() and len(new_binding()) >= 43


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a" * 43, True),
        ("a" * 128, True),
        ("a" * 42, False),
        ("a" * 129, False),
        ("A-._~" + "0" * 38, True),
        ("a" * 42 + "+", False),
        ("a" * 42 + "=", False),
        ("a" * 42 + "\u00e9", False),
        ("a" * 42 + " ", False),
    ],
)
def test_verifier_format(value: str, ok: bool) -> None:
    assert is_verifier(value) is ok


@pytest.mark.parametrize(
    ("challenge", "verifier", "ok"),
    [
        (None, None, True),  # no PKCE on either side
        (None, VERIFIER, False),  # a verifier without a challenge: downgrade, refused
        (CHALLENGE, None, False),
        (CHALLENGE, VERIFIER, True),
        (CHALLENGE, VERIFIER[:-1] + "l", False),
        (CHALLENGE, CHALLENGE, False),  # the challenge itself is not the verifier
        (CHALLENGE, "short", False),
        (CHALLENGE, VERIFIER + "\u00e9", False),
    ],
)
def test_verifies(challenge: str | None, verifier: str | None, ok: bool) -> None:
    assert verifies(challenge, verifier) is ok


@pytest.mark.parametrize(
    ("challenge", "method", "required", "problem"),
    [
        (None, None, False, None),
        (None, None, True, "code_challenge_required"),
        (None, "S256", False, "invalid_request"),
        (CHALLENGE, "S256", False, None),
        (CHALLENGE, "S256", True, None),
        (CHALLENGE, "plain", False, "unsupported_code_challenge_method"),
        (CHALLENGE, None, False, "unsupported_code_challenge_method"),  # RFC 7636: no method means plain
        (CHALLENGE, "s256", False, "unsupported_code_challenge_method"),
        (CHALLENGE[:-1], "S256", False, "invalid_code_challenge"),
        (CHALLENGE + "A", "S256", False, "invalid_code_challenge"),
        ("+" * 43, "S256", False, "invalid_code_challenge"),
    ],
)
def test_challenge_problem(
    challenge: str | None, method: str | None, required: bool, problem: str | None
) -> None:
    assert challenge_problem(challenge, method, required=required) == problem


def test_each_state_has_its_own_cookie_that_does_not_reveal_it() -> None:
    state = "s" * 43
    assert binding_cookie_name(state) == binding_cookie_name(state)
    assert binding_cookie_name(state) != binding_cookie_name("t" * 43)
    assert state not in binding_cookie_name(state) and binding_cookie_name(state).startswith("wp_oauth_")


@pytest.mark.parametrize(
    ("body", "device"),
    [
        ({}, DEFAULT_DEVICE),
        ({"device_id": None}, DEFAULT_DEVICE),
        ({"device_id": "phone-1"}, "phone-1"),
        ({"device_id": "Pixel 8 (work)"}, "Pixel 8 (work)"),
        ({"device_id": "x" * 64}, "x" * 64),
        ({"device_id": "x" * 65}, None),
        ({"device_id": ""}, None),
        ({"device_id": 7}, None),
        ({"device_id": "a\nb"}, None),
        ({"device_id": "t\u00e9l\u00e9phone"}, None),
    ],
)
def test_device_id_of(body: dict[str, object], device: str | None) -> None:
    assert device_id_of(body) == device


def test_a_token_answer_carries_its_expiry() -> None:
    expires_at = datetime(2026, 1, 1, tzinfo=UTC)
    issued = IssuedToken("tid", "wpt_secret", "u1", ("user",), expires_at)
    assert token_fields(issued, timedelta(days=90)) == {
        "user_id": "u1",
        "api_token": "wpt_secret",
        "token_type": "bearer",
        "expires_at": "2026-01-01T00:00:00+00:00",
        "expires_in": 7_776_000,
    }
    assert "wpt_secret" not in repr(issued)
