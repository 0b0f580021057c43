"""Data API (§5, §8, §13): by-id reads, 404s, 400s, scopes, revocation, quota headers and 429, faults."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Harness

pytestmark = pytest.mark.unit


async def test_by_id_endpoints_follow_the_data_model(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    store = harness.sim.store
    cycle_id = next(
        cid for cid, rec in store.recoveries.items() if rec.doc["user_id"] == harness.sim.member_ids()[0]
    )
    cycle = (await harness.get(f"/developer/v2/cycle/{cycle_id}", token)).json()
    sleep = (await harness.get(f"/developer/v2/cycle/{cycle_id}/sleep", token)).json()
    recovery = (await harness.get(f"/developer/v2/cycle/{cycle_id}/recovery", token)).json()
    assert sleep["cycle_id"] == cycle_id and sleep["start"] == cycle["start"] and sleep["nap"] is False
    assert recovery["sleep_id"] == sleep["id"] and recovery["cycle_id"] == cycle_id
    assert (await harness.get(f"/developer/v2/activity/sleep/{sleep['id']}", token)).json() == sleep
    workout_id = next(w for w, e in store.workouts.items() if e.doc["user_id"] == cycle["user_id"])
    workout = (await harness.get(f"/developer/v2/activity/workout/{workout_id}", token)).json()
    assert workout["id"] == workout_id and workout["v1_id"] is None and "sport_id" in workout


async def test_404s_and_400s(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    other_user = harness.sim.member_ids()[1]
    others_cycle = next(c for c, e in harness.sim.store.cycles.items() if e.doc["user_id"] == other_user)
    cases = {
        f"/developer/v2/cycle/{others_cycle}": 404,  # another member's data is invisible
        "/developer/v2/cycle/999": 404,
        "/developer/v2/cycle/abc": 400,
        "/developer/v2/activity/sleep/not-a-uuid": 400,
        "/developer/v2/activity/sleep/00000000-0000-4000-8000-000000000000": 404,
        "/developer/v2/activity/workout/00000000-0000-4000-8000-000000000000": 404,
        "/developer/v2/recovery/1": 404,
        "/developer/v1/activity-mapping/12": 404,
    }
    for path, status in cases.items():
        response = await harness.get(path, token)
        assert response.status_code == status, path
    unknown = await harness.get("/developer/v2/recovery/1", token)
    assert unknown.text == "HTTP 404 Not Found"
    no_prefix = await harness.get("/v2/cycle", token)
    assert no_prefix.status_code == 404 and no_prefix.text == "default backend - 404"


async def test_deleted_records_404(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    user_id = harness.sim.member_ids()[0]
    store = harness.sim.store
    cycle_id = next(cid for cid, rec in store.recoveries.items() if rec.doc["user_id"] == user_id)
    sleep_id = store.recoveries[cycle_id].doc["sleep_id"]
    workout_id = next(w for w, e in store.workouts.items() if e.doc["user_id"] == user_id)
    for kind, ident in (("sleep", sleep_id), ("workout", workout_id)):
        response = await harness.http.post("/_sim/scenarios/delete", json={"kind": kind, "id": ident})
        assert response.status_code == 200
    assert (await harness.get(f"/developer/v2/activity/sleep/{sleep_id}", token)).status_code == 404
    assert (await harness.get(f"/developer/v2/cycle/{cycle_id}/recovery", token)).status_code == 404
    assert (await harness.get(f"/developer/v2/cycle/{cycle_id}/sleep", token)).status_code == 404
    assert (await harness.get(f"/developer/v2/activity/workout/{workout_id}", token)).status_code == 404
    assert (await harness.get(f"/developer/v2/cycle/{cycle_id}", token)).status_code == 200
    sleeps = (await harness.get("/developer/v2/activity/sleep", token, limit=25)).json()["records"]
    assert sleep_id not in [s["id"] for s in sleeps]


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/developer/v2/cycle", "read:cycles"),
        ("/developer/v2/recovery", "read:recovery"),
        ("/developer/v2/activity/sleep", "read:sleep"),
        ("/developer/v2/activity/workout", "read:workout"),
        ("/developer/v2/user/profile/basic", "read:profile"),
        ("/developer/v2/user/measurement/body", "read:body_measurement"),
    ],
)
async def test_scope_enforcement(harness: Harness, path: str, scope: str) -> None:
    all_but = sorted(
        {
            "read:cycles",
            "read:recovery",
            "read:sleep",
            "read:workout",
            "read:profile",
            "read:body_measurement",
            "offline",
        }
        - {scope}
    )
    without = (await harness.connect(scopes=all_but))["access_token"]
    with_it = (await harness.connect(scopes=[scope]))["access_token"]
    assert (await harness.get(path, without)).status_code == 401
    assert (await harness.get(path, with_it)).status_code == 200


async def test_missing_scope_status_is_configurable(make_harness: Any, sim_settings: Any) -> None:
    async with make_harness(sim_settings.model_copy(update={"missing_scope_status": 403})) as harness:
        token = (await harness.connect(scopes=["read:profile"]))["access_token"]
        assert (await harness.get("/developer/v2/cycle", token)).status_code == 403


async def test_revoke_access_kills_tokens(harness: Harness) -> None:
    token = await harness.connect()
    revoked = await harness.http.delete(
        "/developer/v2/user/access", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert revoked.status_code == 204 and revoked.content == b""
    assert (await harness.get("/developer/v2/cycle", token["access_token"])).status_code == 401
    refresh = await harness.http.post(
        "/oauth/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": harness.app_settings.whoop_client_id,
            "client_secret": harness.app_settings.whoop_client_secret.get_secret_value(),
        },
    )
    assert refresh.json()["error"] == "invalid_grant"
    assert not harness.sim.authority.is_connected(harness.sim.client.client_id, harness.sim.member_ids()[0])


async def test_quota_headers_count_down_and_429_at_the_limit(make_harness: Any, sim_settings: Any) -> None:
    settings = sim_settings.model_copy(update={"quota_per_minute": 5, "quota_per_day": 8})
    async with make_harness(settings) as harness:
        token = (await harness.connect())["access_token"]
        harness.clock.advance(60 - (harness.clock.now_ms() / 1000) % 60)  # start of a minute window
        remaining = []
        for _ in range(5):
            response = await harness.get("/developer/v2/cycle", token, limit=1)
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "5, 5;window=60, 8;window=86400"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
            assert response.headers["x-ratelimit-reset"] == "60"
        assert remaining == [4, 3, 2, 1, 0]
        limited = await harness.get("/developer/v2/cycle", token, limit=1)
        assert limited.status_code == 429 and limited.json() == {"error": "Too Many Requests"}
        assert limited.headers["x-ratelimit-remaining"] == "0"
        harness.clock.advance(17)
        assert (await harness.get("/developer/v2/cycle", token)).headers["x-ratelimit-reset"] == "43"
        harness.clock.advance(43)
        response = await harness.get("/developer/v2/cycle", token, limit=1)
        assert response.status_code == 200
        # the day window (8) is now the closest to exhaustion: it leads the headers
        assert response.headers["x-ratelimit-limit"].startswith("8, ")
        assert response.headers["x-ratelimit-remaining"] == "2"
        counters = (await harness.http.get("/_sim/quota")).json()["apps"][harness.sim.client.client_id]
        assert counters["total_requests"] == 8 and counters["rejected_429"] == 2
        assert counters["max_accepted_in_fixed_minute"] == 5
        assert counters["max_attempted_in_any_60s"] == 7


async def test_quota_can_be_switched_off(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    await harness.http.put("/_sim/quota", json={"enabled": False, "per_minute": 2})
    statuses = {(await harness.get("/developer/v2/cycle", token)).status_code for _ in range(5)}
    assert statuses == {200}
    assert (await harness.http.get("/_sim/quota")).json()["apps"]["sim-client-id"]["total_requests"] == 5


async def test_faults_5xx_forced_429_latency_timeout_and_count(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    await harness.http.put("/_sim/faults/cycle.list", json={"status": 503, "count": 2})
    statuses = [(await harness.get("/developer/v2/cycle", token)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    await harness.http.put("/_sim/faults/*", json={"force_429": True, "count": 1})
    forced = await harness.get("/developer/v2/activity/sleep", token)
    assert forced.status_code == 429 and forced.headers["x-ratelimit-remaining"] == "0"
    before = harness.clock.now_ms()
    await harness.http.put("/_sim/faults/profile", json={"latency_ms": 1500, "count": 1})
    assert (await harness.get("/developer/v2/user/profile/basic", token)).status_code == 200
    assert harness.clock.now_ms() - before == 1500
    await harness.http.put("/_sim/faults/body", json={"timeout": True})
    before = harness.clock.now_ms()
    assert (await harness.get("/developer/v2/user/measurement/body", token)).status_code == 504
    assert harness.clock.now_ms() - before == 30_000
    assert (await harness.http.put("/_sim/faults/nope", json={"status": 500})).status_code == 404
    assert (await harness.http.delete("/_sim/faults")).json() == {"faults": {}}
    assert (await harness.get("/developer/v2/user/measurement/body", token)).status_code == 200


async def test_token_endpoint_fault(harness: Harness) -> None:
    token = await harness.connect()
    await harness.http.put("/_sim/faults/token", json={"status": 502, "count": 1})
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": harness.app_settings.whoop_client_id,
        "client_secret": harness.app_settings.whoop_client_secret.get_secret_value(),
    }
    assert (await harness.http.post("/oauth/oauth2/token", data=form)).status_code == 502
    assert (await harness.http.post("/oauth/oauth2/token", data=form)).status_code == 200


async def test_activity_mapping_for_old_records(make_harness: Any, sim_settings: Any) -> None:
    async with make_harness(sim_settings.model_copy(update={"members": 1, "days": 90})) as harness:
        token = (await harness.connect())["access_token"]
        v1_id, v2_id = next(iter(harness.sim.store.v1_map.items()))
        response = await harness.get(f"/developer/v1/activity-mapping/{v1_id}", token)
        assert response.json() == {"v2_activity_id": v2_id}
