"""Webhooks (§10): exact bodies and signatures, retries on a compressible schedule, switches, scenarios."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from simulator.signing import sign, webhook_body

from .conftest import Harness

pytestmark = pytest.mark.unit

SECRET = "sim-client-secret-DO-NOT-USE-7f3a9c"
VECTOR_BODY = (
    b'{"user_id":482913,"id":"3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13","type":"sleep.updated",'
    b'"trace_id":"b7e2c4a1-5d3f-4a8e-9c6b-1f2e3d4c5b6a"}'
)


def test_signature_test_vector() -> None:
    body = webhook_body(
        482913,
        "3f1c9a2e-8b4d-4e6f-9a1b-2c7d5e8f0a13",
        "sleep.updated",
        "b7e2c4a1-5d3f-4a8e-9c6b-1f2e3d4c5b6a",
    )
    assert body == VECTOR_BODY and len(body) == 135
    assert sign(SECRET, "1760437512345", body) == "C4mngIuOQxxPdQz+jf3Vi5eQQGnLRVp8AgPh61gkw1k="
    spaced = json.dumps(json.loads(body)).encode()
    assert sign(SECRET, "1760437512345", spaced) == "F5Q6ILlfMClbt5raj8YW/P4Coks/ow5ZlvcudwVTZIY="


def _verify(request: httpx.Request) -> dict[str, Any]:
    timestamp = request.headers["x-whoop-signature-timestamp"]
    assert request.headers["x-whoop-signature"] == sign(SECRET, timestamp, request.content)
    assert request.headers["content-type"] == "application/json"
    assert b" " not in request.content
    body: dict[str, Any] = json.loads(request.content)
    assert list(body) == ["user_id", "id", "type", "trace_id"]
    return body


async def _new_workout(harness: Harness, **extra: Any) -> dict[str, Any]:
    user_id = harness.sim.member_ids()[0]
    response = await harness.http.post("/_sim/scenarios/new-workout", json={"user_id": user_id, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_nothing_is_sent_for_members_who_never_connected(harness: Harness) -> None:
    await _new_workout(harness)
    await harness.sim.settle()
    assert harness.receiver.requests == []


async def test_retries_on_schedule_with_the_same_trace_id(harness: Harness) -> None:
    await harness.connect()
    harness.receiver.script = [500, httpx.ConnectError, 503]
    start = harness.clock.now_ms()
    created = await _new_workout(harness)
    await harness.sim.settle()
    bodies = [_verify(r) for r in harness.receiver.requests]
    assert len(bodies) == 4
    assert {b["trace_id"] for b in bodies} == {created["events"][0]["trace_id"]}
    assert bodies[0] == {
        "user_id": harness.sim.member_ids()[0],
        "id": created["record"]["id"],
        "type": "workout.updated",
        "trace_id": created["events"][0]["trace_id"],
    }
    stamps = [int(r.headers["x-whoop-signature-timestamp"]) - start for r in harness.receiver.requests]
    assert stamps == [0, 30_000, 150_000, 570_000]  # re-signed at each retry: 30 s, +120 s, +420 s


async def test_five_retries_over_an_hour_then_give_up_and_time_scale(harness: Harness) -> None:
    await harness.connect()
    await harness.http.put("/_sim/time-scale", json={"time_scale": 60})
    harness.receiver.script = [500] * 10
    start = harness.clock.now_ms()
    await _new_workout(harness)
    await harness.sim.settle()
    assert len(harness.receiver.requests) == 6
    last = int(harness.receiver.requests[-1].headers["x-whoop-signature-timestamp"])
    assert last - start == 3570 * 1000 // 60  # the hour, compressed 60x
    stats = (await harness.http.get("/_sim/webhooks")).json()["stats"]
    assert stats["given_up"] == 1 and stats["failed_attempts"] == 6


async def test_retries_can_keep_the_first_signature(harness: Harness) -> None:
    await harness.connect()
    await harness.http.put("/_sim/webhooks/switches", json={"resign_retries": False})
    harness.receiver.script = [500]
    await _new_workout(harness)
    await harness.sim.settle()
    first, retry = harness.receiver.requests
    assert first.headers["x-whoop-signature"] == retry.headers["x-whoop-signature"]
    assert first.headers["x-whoop-signature-timestamp"] == retry.headers["x-whoop-signature-timestamp"]
    _verify(retry)


async def test_duplicates_drops_and_reorder(harness: Harness) -> None:
    await harness.connect()
    await harness.http.put("/_sim/webhooks/switches", json={"duplicate_rate": 1.0})
    await _new_workout(harness)
    await harness.sim.settle()
    traces = [_verify(r)["trace_id"] for r in harness.receiver.requests]
    assert len(traces) == 2 and len(set(traces)) == 1
    harness.receiver.requests.clear()
    await harness.http.put("/_sim/webhooks/switches", json={"duplicate_rate": 0.0, "drop_rate": 1.0})
    await _new_workout(harness)
    await harness.sim.settle()
    assert harness.receiver.requests == []
    await harness.http.put("/_sim/webhooks/switches", json={"drop_rate": 0.0, "reorder": True})
    orders = set()
    for _ in range(8):
        harness.receiver.requests.clear()
        sleep = await harness.http.post(
            "/_sim/scenarios/new-sleep",
            json={"user_id": harness.sim.member_ids()[0], "scoring": "scored"},
        )
        await harness.sim.settle()
        orders.add(tuple(_verify(r)["type"] for r in harness.receiver.requests))
        assert sleep.status_code == 201
        harness.clock.advance(86_400)
    assert {tuple(sorted(order)) for order in orders} == {
        ("recovery.updated", "sleep.updated", "sleep.updated")
    }
    assert len(orders) >= 2  # the events of one change arrive in different orders


async def test_new_sleep_scored_later_emits_sleep_then_recovery_with_the_sleep_uuid(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    user_id = harness.sim.member_ids()[0]
    created = await harness.http.post(
        "/_sim/scenarios/new-sleep", json={"user_id": user_id, "scoring": "pending", "score_after_s": 600}
    )
    sleep = created.json()["record"]
    pending = (await harness.get(f"/developer/v2/activity/sleep/{sleep['id']}", token)).json()
    assert pending["score_state"] == "PENDING_SCORE" and "score" not in pending
    recovery = (await harness.get(f"/developer/v2/cycle/{sleep['cycle_id']}/recovery", token)).json()
    assert recovery["score_state"] == "PENDING_SCORE"
    current = (await harness.get("/developer/v2/cycle", token, limit=2)).json()["records"]
    assert current[0]["id"] == sleep["cycle_id"] and current[0]["end"] is None
    assert current[1]["end"] == sleep["start"]
    await harness.sim.settle()
    events = [_verify(r) for r in harness.receiver.requests]
    assert [(e["type"], e["id"]) for e in events] == [
        ("sleep.updated", sleep["id"]),
        ("sleep.updated", sleep["id"]),
        ("recovery.updated", sleep["id"]),
    ]
    scored = (await harness.get(f"/developer/v2/activity/sleep/{sleep['id']}", token)).json()
    assert scored["score_state"] == "SCORED" and scored["score"]["stage_summary"]
    recovery = (await harness.get(f"/developer/v2/cycle/{sleep['cycle_id']}/recovery", token)).json()
    assert recovery["score_state"] == "SCORED" and recovery["sleep_id"] == sleep["id"]


async def test_an_edit_cannot_move_a_sleep_past_the_clock(harness: Harness) -> None:
    user_id = harness.sim.member_ids()[0]
    created = await harness.http.post("/_sim/scenarios/new-sleep", json={"user_id": user_id})
    sleep_id = created.json()["record"]["id"]  # ended 2 to 6 minutes ago
    late = await harness.http.post(
        "/_sim/scenarios/edit-sleep", json={"sleep_id": sleep_id, "shift_minutes": 7}
    )
    assert late.status_code == 409 and late.json() == {"error": "the edited sleep would end after now"}
    assert harness.sim.store.sleeps[sleep_id].doc == created.json()["record"]
    edited = await harness.http.post(
        "/_sim/scenarios/edit-sleep", json={"sleep_id": sleep_id, "shift_minutes": 1}
    )
    assert edited.status_code == 200, edited.text


async def test_unscorable_workout_and_edit_and_delete_sleep(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    created = await _new_workout(harness, scoring="pending")
    done = await harness.http.post(
        "/_sim/scenarios/complete-scoring",
        json={"kind": "workout", "id": created["record"]["id"], "outcome": "UNSCORABLE"},
    )
    assert [e["type"] for e in done.json()["events"]] == ["workout.updated"]
    workout = (await harness.get(f"/developer/v2/activity/workout/{created['record']['id']}", token)).json()
    assert workout["score_state"] == "UNSCORABLE" and "score" not in workout
    store = harness.sim.store
    user_id = harness.sim.member_ids()[0]
    cycle_id = next(c for c, r in store.recoveries.items() if r.doc["user_id"] == user_id)
    sleep_id = store.recoveries[cycle_id].doc["sleep_id"]
    edited = await harness.http.post(
        "/_sim/scenarios/edit-sleep", json={"sleep_id": sleep_id, "shift_minutes": 1}
    )
    assert [(e["type"], e["id"]) for e in edited.json()["events"]] == [
        ("sleep.updated", sleep_id),
        ("recovery.updated", sleep_id),
    ]
    sleep = (await harness.get(f"/developer/v2/activity/sleep/{sleep_id}", token)).json()
    assert sleep["updated_at"] == "2025-11-12T12:00:00.000Z"
    deleted = await harness.http.post("/_sim/scenarios/delete", json={"kind": "sleep", "id": sleep_id})
    assert [(e["type"], e["id"]) for e in deleted.json()["events"]] == [
        ("sleep.deleted", sleep_id),
        ("recovery.deleted", sleep_id),
    ]
    await harness.sim.settle()
    types = [_verify(r)["type"] for r in harness.receiver.requests]
    assert types == [
        "workout.updated",
        "workout.updated",
        "sleep.updated",
        "recovery.updated",
        "sleep.deleted",
        "recovery.deleted",
    ]
    assert (
        await harness.http.post("/_sim/scenarios/delete", json={"kind": "sleep", "id": sleep_id})
    ).status_code == 409


async def test_revoked_members_get_no_webhooks(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    await harness.http.delete("/developer/v2/user/access", headers={"Authorization": f"Bearer {token}"})
    await _new_workout(harness)
    await harness.sim.settle()
    assert harness.receiver.requests == []
    assert (await harness.http.get("/_sim/webhooks")).json()["stats"]["skipped_revoked"] == 1


async def test_v1_model_carries_the_cycle_id_for_recovery(harness: Harness) -> None:
    await harness.connect()
    await harness.http.put("/_sim/webhooks/switches", json={"model": "v1"})
    store = harness.sim.store
    user_id = harness.sim.member_ids()[0]
    cycle_id = next(c for c, r in store.recoveries.items() if r.doc["user_id"] == user_id)
    sleep_id = store.recoveries[cycle_id].doc["sleep_id"]
    await harness.http.post("/_sim/scenarios/edit-sleep", json={"sleep_id": sleep_id})
    await harness.sim.settle()
    bodies = [json.loads(r.content) for r in harness.receiver.requests]
    assert bodies[1]["type"] == "recovery.updated" and bodies[1]["id"] == cycle_id
