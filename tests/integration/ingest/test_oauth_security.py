"""OAuth hardening against the simulator, real PostgreSQL and real Kafka.

PKCE towards WHOOP, the state bound to the browser (cookie) or to the app (its own PKCE challenge),
credentials that die with a disconnect, and API tokens that expire, refresh and are one per device.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from infra.settings import KafkaSettings, PostgresSettings
from infra.vault import ApiTokens
from ingest.app import create_app
from ingest.errors import NotConnected
from ingest.pkce import challenge_of, new_verifier
from projections.query.api import STATE_KEY, QueryServices, create_api
from projections.settings import ProjectionsSettings
from projections.settings import Settings as QuerySettings
from schemas.events import UserConnected
from tests.integration.ingest.conftest import BROWSER_REDIRECT, SDK_REDIRECT, Edge, edge_settings

CALLBACK = "/v1/whoop-cloud/oauth/callback"
RETURN_TO = "synheart://oauth/complete"


async def members(edge: Edge) -> list[int]:
    body = (await edge.sim_http.get("/_sim/members")).json()
    return [int(m["user_id"]) for m in (body["members"] if isinstance(body, dict) else body)]


def other_client(edge: Edge, base_url: str = "http://127.0.0.1:8000") -> httpx.AsyncClient:
    """A second HTTP client of the edge, with its own (empty) cookie jar."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=edge.app), base_url=base_url)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sdk_callback(edge: Edge, member: int | None = None, **extra: str) -> httpx.Response:
    """Authorize (SDK), consent at WHOOP, post the callback with ``extra`` fields."""
    if member is not None:
        await edge.sim_http.post("/_sim/oauth/next-user", json={"user_id": member})
    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    return await edge.http.post(CALLBACK, json={**granted, "redirect_uri": SDK_REDIRECT, **extra})


async def browser_code(edge: Edge, member: int | None = None, **params: str) -> str:
    """The browser flow up to the one-time code handed to the app."""
    if member is not None:
        await edge.sim_http.post("/_sim/oauth/next-user", json={"user_id": member})
    started = await edge.authorize("/v1/oauth", redirect_uri=BROWSER_REDIRECT, return_to=RETURN_TO, **params)
    granted = await edge.consent(started["authorization_url"])
    back = await edge.http.get("/v1/oauth/callback", params=granted)
    assert back.status_code == 302, back.text
    return parse_qs(urlsplit(back.headers["location"]).query)["code"][0]


async def live_tokens(edge: Edge) -> int:
    count: int = await edge.pool.fetchval(
        "SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL AND expires_at > now()"
    )
    return count


# -- the state is bound to the browser that started the flow (login CSRF) ------------------------


async def test_a_whoop_redirect_replayed_from_another_browser_is_refused_and_spends_the_state(
    edge: Edge,
) -> None:
    started = await edge.authorize("/v1/oauth", redirect_uri=BROWSER_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    async with other_client(edge) as attacker_browser:  # no binding cookie
        page = await attacker_browser.get("/v1/oauth/callback", params=granted)
    assert page.status_code == 400 and "state_not_bound" in page.text
    assert "text/html" in page.headers["content-type"]
    again = await edge.http.get("/v1/oauth/callback", params=granted)  # the right browser, too late
    assert again.status_code == 400 and "state_used" in again.text
    assert await edge.pool.fetchval("SELECT count(*) FROM whoop_connections") == 0
    assert await edge.events() == []


async def test_a_browser_flow_state_cannot_be_completed_through_the_json_callback(edge: Edge) -> None:
    started = await edge.authorize("/v1/oauth", redirect_uri=BROWSER_REDIRECT)
    granted = await edge.consent(started["authorization_url"])  # captured on its way to the browser
    async with other_client(edge) as attacker:
        answer = await attacker.post(
            "/v1/oauth/callback", json={"code": granted["code"], "state": granted["state"]}
        )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "browser_flow_state"
    assert "api_token" not in answer.text
    again = await edge.http.get("/v1/oauth/callback", params=granted)  # the state is spent
    assert again.status_code == 400 and "state_used" in again.text
    assert await edge.pool.fetchval("SELECT count(*) FROM api_tokens") == 0


async def test_a_wrong_binding_cookie_is_refused(edge: Edge) -> None:
    started = await edge.authorize("/v1/oauth", redirect_uri=BROWSER_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    [cookie] = list(edge.http.cookies.jar)
    edge.http.cookies.set(cookie.name, "forged-" + "x" * 40, domain=cookie.domain, path=cookie.path)
    page = await edge.http.get("/v1/oauth/callback", params=granted)
    assert page.status_code == 400 and "state_not_bound" in page.text


async def test_the_binding_cookie_is_httponly_lax_secure_on_https_and_cleared_by_the_callback(
    edge: Edge,
) -> None:
    async with other_client(edge, "https://ingest.example") as browser:
        response = await browser.get("/v1/oauth/authorize", params={"redirect_uri": BROWSER_REDIRECT})
        state = response.json()["state"]
        cookie = response.headers["set-cookie"].lower()
        assert state not in response.headers["set-cookie"]
        for attribute in ("httponly", "samesite=lax", "secure", "path=/v1", "max-age=600"):
            assert attribute in cookie, cookie
        granted = await edge.consent(response.json()["authorization_url"])
        page = await browser.get("/v1/oauth/callback", params=granted)
    assert page.status_code == 200 and "WHOOP connected" in page.text
    assert "max-age=0" in page.headers["set-cookie"].lower()
    plain = await edge.http.get("/v1/oauth/authorize", params={"redirect_uri": BROWSER_REDIRECT})
    assert "secure" not in plain.headers["set-cookie"].lower()  # http (local development)
    stored = await edge.pool.fetchval("SELECT binding_hash FROM oauth_states WHERE binding_hash IS NOT NULL")
    assert stored is not None and stored not in plain.headers["set-cookie"]


async def test_a_browser_can_start_the_flow_itself_and_finish_it(edge: Edge) -> None:
    async with other_client(edge) as browser:
        start = await browser.get(
            "/v1/oauth/authorize", params={"redirect_uri": BROWSER_REDIRECT, "redirect": "true"}
        )
        assert start.status_code == 302 and "code_challenge=" in start.headers["location"]
        granted = await edge.consent(start.headers["location"])
        page = await browser.get("/v1/oauth/callback", params=granted)
    assert page.status_code == 200 and "WHOOP connected" in page.text


# -- the app's own PKCE challenge (SDK flow) -------------------------------------------------------


async def test_an_sdk_code_without_its_verifier_is_refused_and_the_state_spent(edge: Edge) -> None:
    verifier = new_verifier()
    challenge = {"code_challenge": challenge_of(verifier), "code_challenge_method": "S256"}
    for sent in ({}, {"code_verifier": new_verifier()}):  # missing, then wrong
        started = await edge.authorize(redirect_uri=SDK_REDIRECT, **challenge)
        granted = await edge.consent(started["authorization_url"])
        refused = await edge.http.post(CALLBACK, json={**granted, "redirect_uri": SDK_REDIRECT, **sent})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_code_verifier"
        late = await edge.http.post(
            CALLBACK, json={**granted, "redirect_uri": SDK_REDIRECT, "code_verifier": verifier}
        )
        assert late.status_code == 400 and late.json()["error"]["code"] == "state_used"
    assert await edge.events() == [] and await live_tokens(edge) == 0

    started = await edge.authorize(redirect_uri=SDK_REDIRECT, **challenge)
    granted = await edge.consent(started["authorization_url"])
    ok = await edge.http.post(
        CALLBACK, json={**granted, "redirect_uri": SDK_REDIRECT, "code_verifier": verifier}
    )
    assert ok.status_code == 200, ok.text


async def test_a_verifier_without_a_challenge_is_a_downgrade_and_refused(edge: Edge) -> None:
    response = await sdk_callback(edge, code_verifier=new_verifier())
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_code_verifier"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "unsupported_code_challenge_method"),
        ({"code_challenge": "x" * 43}, "unsupported_code_challenge_method"),
        ({"code_challenge": "x" * 42, "code_challenge_method": "S256"}, "invalid_code_challenge"),
        ({"code_challenge": "x" * 42 + "=", "code_challenge_method": "S256"}, "invalid_code_challenge"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
    ],
)
async def test_authorize_accepts_only_well_formed_s256_challenges(
    edge: Edge, params: dict[str, str], code: str
) -> None:
    response = await edge.http.get(
        "/v1/whoop-cloud/oauth/authorize", params={"redirect_uri": SDK_REDIRECT, **params}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert await edge.pool.fetchval("SELECT count(*) FROM oauth_states") == 0


async def test_the_app_challenge_can_be_required(
    edge: Edge, postgres_settings: PostgresSettings, kafka_settings: KafkaSettings
) -> None:
    settings = edge_settings(
        postgres_settings,
        kafka_settings,
        connections_topic=edge.connections_topic,
        require_app_pkce=True,
    )
    services = edge.app.state.services
    app = create_app(settings, services.publisher, edge.store, services.whoop)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
    ) as http:
        url = "/v1/whoop-cloud/oauth/authorize"
        refused = await http.get(url, params={"redirect_uri": SDK_REDIRECT})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "code_challenge_required"
        challenge = challenge_of(new_verifier())
        accepted = await http.get(
            url,
            params={
                "redirect_uri": SDK_REDIRECT,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
    assert accepted.status_code == 200


async def test_the_browser_flows_one_time_code_needs_the_apps_verifier(edge: Edge) -> None:
    verifier = new_verifier()
    code = await browser_code(edge, code_challenge=challenge_of(verifier), code_challenge_method="S256")
    refused = await edge.http.post("/v1/oauth/exchange", json={"code": code})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_code_verifier"
    spent = await edge.http.post("/v1/oauth/exchange", json={"code": code, "code_verifier": verifier})
    assert spent.status_code == 400 and spent.json()["error"]["code"] == "code_used"
    assert await live_tokens(edge) == 0

    code = await browser_code(edge, code_challenge=challenge_of(verifier), code_challenge_method="S256")
    ok = await edge.http.post("/v1/oauth/exchange", json={"code": code, "code_verifier": verifier})
    assert ok.status_code == 200 and ok.json()["api_token"].startswith("wpt_")


# -- PKCE towards WHOOP -----------------------------------------------------------------------------


async def test_whoop_refuses_our_code_without_our_verifier_and_the_edge_flow_succeeds(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    query = parse_qs(urlsplit(started["authorization_url"]).query)
    assert query["code_challenge_method"] == ["S256"]
    verifier = await edge.pool.fetchval("SELECT code_verifier FROM oauth_states")
    assert challenge_of(verifier) == query["code_challenge"][0]
    assert verifier not in str(started)

    granted = await edge.consent(started["authorization_url"])
    form = {
        "grant_type": "authorization_code",
        "code": granted["code"],
        "redirect_uri": SDK_REDIRECT,
        "client_id": edge.settings.whoop.whoop_client_id,
        "client_secret": edge.settings.whoop.whoop_client_secret.get_secret_value(),
    }
    for stolen in (form, {**form, "code_verifier": new_verifier()}):  # an intercepted code is useless
        refused = await edge.sim_http.post("/oauth/oauth2/token", data=stolen)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"

    response = await edge.http.post(CALLBACK, json={**granted, "redirect_uri": SDK_REDIRECT})
    assert response.status_code == 200, response.text
    assert await edge.pool.fetchval("SELECT count(*) FROM oauth_states WHERE code_verifier IS NOT NULL") == 0
    assert verifier not in response.text and verifier not in caplog.text


# -- codes and tokens die with the connection --------------------------------------------------------


async def test_an_exchange_code_issued_before_a_disconnect_mints_nothing_after_it(edge: Edge) -> None:
    member = (await members(edge))[0]
    sdk = (await sdk_callback(edge, member, device_id="phone")).json()
    code = await browser_code(edge, member)  # a one-time code not yet exchanged
    disconnected = await edge.http.delete(
        "/v1/oauth/disconnect", params={"user_id": sdk["user_id"]}, headers=bearer(sdk["api_token"])
    )
    assert disconnected.status_code == 204
    assert await edge.pool.fetchval("SELECT count(*) FROM oauth_exchange_codes") == 0
    exchanged = await edge.http.post("/v1/oauth/exchange", json={"code": code})
    assert exchanged.status_code == 400 and "api_token" not in exchanged.text
    assert await live_tokens(edge) == 0


async def test_no_token_is_issued_for_a_member_who_is_not_connected(edge: Edge) -> None:
    body = (await sdk_callback(edge)).json()
    user_id = body["user_id"]
    await edge.pool.execute("UPDATE whoop_connections SET status = 'needs_reauth'")
    await edge.store.create_exchange_code("late-code", user_id, 60)  # minted in the disconnect's shadow
    refused = await edge.http.post("/v1/oauth/exchange", json={"code": "late-code"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_connected"
    again = await edge.http.post("/v1/oauth/exchange", json={"code": "late-code"})
    assert again.status_code == 400 and again.json()["error"]["code"] == "code_used"
    refresh = await edge.http.post("/v1/tokens/refresh", headers=bearer(body["api_token"]))
    assert refresh.status_code == 400 and refresh.json()["error"]["code"] == "not_connected"
    with pytest.raises(NotConnected):
        await edge.store.issue_api_token(user_id, device_id="default", ttl=timedelta(days=1))
    with pytest.raises(NotConnected):
        await edge.store.issue_api_token("never-connected", device_id="default", ttl=timedelta(days=1))
    assert await live_tokens(edge) == 1  # only the first one


async def test_revoke_member_credentials_revokes_tokens_and_deletes_pending_codes(edge: Edge) -> None:
    first = (await sdk_callback(edge, device_id="phone")).json()
    second = (await sdk_callback(edge, (await members(edge))[1])).json()
    await edge.store.create_exchange_code("pending", first["user_id"], 60)
    assert await edge.store.revoke_member_credentials(first["user_id"]) == 1
    assert await edge.pool.fetchval("SELECT count(*) FROM oauth_exchange_codes") == 0
    assert await edge.store.authenticate(first["api_token"]) is None
    assert await edge.store.authenticate(second["api_token"]) is not None


# -- API tokens: expiry, one per device, refresh ----------------------------------------------------


@pytest.fixture
async def query_api(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    """The query API on the edge's database (as its own process would serve it)."""
    settings = QuerySettings(
        ProjectionsSettings(auth_cache_s=0, rate_per_s=0), KafkaSettings(), PostgresSettings()
    )
    app = create_api(settings, pool=edge.pool)
    setattr(app.state, STATE_KEY, QueryServices.create(settings.projections, edge.pool))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as client:
        yield client


async def test_tokens_carry_their_expiry_and_an_expired_token_is_401_at_ingest_and_the_query_api(
    edge: Edge, query_api: httpx.AsyncClient
) -> None:
    body = (await sdk_callback(edge)).json()
    assert body["expires_in"] == 90 * 86400
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)
    status_url = f"/v1/pull/{body['user_id']}/jobs/{body['backfill_job_id']}"
    data_url = f"/v1/data/{body['user_id']}/sync"
    auth = bearer(body["api_token"])
    assert (await edge.http.get(status_url, headers=auth)).status_code == 200
    assert (await query_api.get(data_url, headers=auth)).status_code == 200

    await edge.pool.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
    at_ingest = await edge.http.get(status_url, headers=auth)
    assert at_ingest.status_code == 401 and at_ingest.json()["error"]["code"] == "invalid_token"
    at_query = await query_api.get(data_url, headers=auth)
    assert at_query.status_code == 401 and at_query.json()["error"]["code"] == "invalid_token"
    expired_refresh = await edge.http.post("/v1/tokens/refresh", headers=auth)
    assert expired_refresh.status_code == 401


async def test_connecting_again_revokes_the_previous_token_of_the_same_device(edge: Edge) -> None:
    member = (await members(edge))[0]
    first = (await sdk_callback(edge, member)).json()
    second = (await sdk_callback(edge, member)).json()  # no device_id: the default device
    assert await edge.store.authenticate(first["api_token"]) is None
    assert await edge.store.authenticate(second["api_token"]) is not None

    phone = (await sdk_callback(edge, member, device_id="phone-1")).json()
    tablet = (await sdk_callback(edge, member, device_id="tablet 2")).json()
    assert await edge.store.authenticate(second["api_token"]) is not None  # other devices stay
    phone_again = (await sdk_callback(edge, member, device_id="phone-1")).json()
    assert await edge.store.authenticate(phone["api_token"]) is None
    for live in (tablet, phone_again, second):
        assert await edge.store.authenticate(live["api_token"]) is not None

    code = await browser_code(edge, member)  # the exchange route names its device too
    exchanged = (
        await edge.http.post("/v1/oauth/exchange", json={"code": code, "device_id": "tablet 2"})
    ).json()
    assert await edge.store.authenticate(tablet["api_token"]) is None
    assert await edge.store.authenticate(exchanged["api_token"]) is not None
    assert set(exchanged) >= {"user_id", "api_token", "token_type", "expires_at", "expires_in"}


@pytest.mark.parametrize("device_id", ["", "x" * 65, "tab\tlet", "téléphone", 7])
async def test_a_malformed_device_id_is_refused(edge: Edge, device_id: Any) -> None:
    response = await sdk_callback(edge, device_id=device_id)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_field"


async def test_refresh_gives_a_new_token_and_revokes_the_old_one(edge: Edge) -> None:
    body = (await sdk_callback(edge, device_id="phone-1")).json()
    old = body["api_token"]
    refreshed = await edge.http.post("/v1/tokens/refresh", headers=bearer(old))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"] == "no-store"
    new = refreshed.json()
    assert new["user_id"] == body["user_id"] and new["api_token"] != old and new["token_type"] == "bearer"
    assert new["expires_in"] == 90 * 86400 and "expires_at" in new
    assert await edge.store.authenticate(old) is None
    principal = await edge.store.authenticate(new["api_token"])
    assert principal is not None and principal.user_id == body["user_id"] and principal.scopes == ("user",)
    assert (
        await edge.pool.fetchval("SELECT device_id FROM api_tokens WHERE token_id = $1", principal.token_id)
        == "phone-1"
    )
    replay = await edge.http.post("/v1/tokens/refresh", headers=bearer(old))
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_token"
    assert (await edge.http.post("/v1/tokens/refresh")).status_code == 401
    status = await edge.http.get(
        f"/v1/pull/{body['user_id']}/jobs/{body['backfill_job_id']}", headers=bearer(new["api_token"])
    )
    assert status.status_code == 200
    assert [type(e) for e in await edge.events()].count(UserConnected) == 1

    deviceless = await ApiTokens().issue(edge.pool, body["user_id"])  # e.g. issued by an operator
    renewed = await edge.http.post("/v1/tokens/refresh", headers=bearer(deviceless.token))
    assert renewed.status_code == 200 and await edge.store.authenticate(deviceless.token) is None


async def test_concurrent_refreshes_of_one_token_leave_exactly_one_live_successor(edge: Edge) -> None:
    body = (await sdk_callback(edge)).json()
    answers = await asyncio.gather(
        *(edge.http.post("/v1/tokens/refresh", headers=bearer(body["api_token"])) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401, 401]
    assert await live_tokens(edge) == 1
