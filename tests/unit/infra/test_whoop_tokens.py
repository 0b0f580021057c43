"""The shared token client (``infra.whoop_tokens``) against ``httpx.MockTransport``: grants and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from infra.settings import WhoopAppSettings
from infra.whoop_tokens import (
    TokenEndpoint,
    TokenEndpointUnavailable,
    TokenRefused,
    TokenResponseInvalid,
    parse_grant,
)

pytestmark = pytest.mark.unit

_APP = WhoopAppSettings(
    whoop_api_base_url="https://whoop.test",
    whoop_client_id="client-1",
    whoop_client_secret=SecretStr("s3cret-value"),
)


def _endpoint(handler: httpx.MockTransport) -> TokenEndpoint:
    return TokenEndpoint(httpx.AsyncClient(base_url=_APP.whoop_api_base_url, transport=handler), _APP)


def test_a_grant_is_parsed_and_dated() -> None:
    grant = parse_grant(
        200, b'{"access_token":"a1","refresh_token":"r1","expires_in":60,"scope":"offline read:sleep"}'
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    pair = grant.pair(now)
    assert (pair.access_token, pair.refresh_token, pair.scopes) == ("a1", "r1", ("offline", "read:sleep"))
    assert pair.expires_at == now + timedelta(seconds=60)
    assert "a1" not in repr(grant) and "r1" not in repr(grant)


def test_a_missing_or_bad_expiry_means_an_hour() -> None:
    assert parse_grant(200, b'{"access_token":"a1","expires_in":-5}').expires_in == 3600


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (400, b'{"error":"invalid_grant"}', TokenRefused, "invalid_grant"),
        (401, b'{"error":"Not A Code!"}', TokenRefused, "token_error"),
        (400, b"not json", TokenRefused, "token_error"),
        (200, b'["x"]', TokenResponseInvalid, "token_response_invalid"),
        (200, b'{"expires_in":3600}', TokenResponseInvalid, "token_response_invalid"),
        (200, b'{"access_token":"a","refresh_token":7}', TokenResponseInvalid, "token_response_invalid"),
    ],
)
def test_refusals_and_bad_bodies_carry_a_safe_code(
    status: int, body: bytes, error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as caught:
        parse_grant(status, body)
    assert getattr(caught.value, "code", None) == code


async def test_refresh_posts_the_form_with_the_app_credentials() -> None:
    forms: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/oauth/oauth2/token"
        forms.append(parse_qs(request.content.decode()))
        return httpx.Response(200, json={"access_token": "a2", "refresh_token": "r2", "expires_in": 3600})

    grant = await _endpoint(httpx.MockTransport(handler)).refresh("r1")
    assert grant.refresh_token == "r2"
    assert forms[0]["grant_type"] == ["refresh_token"] and forms[0]["refresh_token"] == ["r1"]
    assert forms[0]["scope"] == ["offline"] and forms[0]["client_secret"] == ["s3cret-value"]


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_429_and_5xx_are_retriable_and_name_no_secret(status: int) -> None:
    endpoint = _endpoint(httpx.MockTransport(lambda _: httpx.Response(status)))
    with pytest.raises(TokenEndpointUnavailable) as caught:
        await endpoint.exchange_code("code-1", "https://app.test/cb", "verifier-1")
    assert caught.value.status == status
    assert "s3cret" not in str(caught.value) and "code-1" not in str(caught.value)


async def test_a_network_error_is_retriable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    with pytest.raises(TokenEndpointUnavailable, match="ConnectError"):
        await _endpoint(httpx.MockTransport(handler)).refresh("r1")
