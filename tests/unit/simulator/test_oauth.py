"""OAuth (§2, §13): authorize checks, single-use codes, rotation, invalid_grant/invalid_client, hooks."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import whoop_models as models

from .conftest import ALL_SCOPES, Harness

pytestmark = pytest.mark.unit

TOKEN = "/oauth/oauth2/token"


def _auth_params(harness: Harness, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": harness.app_settings.whoop_client_id,
        "redirect_uri": harness.app_settings.whoop_redirect_uris[1],
        "scope": ALL_SCOPES,
        "state": "s" * 32,
    }
    params.update(overrides)
    return params


async def _code(harness: Harness, **overrides: str) -> tuple[str, dict[str, list[str]]]:
    response = await harness.http.get("/oauth/oauth2/auth", params=_auth_params(harness, **overrides))
    assert response.status_code == 302
    location = response.headers["location"]
    query = parse_qs(urlsplit(location).query)
    return location, query


def _form(harness: Harness, **fields: str) -> dict[str, str]:
    return {
        "client_id": harness.app_settings.whoop_client_id,
        "client_secret": harness.app_settings.whoop_client_secret.get_secret_value(),
        **fields,
    }


async def _exchange(harness: Harness, scope: str = ALL_SCOPES) -> dict[str, str]:
    _, query = await _code(harness, scope=scope)
    response = await harness.http.post(
        TOKEN,
        data=_form(
            harness,
            grant_type="authorization_code",
            code=query["code"][0],
            redirect_uri=harness.app_settings.whoop_redirect_uris[1],
        ),
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_authorize_redirects_with_code_scope_and_state(harness: Harness) -> None:
    location, query = await _code(harness)
    assert location.startswith(harness.app_settings.whoop_redirect_uris[1] + "?")
    assert query["state"] == ["s" * 32]
    assert set(query["scope"][0].split()) == set(ALL_SCOPES.split())
    assert len(query["code"][0]) == 87


async def test_authorize_rejects_unregistered_redirect_and_client_without_redirecting(
    harness: Harness,
) -> None:
    wrong = await harness.http.get(
        "/oauth/oauth2/auth",
        params=_auth_params(harness, redirect_uri="http://127.0.0.1:8000/v1/oauth/callback/"),
    )
    assert wrong.status_code == 400 and "location" not in wrong.headers
    assert "redirect_uri" in wrong.text and wrong.headers["content-type"].startswith("text/html")
    unknown = await harness.http.get("/oauth/oauth2/auth", params=_auth_params(harness, client_id="nope"))
    assert unknown.status_code == 401 and "location" not in unknown.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"state": "short7!"}, "invalid_state"),
        ({"state": ""}, "invalid_state"),
        ({"scope": "read:everything"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
async def test_authorize_errors_redirect_with_error(
    harness: Harness, overrides: dict[str, str], error: str
) -> None:
    _, query = await _code(harness, **overrides)
    assert query["error"] == [error]
    assert "code" not in query


async def test_deny_mode_answers_access_denied(harness: Harness) -> None:
    assert (await harness.http.put("/_sim/oauth/mode", json={"mode": "deny"})).status_code == 200
    _, query = await _code(harness)
    assert query["error"] == ["access_denied"] and query["state"] == ["s" * 32]


async def test_code_exchange_then_single_use(harness: Harness) -> None:
    _, query = await _code(harness)
    form = _form(
        harness,
        grant_type="authorization_code",
        code=query["code"][0],
        redirect_uri=harness.app_settings.whoop_redirect_uris[1],
    )
    first = await harness.http.post(TOKEN, data=form)
    assert first.status_code == 200
    token = models.TokenResponse.model_validate(first.json())
    assert token.expires_in == 3600 and token.refresh_token is not None
    assert first.headers["cache-control"] == "no-store"
    again = await harness.http.post(TOKEN, data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # the replayed code also revoked what it had issued (Hydra)
    assert (await harness.get("/developer/v2/user/profile/basic", token.access_token)).status_code == 401


async def test_code_expires_after_ten_minutes_and_needs_the_same_redirect(harness: Harness) -> None:
    _, query = await _code(harness)
    wrong_redirect = await harness.http.post(
        TOKEN,
        data=_form(
            harness,
            grant_type="authorization_code",
            code=query["code"][0],
            redirect_uri=harness.app_settings.whoop_redirect_uris[0],
        ),
    )
    assert wrong_redirect.json()["error"] == "invalid_grant"
    _, query = await _code(harness)
    harness.clock.advance(601)
    late = await harness.http.post(
        TOKEN,
        data=_form(
            harness,
            grant_type="authorization_code",
            code=query["code"][0],
            redirect_uri=harness.app_settings.whoop_redirect_uris[1],
        ),
    )
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


async def test_no_offline_no_refresh_token(harness: Harness) -> None:
    token = await _exchange(harness, scope="read:cycles read:profile")
    assert "refresh_token" not in token and token["scope"] == "read:cycles read:profile"


async def test_refresh_rotates_and_old_tokens_die_at_once(harness: Harness) -> None:
    first = await _exchange(harness)
    refresh = _form(
        harness, grant_type="refresh_token", refresh_token=first["refresh_token"], scope="offline"
    )
    response = await harness.http.post(TOKEN, data=refresh)
    assert response.status_code == 200
    second = response.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert (await harness.get("/developer/v2/user/profile/basic", first["access_token"])).status_code == 401
    assert (await harness.get("/developer/v2/user/profile/basic", second["access_token"])).status_code == 200
    reused = await harness.http.post(TOKEN, data=refresh)
    assert reused.status_code == 400
    assert models.TokenError.model_validate(reused.json()).error == "invalid_grant"
    # the rotated pair still works; scopes survive a refresh with scope=offline
    third = await harness.http.post(
        TOKEN, data=_form(harness, grant_type="refresh_token", refresh_token=second["refresh_token"])
    )
    assert third.status_code == 200 and set(third.json()["scope"].split()) == set(ALL_SCOPES.split())


async def test_invalid_client_and_basic_auth(harness: Harness) -> None:
    first = await _exchange(harness)
    bad = await harness.http.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": harness.app_settings.whoop_client_id,
            "client_secret": "wrong",
        },
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    secret = harness.app_settings.whoop_client_secret.get_secret_value()
    basic = base64.b64encode(f"{harness.app_settings.whoop_client_id}:{secret}".encode()).decode()
    ok = await harness.http.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert ok.status_code == 200


async def test_access_token_expires_after_its_lifetime(harness: Harness) -> None:
    token = await _exchange(harness)
    assert (await harness.get("/developer/v2/cycle", token["access_token"])).status_code == 200
    harness.clock.advance(3600)
    expired = await harness.get("/developer/v2/cycle", token["access_token"])
    assert expired.status_code == 401 and expired.json() == {"error": "Authorization was not valid"}


async def test_hooks_force_expiry_and_failing_refresh(harness: Harness) -> None:
    token = await harness.connect()
    user_id = harness.sim.member_ids()[0]
    assert (await harness.http.post(f"/_sim/members/{user_id}/expire-token")).json() == {"expired": 1}
    assert (await harness.get("/developer/v2/cycle", token["access_token"])).status_code == 401
    await harness.http.post("/_sim/oauth/fail-refresh", json={"user_id": user_id, "error": "server_error"})
    refresh = _form(harness, grant_type="refresh_token", refresh_token=token["refresh_token"])
    failed = await harness.http.post(TOKEN, data=refresh)
    assert failed.status_code == 500
    # a 500 does not burn the refresh token; the next try succeeds
    assert (await harness.http.post(TOKEN, data=refresh)).status_code == 200


async def test_failing_refresh_with_invalid_grant_kills_the_connection(harness: Harness) -> None:
    token = await harness.connect()
    await harness.http.post("/_sim/oauth/fail-refresh", json={"error": "invalid_grant"})
    refresh = _form(harness, grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert (await harness.http.post(TOKEN, data=refresh)).json()["error"] == "invalid_grant"
    assert (await harness.http.post(TOKEN, data=refresh)).json()["error"] == "invalid_grant"


async def test_members_are_picked_by_hint_queue_then_first_unconnected(harness: Harness) -> None:
    members = harness.sim.member_ids()
    token = await _exchange(harness)
    profile = (await harness.get("/developer/v2/user/profile/basic", token["access_token"])).json()
    assert profile["user_id"] == members[0]
    token = await _exchange(harness)
    profile = (await harness.get("/developer/v2/user/profile/basic", token["access_token"])).json()
    assert profile["user_id"] == members[1]
    await harness.http.post("/_sim/oauth/next-user", json={"user_id": members[0]})
    token = await _exchange(harness)
    profile = (await harness.get("/developer/v2/user/profile/basic", token["access_token"])).json()
    assert profile["user_id"] == members[0]


# RFC 7636 appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def _code_form(harness: Harness, code: str, **extra: str) -> dict[str, str]:
    redirect = harness.app_settings.whoop_redirect_uris[1]
    return _form(harness, grant_type="authorization_code", code=code, redirect_uri=redirect, **extra)


async def test_pkce_a_challenged_code_needs_its_verifier_and_a_refusal_does_not_spend_it(
    harness: Harness,
) -> None:
    _, query = await _code(harness, code_challenge=CHALLENGE, code_challenge_method="S256")
    code = query["code"][0]
    for verifier in (None, "x" * 43, VERIFIER[:-1], VERIFIER + "\u00e9", "a" * 129):
        extra = {} if verifier is None else {"code_verifier": verifier}
        refused = await harness.http.post(TOKEN, data=_code_form(harness, code, **extra))
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", verifier
    ok = await harness.http.post(TOKEN, data=_code_form(harness, code, code_verifier=VERIFIER))
    assert ok.status_code == 200 and ok.json()["access_token"]
    again = await harness.http.post(TOKEN, data=_code_form(harness, code, code_verifier=VERIFIER))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_pkce_a_verifier_for_a_code_without_challenge_is_invalid_grant(harness: Harness) -> None:
    _, query = await _code(harness)
    code = query["code"][0]
    refused = await harness.http.post(TOKEN, data=_code_form(harness, code, code_verifier=VERIFIER))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert (await harness.http.post(TOKEN, data=_code_form(harness, code))).status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": CHALLENGE, "code_challenge_method": "plain"},
        {"code_challenge": CHALLENGE},
        {"code_challenge": CHALLENGE[:-1], "code_challenge_method": "S256"},
        {"code_challenge": CHALLENGE + "=", "code_challenge_method": "S256"},
    ],
)
async def test_pkce_only_s256_with_a_well_formed_challenge_is_authorized(
    harness: Harness, overrides: dict[str, str]
) -> None:
    _, query = await _code(harness, **overrides)
    assert query["error"] == ["invalid_request"] and "code" not in query
