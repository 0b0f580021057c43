"""The WHOOP OAuth client against httpx.MockTransport: the requests it makes, and every answer mapped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from infra.settings import WhoopAppSettings
from ingest.errors import WhoopError, WhoopRejected, WhoopUnavailable
from ingest.whoop_oauth import SCOPES, HttpWhoopOAuth, authorization_url

APP = WhoopAppSettings()
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
TOKENS = {
    "access_token": "Zq3v.Qp8N",
    "expires_in": 3600,
    "refresh_token": "Ty5R.Rt7Y",
    "scope": "offline read:recovery",
    "token_type": "bearer",
}


def client(handler: Callable[[httpx.Request], httpx.Response]) -> HttpWhoopOAuth:
    return HttpWhoopOAuth.create(APP, 5.0, transport=httpx.MockTransport(handler))


def test_the_authorization_url_asks_for_every_read_scope_and_offline_with_pkce_s256() -> None:
    url = urlsplit(
        authorization_url(
            "https://api.prod.whoop.com/", "cid", "synheart://oauth/callback", "s" * 43, CHALLENGE
        )
    )
    assert (url.scheme, url.netloc, url.path) == ("https", "api.prod.whoop.com", "/oauth/oauth2/auth")
    query = parse_qs(url.query)
    assert query == {
        "response_type": ["code"],
        "client_id": ["cid"],
        "redirect_uri": ["synheart://oauth/callback"],
        "scope": [" ".join(SCOPES)],
        "state": ["s" * 43],
        "code_challenge": [CHALLENGE],
        "code_challenge_method": ["S256"],
    }
    assert "%20" in url.query and "+" not in url.query
    assert {
        "offline",
        "read:recovery",
        "read:cycles",
        "read:workout",
        "read:sleep",
        "read:profile",
        "read:body_measurement",
    } == set(SCOPES)


async def test_the_code_exchange_posts_the_form_with_client_secret_post() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=TOKENS)

    whoop = client(handler)
    grant = await whoop.exchange_code("the-code", "synheart://oauth/callback", VERIFIER)
    await whoop.aclose()
    [request] = seen
    assert request.url.path == "/oauth/oauth2/token" and request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "synheart://oauth/callback",
        "code_verifier": VERIFIER,
        "client_id": APP.whoop_client_id,
        "client_secret": APP.whoop_client_secret.get_secret_value(),
    }
    assert grant.access_token == "Zq3v.Qp8N" and grant.refresh_token == "Ty5R.Rt7Y"
    assert grant.scopes == ("offline", "read:recovery") and "Zq3v" not in repr(grant)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert (grant.pair(now).expires_at - now).total_seconds() == 3600


async def test_a_state_stored_before_pkce_exchanges_without_a_verifier() -> None:
    forms: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        forms.append(parse_qs(request.content.decode()))
        return httpx.Response(200, json=TOKENS)

    await client(handler).exchange_code("c", "r", None)
    assert "code_verifier" not in forms[0]


async def test_refresh_sends_the_refresh_token_and_scope_offline() -> None:
    forms: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        forms.append(parse_qs(request.content.decode()))
        return httpx.Response(200, json=TOKENS)

    await client(handler).refresh("old-rt")
    assert forms[0]["grant_type"] == ["refresh_token"] and forms[0]["refresh_token"] == ["old-rt"]
    assert forms[0]["scope"] == ["offline"]


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (400, {"error": "invalid_grant", "error_description": "..."}, WhoopRejected, "invalid_grant"),
        (401, {"error": "invalid_client"}, WhoopRejected, "invalid_client"),
        (400, {"error": "invalid_request"}, WhoopRejected, "invalid_request"),
        (400, {"error": "<script>"}, WhoopRejected, "token_error"),
        (400, "not json", WhoopRejected, "token_error"),
        (429, {"error": "Too Many Requests"}, WhoopUnavailable, "whoop_unavailable"),
        (500, {"error": "server_error"}, WhoopUnavailable, "whoop_unavailable"),
        (503, None, WhoopUnavailable, "whoop_unavailable"),
        (200, {"expires_in": 3600}, WhoopRejected, "token_response_invalid"),
        (200, ["x"], WhoopRejected, "token_response_invalid"),
    ],
)
async def test_token_endpoint_answers_are_mapped(
    status: int, body: object, error: type[WhoopError], code: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with pytest.raises(error) as caught:
        await client(handler).exchange_code("c", "r", VERIFIER)
    assert caught.value.code == code
    assert APP.whoop_client_secret.get_secret_value() not in str(caught.value)


async def test_network_failures_are_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(WhoopUnavailable, match="ConnectError"):
        await client(handler).exchange_code("c", "r", VERIFIER)
    with pytest.raises(WhoopUnavailable):
        await client(handler).revoke_access("at")


async def test_profile_and_revoke_use_the_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(200, json={"user_id": 482913, "email": "x@example.com"})
        return httpx.Response(204)

    whoop = client(handler)
    assert await whoop.fetch_member_id("the-at") == 482913
    await whoop.revoke_access("the-at")
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/developer/v2/user/profile/basic"),
        ("DELETE", "/developer/v2/user/access"),
    ]
    assert all(r.headers["authorization"] == "Bearer the-at" for r in seen)
    assert all(r.headers["user-agent"].startswith("whoop-pipeline") for r in seen)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": "Authorization was not valid"}, WhoopRejected),
        (200, {"email": "x"}, WhoopRejected),
        (200, {"user_id": "482913"}, WhoopRejected),
        (500, None, WhoopUnavailable),
    ],
)
async def test_profile_failures(status: int, body: object, error: type) -> None:
    whoop = client(lambda request: httpx.Response(status, json=body))
    with pytest.raises(error):
        await whoop.fetch_member_id("at")


async def test_a_refused_revocation_carries_the_status() -> None:
    with pytest.raises(WhoopRejected) as caught:
        await client(lambda request: httpx.Response(401, json={})).revoke_access("at")
    assert caught.value.status == 401
