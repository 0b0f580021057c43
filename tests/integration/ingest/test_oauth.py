"""Connecting a WHOOP account against the simulator, real PostgreSQL and real Kafka."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from infra.settings import WhoopAppSettings
from ingest.app import create_app
from ingest.whoop_oauth import SCOPES, HttpWhoopOAuth
from schemas.events import BackfillRequested, UserConnected, UserDisconnected
from schemas.identity import user_id_for_whoop_member
from tests.integration.ingest.conftest import BROWSER_REDIRECT, SDK_REDIRECT, Edge

PG_DUMP = "/usr/lib/postgresql/15/bin/pg_dump"


async def members(edge: Edge) -> list[dict[str, object]]:
    response = await edge.sim_http.get("/_sim/members")
    body = response.json()
    return list(body["members"] if isinstance(body, dict) else body)


async def member_ids(edge: Edge) -> list[int]:
    return [int(m["user_id"]) for m in await members(edge)]  # type: ignore[call-overload]


async def is_connected_at_whoop(edge: Edge, member: int) -> bool:
    return any(m["user_id"] == member and m["connected"] for m in await members(edge))


async def test_the_full_sdk_flow_stores_encrypted_tokens_and_announces_the_connection(
    edge: Edge, database_url: str, pg_schema: str
) -> None:
    started = await edge.authorize(redirect_uri=SDK_REDIRECT, state="sdk-own-state")
    url = urlsplit(started["authorization_url"])
    query = parse_qs(url.query)
    assert url.path == "/oauth/oauth2/auth" and query["client_id"] == ["sim-client-id"]
    assert set(query["scope"][0].split(" ")) == set(SCOPES) and "offline" in query["scope"][0]
    assert query["redirect_uri"] == [SDK_REDIRECT]
    assert query["state"] == [started["state"]] and len(started["state"]) >= 43  # 32 random bytes
    assert started["state"] != "sdk-own-state"
    stored = await edge.pool.fetchval(
        "SELECT count(*) FROM oauth_states WHERE state_hash <> $1", started["state"]
    )
    assert (
        stored == 1
        and await edge.pool.fetchval(
            "SELECT count(*) FROM oauth_states WHERE state_hash = $1", started["state"]
        )
        == 0
    )

    granted = await edge.consent(started["authorization_url"])
    member = (await member_ids(edge))[0]
    response = await edge.http.post(
        "/v1/whoop-cloud/oauth/callback",
        json={
            "code": granted["code"],
            "state": granted["state"],
            "redirect_uri": SDK_REDIRECT,
            "vendor": "whoop",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    user_id = user_id_for_whoop_member(member)
    assert body["user_id"] == user_id and body["reconnected"] is False and body["state"] == "sdk-own-state"
    api_token = body["api_token"]
    assert api_token.startswith("wpt_") and len(api_token) >= 40

    # the tokens are in the vault, encrypted, and they work at WHOOP
    pair = await edge.vault.load(edge.pool, user_id)
    assert pair is not None and pair.refresh_token is not None
    profile = await edge.sim_http.get(
        "/developer/v2/user/profile/basic", headers={"Authorization": f"Bearer {pair.access_token}"}
    )
    assert profile.status_code == 200 and profile.json()["user_id"] == member
    row = await edge.pool.fetchrow("SELECT key_id, ciphertext FROM whoop_tokens WHERE user_id = $1", user_id)
    assert (
        row is not None and row["key_id"] == "dev-1" and pair.access_token.encode() not in row["ciphertext"]
    )
    assert (
        await edge.pool.fetchval("SELECT status FROM whoop_connections WHERE user_id = $1", user_id)
        == "connected"
    )
    assert (
        await edge.pool.fetchval("SELECT token_hash FROM api_tokens WHERE user_id = $1", user_id) != api_token
    )

    # UserConnected then BackfillRequested (30 days, every type), keyed by the user
    connected, backfill = await edge.events()
    assert (
        isinstance(connected, UserConnected)
        and connected.user_id == user_id
        and connected.whoop_user_id == member
    )
    assert "offline" in connected.scopes and connected.reconnected is False
    assert isinstance(backfill, BackfillRequested) and backfill.job_id == body["backfill_job_id"]
    assert backfill.end - backfill.start == timedelta(days=30)
    assert set(backfill.resource_types) == {"cycle", "sleep", "recovery", "workout"}

    # the dump of the whole schema holds no plaintext WHOOP token and no API token
    process = await asyncio.create_subprocess_exec(
        PG_DUMP, "-n", pg_schema, database_url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    dump = out.decode()
    assert "CREATE TABLE" in dump and "whoop_tokens" in dump
    assert user_id in dump  # the dump does contain the rows
    for secret in (pair.access_token, pair.refresh_token, api_token, granted["code"], started["state"]):
        assert secret not in dump
    for part in (*pair.access_token.split("."), *pair.refresh_token.split(".")):
        assert part not in dump


async def test_pull_with_the_issued_token_and_its_status(edge: Edge) -> None:
    body = await edge.connect_sdk()
    user_id, token = body["user_id"], body["api_token"]
    auth = {"Authorization": f"Bearer {token}"}
    await edge.pool.execute("UPDATE pull_jobs SET status = 'done'")  # the connect backfill is over
    response = await edge.http.post(
        f"/v1/pull/{user_id}",
        json={"types": ["sleep", "recovery"], "start": "2025-10-01T00:00:00"},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    status = await edge.http.get(response.json()["status_url"], headers=auth)
    assert status.status_code == 200
    assert status.json()["status"] == "requested" and status.json()["types"] == ["sleep", "recovery"]
    assert status.json()["start"] == "2025-10-01T00:00:00+00:00"
    pulls = [e for e in await edge.events() if isinstance(e, BackfillRequested) and e.job_id == job_id]
    assert len(pulls) == 1 and pulls[0].resource_types == ("sleep", "recovery")

    other = user_id_for_whoop_member(999_999_999)
    assert (await edge.http.post(f"/v1/pull/{other}", json={}, headers=auth)).status_code == 404
    assert (await edge.http.get(f"/v1/pull/{other}/jobs/{job_id}", headers=auth)).status_code == 404
    assert (await edge.http.post(f"/v1/pull/{user_id}", json={})).status_code == 401
    bad = await edge.http.post(f"/v1/pull/{user_id}", json={"types": ["heart"]}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    reversed_range = await edge.http.post(
        f"/v1/pull/{user_id}",
        json={"start": "2025-10-02T00:00:00Z", "end": "2025-10-01T00:00:00Z"},
        headers=auth,
    )
    assert reversed_range.status_code == 400
    wrong = await edge.http.post(f"/v1/pull/{user_id}", json={}, headers={"Authorization": "Bearer wpt_nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_token"


async def test_a_returning_member_gets_the_same_user_id(edge: Edge) -> None:
    member = (await member_ids(edge))[1]
    first = await edge.connect_sdk(member)
    second = await edge.connect_sdk(member)
    assert first["user_id"] == second["user_id"] == user_id_for_whoop_member(member)
    assert second["reconnected"] is True and first["api_token"] != second["api_token"]
    connected = [e for e in await edge.events() if isinstance(e, UserConnected)]
    assert [e.reconnected for e in connected] == [False, True]
    assert await edge.pool.fetchval("SELECT count(*) FROM whoop_connections") == 1


async def test_disconnect_revokes_at_whoop_deletes_tokens_revokes_api_tokens_and_announces(
    edge: Edge,
) -> None:
    member = (await member_ids(edge))[0]
    body = await edge.connect_sdk(member)
    user_id, token = body["user_id"], body["api_token"]
    pair = await edge.vault.load(edge.pool, user_id)
    assert pair is not None and await is_connected_at_whoop(edge, member)

    response = await edge.http.delete(
        "/v1/whoop-cloud/oauth/disconnect",
        params={"user_id": user_id, "vendor": "whoop"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 204, response.text
    assert not await is_connected_at_whoop(edge, member)
    refused = await edge.sim_http.get(
        "/developer/v2/user/profile/basic", headers={"Authorization": f"Bearer {pair.access_token}"}
    )
    assert refused.status_code == 401
    assert await edge.pool.fetchval("SELECT count(*) FROM whoop_tokens") == 0
    assert await edge.pool.fetchval("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL") == 0
    assert await edge.pool.fetchval("SELECT status FROM whoop_connections") == "disconnected"
    assert isinstance((await edge.events())[-1], UserDisconnected)
    again = await edge.http.post(f"/v1/pull/{user_id}", json={}, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401


async def test_disconnect_with_an_expired_access_token_refreshes_then_revokes(edge: Edge) -> None:
    member = (await member_ids(edge))[2]
    body = await edge.connect_sdk(member)
    before = await edge.vault.load(edge.pool, body["user_id"])
    assert (await edge.sim_http.post(f"/_sim/members/{member}/expire-token")).json()["expired"] >= 1
    response = await edge.http.delete(
        "/v1/oauth/disconnect",
        params={"user_id": body["user_id"]},
        headers={"Authorization": f"Bearer {body['api_token']}"},
    )
    assert response.status_code == 204, response.text
    assert not await is_connected_at_whoop(edge, member)
    assert before is not None and await edge.vault.load(edge.pool, body["user_id"]) is None


async def test_disconnect_needs_the_users_own_token(edge: Edge) -> None:
    first = await edge.connect_sdk((await member_ids(edge))[0])
    second = await edge.connect_sdk((await member_ids(edge))[1])
    url = "/v1/whoop-cloud/oauth/disconnect"
    assert (await edge.http.delete(url, params={"user_id": first["user_id"]})).status_code == 401
    cross = await edge.http.delete(
        url, params={"user_id": first["user_id"]}, headers={"Authorization": f"Bearer {second['api_token']}"}
    )
    assert cross.status_code == 404
    assert await edge.vault.load(edge.pool, first["user_id"]) is not None


async def test_denied_consent_in_the_browser_flow_connects_nothing(edge: Edge) -> None:
    await edge.sim_http.put("/_sim/oauth/mode", json={"mode": "deny"})
    started = await edge.authorize("/v1/oauth", redirect_uri=BROWSER_REDIRECT)
    back = await edge.consent(started["authorization_url"])
    assert back["error"] == "access_denied" and "code" not in back
    page = await edge.http.get("/v1/oauth/callback", params=back)
    assert page.status_code == 403 and "text/html" in page.headers["content-type"]
    assert "access_denied" in page.text
    again = await edge.http.get("/v1/oauth/callback", params=back)
    assert again.status_code == 400 and "state_used" in again.text
    assert await edge.pool.fetchval("SELECT count(*) FROM whoop_connections") == 0
    assert await edge.events() == []


async def test_denied_consent_reported_by_the_sdk_is_403(edge: Edge) -> None:
    await edge.sim_http.put("/_sim/oauth/mode", json={"mode": "deny"})
    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    back = await edge.consent(started["authorization_url"])
    response = await edge.http.post(
        "/v1/whoop-cloud/oauth/callback",
        json={"state": back["state"], "error": back["error"], "redirect_uri": SDK_REDIRECT},
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "access_denied"
    assert await edge.events() == []


async def test_the_browser_flow_returns_to_the_app_with_a_one_time_code_never_a_token(edge: Edge) -> None:
    started = await edge.authorize(
        "/v1/oauth", redirect_uri=BROWSER_REDIRECT, return_to="synheart://oauth/complete", state="app-state"
    )
    granted = await edge.consent(started["authorization_url"])
    response = await edge.http.get("/v1/oauth/callback", params=granted)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "synheart://oauth/complete"
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert set(params) == {"code", "state"} and params["state"] == "app-state"
    assert "wpt_" not in response.headers["location"]
    exchanged = await edge.http.post("/v1/oauth/exchange", json={"code": params["code"]})
    assert exchanged.status_code == 200 and exchanged.json()["api_token"].startswith("wpt_")
    user_id = exchanged.json()["user_id"]
    reused = await edge.http.post("/v1/oauth/exchange", json={"code": params["code"]})
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "code_used"
    unknown = await edge.http.post("/v1/oauth/exchange", json={"code": "nope"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "code_unknown"
    await edge.pool.execute("UPDATE pull_jobs SET status = 'done'")  # the connect backfill is over
    status = await edge.http.post(
        f"/v1/pull/{user_id}", json={}, headers={"Authorization": f"Bearer {exchanged.json()['api_token']}"}
    )
    assert status.status_code == 202


async def test_the_browser_flow_without_an_app_link_ends_on_a_page_with_a_one_time_code(edge: Edge) -> None:
    started = await edge.authorize("/v1/oauth", redirect_uri=BROWSER_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    page = await edge.http.get("/v1/oauth/callback", params=granted)
    assert page.status_code == 200 and "WHOOP connected" in page.text and "wpt_" not in page.text
    assert page.headers["cache-control"] == "no-store"
    code = page.text.split("<code>")[1].split("</code>")[0]
    await edge.pool.execute("UPDATE oauth_exchange_codes SET expires_at = now() - interval '1 second'")
    expired = await edge.http.post("/v1/oauth/exchange", json={"code": code})
    assert expired.status_code == 400 and expired.json()["error"]["code"] == "code_expired"


async def test_unknown_reused_expired_and_misbound_states_are_refused(edge: Edge) -> None:
    callback = "/v1/whoop-cloud/oauth/callback"
    unknown = await edge.http.post(
        callback, json={"code": "c", "state": "x" * 43, "redirect_uri": SDK_REDIRECT}
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "state_unknown"

    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    ok = await edge.http.post(callback, json={**granted, "redirect_uri": SDK_REDIRECT})
    assert ok.status_code == 200
    reused = await edge.http.post(callback, json={**granted, "redirect_uri": SDK_REDIRECT})
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "state_used"

    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    await edge.pool.execute(
        "UPDATE oauth_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL"
    )
    expired = await edge.http.post(callback, json={**granted, "redirect_uri": SDK_REDIRECT})
    assert expired.status_code == 400 and expired.json()["error"]["code"] == "state_expired"

    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    misbound = await edge.http.post(callback, json={**granted, "redirect_uri": BROWSER_REDIRECT})
    assert misbound.status_code == 400 and misbound.json()["error"]["code"] == "redirect_uri_mismatch"

    not_registered = await edge.http.get(
        "/v1/whoop-cloud/oauth/authorize", params={"redirect_uri": "https://evil.example/cb"}
    )
    assert not_registered.status_code == 400
    assert not_registered.json()["error"]["code"] == "redirect_uri_not_allowed"
    bad_return = await edge.http.get(
        "/v1/oauth/authorize", params={"redirect_uri": BROWSER_REDIRECT, "return_to": "https://evil.example/"}
    )
    assert bad_return.status_code == 400
    assert [type(e).__name__ for e in await edge.events()] == ["UserConnected", "BackfillRequested"]


async def test_a_reused_authorization_code_is_invalid_grant(edge: Edge) -> None:
    callback = "/v1/whoop-cloud/oauth/callback"
    first = await edge.authorize(redirect_uri=SDK_REDIRECT)
    granted = await edge.consent(first["authorization_url"])
    assert (await edge.http.post(callback, json={**granted, "redirect_uri": SDK_REDIRECT})).status_code == 200
    second = await edge.authorize(redirect_uri=SDK_REDIRECT)  # a fresh, valid state; the old code
    replay = await edge.http.post(
        callback, json={"code": granted["code"], "state": second["state"], "redirect_uri": SDK_REDIRECT}
    )
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "invalid_grant"
    assert len(await edge.events()) == 2  # only the first connection was announced


async def test_whoop_token_endpoint_errors(edge: Edge) -> None:
    callback = "/v1/whoop-cloud/oauth/callback"
    # WHOOP answers 503 at the token endpoint: we answer 503 with Retry-After
    await edge.sim_http.put("/_sim/faults/token", json={"status": 503, "count": 1})
    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    response = await edge.http.post(callback, json={**granted, "redirect_uri": SDK_REDIRECT})
    assert response.status_code == 503 and response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "whoop_unavailable"

    # the profile call fails: 503 too, and nothing was stored
    await edge.sim_http.put("/_sim/faults/profile", json={"status": 500, "count": 1})
    started = await edge.authorize(redirect_uri=SDK_REDIRECT)
    granted = await edge.consent(started["authorization_url"])
    response = await edge.http.post(callback, json={**granted, "redirect_uri": SDK_REDIRECT})
    assert response.status_code == 503 and response.json()["error"]["code"] == "whoop_unavailable"
    assert await edge.pool.fetchval("SELECT count(*) FROM whoop_tokens") == 0

    # our client secret is wrong: WHOOP says invalid_client; that is our fault, not the caller's → 502
    wrong = WhoopAppSettings(whoop_client_secret=SecretStr("not-the-secret"))
    whoop = HttpWhoopOAuth.create(wrong, 5.0, transport=httpx.ASGITransport(app=edge.sim))
    app = create_app(edge.settings, edge.app.state.services.publisher, edge.store, whoop)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
    ) as http:
        started = (
            await http.get("/v1/whoop-cloud/oauth/authorize", params={"redirect_uri": SDK_REDIRECT})
        ).json()
        granted = await edge.consent(started["authorization_url"])
        response = await http.post(callback, json={**granted, "redirect_uri": SDK_REDIRECT})
    await whoop.aclose()
    assert response.status_code == 502 and response.json()["error"]["code"] == "whoop_rejected"
    assert "not-the-secret" not in response.text
    assert await edge.events() == []


async def test_duplicated_authorize_parameters_are_refused(edge: Edge) -> None:
    response = await edge.http.get(
        "/v1/whoop-cloud/oauth/authorize?redirect_uri=synheart://oauth/callback&redirect_uri=https://evil.example/"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "duplicate_parameter"


@pytest.mark.parametrize("path", ["/v1/whoop-cloud/oauth/callback", "/v1/oauth/exchange"])
async def test_a_body_that_is_not_json_or_too_large_is_refused(edge: Edge, path: str) -> None:
    broken = await edge.http.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"
    huge = await edge.http.post(path, content=b" " * 1_000_000, headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    assert await edge.events() == []


async def test_long_expired_states_and_codes_are_purged_recent_ones_kept(edge: Edge) -> None:
    for n, age_s in enumerate([7200.0, 3 * 86400.0, 600.0]):
        await edge.pool.execute(
            """INSERT INTO oauth_states (state_hash, client_id, redirect_uri, expires_at)
               VALUES ($1, 'c', 'r', now() - make_interval(secs => $2))""",
            f"old-{n}",
            age_s,
        )
        await edge.pool.execute(
            """INSERT INTO oauth_exchange_codes (code_hash, user_id, expires_at)
               VALUES ($1, 'u', now() - make_interval(secs => $2))""",
            f"old-{n}",
            age_s,
        )
    await edge.authorize(redirect_uri=SDK_REDIRECT)
    left = await edge.pool.fetch("SELECT state_hash FROM oauth_states WHERE state_hash LIKE 'old-%'")
    assert [r["state_hash"] for r in left] == ["old-2"]
    await edge.store.create_exchange_code("fresh-code", "u", 60)
    left = await edge.pool.fetch("SELECT code_hash FROM oauth_exchange_codes WHERE code_hash LIKE 'old-%'")
    assert [r["code_hash"] for r in left] == ["old-2"]
