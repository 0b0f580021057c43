"""The query API on real PostgreSQL: the phone contract, windows, cursors, WearMetrics, ETags and errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import msgspec
import orjson
import pytest

from infra.vault import ApiTokens
from projections.query.api import QueryServices, create_api
from projections.query.cursor import encode_cursor, scope_digest
from projections.query.params import KINDS
from projections.rows import Projectable
from schemas.units import kcal_from_kj
from tests.integration.projections.conftest import ApiHarness, api_settings
from tests.integration.projections.helpers import apply_batches
from tests.unit.projections.factory import T0, Day, Member, cycle, history, recovery, sleep

ALICE = Member(482913)
BOB = Member(777001)


async def _seed(pool: asyncpg.Pool, member: Member, days: int, start: datetime = T0) -> list[Day]:
    made = history(member, days, start=start)
    records: list[Projectable] = [record for day in made for record in day.records()]
    await apply_batches(pool, [records])
    return made


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "trace_id"}
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = body["error"]
    return error


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _all_pages(api: ApiHarness, path: str, user: Member, **params: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = dict(params)
        if token:
            query["next_token"] = token
        response = await api.get(path, user.user_id, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"records", "next_token"}
        records.extend(body["records"])
        token = body["next_token"]
        if token is None:
            return records


async def test_collections_are_whoop_records_newest_first_in_pages_of_at_most_25(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 40)
    for kind, expected in (
        ("recovery", [d.recovery for d in sorted(days, key=lambda d: d.sleep.start, reverse=True)]),
        ("cycles", sorted((d.cycle for d in days), key=lambda c: c.start, reverse=True)),
        (
            "sleep",
            sorted((s for d in days for s in (d.sleep, d.nap) if s), key=lambda s: s.start, reverse=True),
        ),
        ("workouts", sorted((w for d in days if (w := d.workout)), key=lambda w: w.start, reverse=True)),
    ):
        first = await api.get(f"/v1/data/{ALICE.user_id}/{kind}", ALICE.user_id)
        assert first.status_code == 200
        assert len(first.json()["records"]) == min(25, len(expected))
        assert first.headers["cache-control"] == "private, no-cache" and first.headers["etag"].startswith('"')
        records = await _all_pages(api, f"/v1/data/{ALICE.user_id}/{kind}", ALICE)
        assert records == [record.document for record in expected], kind
    small = await _all_pages(api, f"/v1/data/{ALICE.user_id}/cycles", ALICE, limit="7")
    assert len(small) == 40


@pytest.mark.parametrize("limit", ["26", "0", "-1", "abc", "1e1", "25.0", ""])
async def test_a_limit_outside_1_to_25_is_refused_not_clamped(api: ApiHarness, limit: str) -> None:
    response = await api.get(f"/v1/data/{ALICE.user_id}/sleep", ALICE.user_id, params={"limit": limit})
    assert _error(response, 400)["code"] == "invalid_limit"


async def test_the_cursor_is_stable_while_new_records_arrive(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 30)
    path = f"/v1/data/{ALICE.user_id}/cycles"
    original = [c.cycle_id for c in sorted((d.cycle for d in days), key=lambda c: c.start, reverse=True)]
    page1 = (await api.get(path, ALICE.user_id, params={"limit": "10"})).json()
    assert [r["id"] for r in page1["records"]] == original[:10]

    # meanwhile: a newer day, an older day, and a re-scored version of a record on page two
    newer = cycle(ALICE, 2, T0 + timedelta(days=60), None, T0 + timedelta(days=60))
    rescored_target = days[[d.cycle.cycle_id for d in days].index(original[12])].cycle
    rescored = msgspec.structs.replace(
        rescored_target, whoop_updated_at=rescored_target.whoop_updated_at + timedelta(hours=1), strain=20.5
    )
    older_cycle = cycle(
        ALICE, 1, T0 - timedelta(days=60), T0 - timedelta(days=59), T0
    )  # start sorts, not ids
    await apply_batches(api.pool, [[newer, older_cycle, rescored]])

    seen = list(page1["records"])
    token = page1["next_token"]
    while token:
        body = (await api.get(path, ALICE.user_id, params={"limit": "10", "next_token": token})).json()
        seen.extend(body["records"])
        token = body["next_token"]
    ids = [r["id"] for r in seen]
    assert ids == [*original, 1], "pages after the first: no duplicate, no gap, the older record at its place"
    fresh = (await api.get(path, ALICE.user_id, params={"limit": "1"})).json()
    assert [r["id"] for r in fresh["records"]] == [newer.cycle_id]


async def test_a_cursor_only_works_with_the_query_it_came_from(api: ApiHarness) -> None:
    await _seed(api.pool, ALICE, 5)
    path = f"/v1/data/{ALICE.user_id}/cycles"
    token = (await api.get(path, ALICE.user_id, params={"limit": "2"})).json()["next_token"]
    moved = await api.get(path, ALICE.user_id, params={"next_token": token, "start": "2025-10-02T00:00:00Z"})
    assert _error(moved, 400)["code"] == "cursor_mismatch"
    other_route = await api.get(
        f"/v1/data/{ALICE.user_id}/sleep", ALICE.user_id, params={"next_token": token}
    )
    assert _error(other_route, 400)["code"] == "cursor_mismatch"
    for garbage in ("x", "eyJ9", "W10", "WzEsIngiLCJ5Il0", "!" * 10, "a" * 600):
        response = await api.get(path, ALICE.user_id, params={"next_token": garbage})
        assert _error(response, 400)["code"] == "invalid_cursor", garbage
    scope = scope_digest("cycles", ALICE.user_id, None, None)
    for position, record_id in (
        ("0001-01-01T00:00:00+14:00", "1"),
        ("2025-10-01T00:00:00", "1"),
        ("yesterday", "1"),
        ("2025-10-01T00:00:00+00:00", "99999999999999999999"),
        ("2025-10-01T00:00:00+00:00", "abc"),
    ):
        forged = encode_cursor(scope, position, record_id)
        response = await api.get(path, ALICE.user_id, params={"next_token": forged})
        assert _error(response, 400)["code"] == "invalid_cursor", (position, record_id)
    camel = await api.get(path, ALICE.user_id, params={"nextToken": token, "limit": "2"})
    assert camel.status_code == 200 and len(camel.json()["records"]) == 2


async def test_naive_and_offset_windows_select_the_documented_records(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 6)
    target = days[3].sleep
    path = f"/v1/data/{ALICE.user_id}/sleep"

    async def ids(**params: str) -> set[str]:
        response = await api.get(path, ALICE.user_id, params=params)
        assert response.status_code == 200, response.text
        return {r["id"] for r in response.json()["records"]}

    ms = timedelta(milliseconds=1)
    naive = "%Y-%m-%dT%H:%M:%S.%f"
    # overlap: ends at or after start, starts before end (exclusive)
    assert target.sleep_id in await ids(start=_z(target.end))
    assert target.sleep_id not in await ids(start=_z(target.end + ms))
    assert target.sleep_id not in await ids(end=_z(target.start))
    assert target.sleep_id in await ids(end=_z(target.start + ms))
    # a time without an offset is UTC
    assert target.sleep_id in await ids(start=target.end.strftime(naive))
    assert target.sleep_id not in await ids(start=(target.end + ms).strftime(naive))
    # the same instant with an offset; and the local wall time without it means something else
    plus2 = timezone(timedelta(hours=2))
    assert target.sleep_id in await ids(start=target.end.astimezone(plus2).isoformat())
    assert target.sleep_id not in await ids(
        start=target.end.astimezone(plus2).replace(tzinfo=None).isoformat()
    )
    # a date alone is its midnight UTC; seconds may be left out
    assert target.sleep_id in await ids(start=target.end.date().isoformat(), end=_z(target.start + ms))
    assert target.sleep_id in await ids(start=target.end.strftime("%Y-%m-%dT%H:%M"))
    window = await ids(start=_z(days[2].sleep.end + ms), end=_z(days[4].sleep.start))
    assert window == {target.sleep_id} | {s.sleep_id for s in (days[2].nap, days[3].nap) if s}

    for bad in ("yesterday", "2025-13-01T00:00:00Z", "2025-10-01T25:00:00", "x" * 70):
        assert (
            _error(await api.get(path, ALICE.user_id, params={"start": bad}), 400)["code"]
            == "invalid_parameter"
        )
    reversed_window = await api.get(path, ALICE.user_id, params={"start": "2025-10-05", "end": "2025-10-04"})
    assert _error(reversed_window, 400)["code"] == "invalid_window"
    twice = await api.get(f"{path}?start=2025-10-01&start=2025-10-02", ALICE.user_id)
    assert _error(twice, 400)["code"] == "invalid_parameter"


async def test_recoveries_are_windowed_and_ordered_by_their_sleep(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 5)
    target = days[2]
    response = await api.get(
        f"/v1/data/{ALICE.user_id}/recovery",
        ALICE.user_id,
        params={"start": _z(target.sleep.end), "end": _z(target.sleep.end + timedelta(milliseconds=1))},
    )
    assert [r["cycle_id"] for r in response.json()["records"]] == [target.recovery.cycle_id]


async def test_the_whoop_alias_answers_the_later_sdk_envelope(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 30)
    path = f"/v1/whoop/data/{ALICE.user_id}/cycles"
    first = await api.get(path, ALICE.user_id, params={"app_id": "my-app", "limit": "20"})
    body = first.json()
    assert set(body) == {"vendor", "app_id", "user_id", "records", "cursor"}
    assert (body["vendor"], body["app_id"], body["user_id"]) == ("whoop", "my-app", ALICE.user_id)
    second = (
        await api.get(path, ALICE.user_id, params={"app_id": "my-app", "cursor": body["cursor"]})
    ).json()
    assert second["cursor"] is None
    assert len(body["records"]) + len(second["records"]) == len(days)
    no_app = (await api.get(path, ALICE.user_id, params={"limit": "1"})).json()
    assert no_app["app_id"] == ""
    long_app = await api.get(path, ALICE.user_id, params={"app_id": "a" * 129})
    assert _error(long_app, 400)["code"] == "invalid_parameter"


async def test_single_records_answer_wear_metrics_in_the_contract_units(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 10)
    day = next(d for d in days if d.workout is not None)
    workout = day.workout
    assert workout is not None
    for prefix in ("/v1/data", "/v1/whoop-cloud/data", "/v1/whoop/data"):
        base = f"{prefix}/{ALICE.user_id}"
        cyc = (await api.get(f"{base}/cycles/{day.cycle.cycle_id}", ALICE.user_id)).json()
        assert set(cyc) == {"timestamp", "device_id", "source", "metrics", "meta"}
        assert (cyc["device_id"], cyc["source"]) == (f"whoop_{ALICE.whoop_user_id}", "whoop")
        assert cyc["timestamp"] == _z(day.cycle.start)
        score: Any = day.cycle.document["score"]
        assert cyc["metrics"]["calories"] == pytest.approx(kcal_from_kj(score["kilojoule"]))
        assert cyc["metrics"]["strain"] == day.cycle.strain and cyc["meta"]["type"] == "cycle"
        wo = (await api.get(f"{base}/workouts/{workout.workout_id}", ALICE.user_id)).json()
        assert wo["metrics"]["distance"] == 8046.7  # metres, not km
        assert wo["metrics"]["calories"] == pytest.approx(2300.0 / 4.184)
        assert wo["metrics"]["hr"] == 152 and wo["meta"]["sport_name"] == "running"
        by_cycle = (await api.get(f"{base}/recovery/{day.recovery.cycle_id}", ALICE.user_id)).json()
        by_sleep = (await api.get(f"{base}/recovery/{day.recovery.sleep_id.upper()}", ALICE.user_id)).json()
        assert by_cycle == by_sleep
        assert by_cycle["metrics"]["hrv_rmssd"] == day.recovery.hrv_rmssd_ms  # milliseconds
        assert by_cycle["metrics"]["resting_hr"] == day.recovery.resting_heart_rate_bpm
        assert by_cycle["timestamp"] == _z(day.sleep.start)
        assert "stress" not in by_cycle["metrics"]
        slp = (await api.get(f"{base}/sleep/{day.sleep.sleep_id}", ALICE.user_id)).json()
        assert slp["metrics"]["asleep_ms"] == day.sleep.asleep_ms
        assert slp["meta"]["local_date"] == day.sleep.local_date.isoformat()

        missing = await api.get(f"{base}/cycles/1", ALICE.user_id)
        assert _error(missing, 404)["code"] == "not_found"
        for kind, bad in (("cycles", "abc"), ("sleep", "123"), ("workouts", "not-a-uuid"), ("recovery", "x")):
            assert _error(await api.get(f"{base}/{kind}/{bad}", ALICE.user_id), 400)["code"] == "invalid_id"


async def test_fetch_range_answers_every_record_of_the_window_as_wear_metrics(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 12)
    start, end = days[3].sleep.end, days[8].sleep.start
    response = await api.get(
        f"/v1/data/{ALICE.user_id}/metrics", ALICE.user_id, params={"start": _z(start), "end": _z(end)}
    )
    assert response.status_code == 200
    items = response.json()
    assert isinstance(items, list)

    def overlaps(s: datetime, e: datetime | None) -> bool:
        return s < end and (e is None or e >= start)

    expected = 0
    for day in days:
        expected += overlaps(day.cycle.start, day.cycle.end)
        expected += overlaps(day.sleep.start, day.sleep.end) * 2  # the sleep and its recovery
        expected += sum(overlaps(x.start, x.end) for x in (day.nap, day.workout) if x is not None)
    assert len(items) == expected
    stamps = [item["timestamp"] for item in items]
    assert stamps == sorted(stamps, reverse=True)
    assert {item["meta"]["type"] for item in items} == {
        "cycle",
        "sleep",
        "recovery",
        "workout",
    } or expected < 10
    only = await api.get(
        f"/v1/data/{ALICE.user_id}/metrics",
        ALICE.user_id,
        params={"start": _z(start), "end": _z(end), "types": "recovery,cycles"},
    )
    assert {item["meta"]["type"] for item in only.json()} == {"recovery", "cycle"}

    path = f"/v1/data/{ALICE.user_id}/metrics"
    assert (
        _error(await api.get(path, ALICE.user_id, params={"start": _z(start)}), 400)["code"]
        == "invalid_window"
    )
    wide = await api.get(path, ALICE.user_id, params={"start": "2025-01-01", "end": "2025-06-01"})
    assert _error(wide, 400)["code"] == "window_too_wide"
    bad_types = await api.get(
        path, ALICE.user_id, params={"start": "2025-10-01", "end": "2025-10-02", "types": "x"}
    )
    assert _error(bad_types, 400)["code"] == "invalid_parameter"


async def test_daily_summaries_page_by_local_date(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 10)
    path = f"/v1/data/{ALICE.user_id}/daily"
    first = (await api.get(path, ALICE.user_id, params={"limit": "4"})).json()
    assert set(first) == {"user_id", "records", "next_token"}
    rest = (
        await api.get(path, ALICE.user_id, params={"limit": "25", "next_token": first["next_token"]})
    ).json()
    dates = [r["local_date"] for r in first["records"] + rest["records"]]
    assert (
        dates == sorted(dates, reverse=True) and len(dates) == len(set(dates)) and rest["next_token"] is None
    )
    day = days[5]
    one = (
        await api.get(
            path,
            ALICE.user_id,
            params={"start_date": str(day.sleep.local_date), "end_date": str(day.sleep.local_date)},
        )
    ).json()
    (summary,) = one["records"]
    assert summary["recovery_score_pct"] == day.recovery.recovery_score_pct
    assert summary["hrv_rmssd_ms"] == day.recovery.hrv_rmssd_ms
    assert summary["sleep_duration_ms"] == day.sleep.asleep_ms
    assert summary["day_strain"] == day.cycle.strain
    assert summary["calories_kcal"] == pytest.approx(day.cycle.energy_kcal)
    assert summary["cycle_id"] == str(day.cycle.cycle_id)
    bad = await api.get(path, ALICE.user_id, params={"start_date": "2025-10-05", "end_date": "2025-10-01"})
    assert _error(bad, 400)["code"] == "invalid_window"
    assert _error(await api.get(path, ALICE.user_id, params={"start_date": "10/05/2025"}), 400)["code"] == (
        "invalid_parameter"
    )


async def test_sync_status_joins_connection_projection_activity_and_backfill(api: ApiHarness) -> None:
    await _seed(api.pool, ALICE, 3)
    path = f"/v1/data/{ALICE.user_id}/sync"
    empty = (await api.get(f"/v1/data/{BOB.user_id}/sync", BOB.user_id)).json()
    assert empty["connection"]["status"] == "not_connected" and empty["records_applied"] == 0
    assert empty["backfill"] is None and empty["last_record_at"] is None

    await api.pool.execute(
        "INSERT INTO whoop_connections (user_id, whoop_user_id, status) VALUES ($1, $2, 'needs_reauth')",
        ALICE.user_id,
        ALICE.whoop_user_id,
    )
    await api.pool.execute(
        "INSERT INTO pull_jobs (job_id, user_id, resource_types, range_start, range_end, status,"
        " requested_by, progress)"
        " VALUES ('j1', $1, '{sleep}', $2, $3, 'running', 'connect', '{\"sleep\": {\"pages\": 2}}')",
        ALICE.user_id,
        T0,
        T0 + timedelta(days=30),
    )
    await api.pool.execute(
        "INSERT INTO rm_sync_activity"
        " (user_id, last_webhook_at, last_fetch_at, webhooks_seen, documents_seen) VALUES ($1, $2, $3, 4, 9)",
        ALICE.user_id,
        T0,
        T0 + timedelta(seconds=1),
    )
    body = (await api.get(path, ALICE.user_id)).json()
    assert body["connection"]["status"] == "needs_reauth"
    assert body["connection"]["needs_reauth"] is True and body["connection"]["connected"] is False
    assert body["records_applied"] > 0 and body["last_record_at"].endswith("Z")
    assert (body["last_webhook_at"], body["webhooks_seen"], body["documents_fetched"]) == (_z(T0), 4, 9)
    assert body["backfill"]["status"] == "running" and body["backfill"]["progress"] == {"sleep": {"pages": 2}}


async def test_etags_answer_304_until_the_data_changes(api: ApiHarness) -> None:
    days = await _seed(api.pool, ALICE, 3)
    user = ALICE.user_id
    paths = [
        f"/v1/data/{user}/cycles",
        f"/v1/whoop/data/{user}/sleep",
        f"/v1/data/{user}/cycles/{days[0].cycle.cycle_id}",
        f"/v1/data/{user}/metrics?start=2025-09-01&end=2025-11-01",
        f"/v1/data/{user}/daily",
        f"/v1/data/{user}/sync",
    ]
    tags = {}
    for path in paths:
        first = await api.get(path, user)
        assert first.status_code == 200, path
        tags[path] = first.headers["etag"]
        again = await api.get(path, user, headers={"If-None-Match": f'W/"other", {tags[path]}'})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tags[path], path
        assert (await api.get(path, user, headers={"If-None-Match": '"stale"'})).status_code == 200
    later = days[0].recovery.whoop_updated_at + timedelta(hours=1)
    await apply_batches(
        api.pool, [[recovery(ALICE, days[0].cycle.cycle_id, days[0].sleep.sleep_id, later, score=1.0)]]
    )
    for path in paths:
        changed = await api.get(path, user, headers={"If-None-Match": tags[path]})
        assert changed.status_code == 200 and changed.headers["etag"] != tags[path], path


async def test_unknown_routes_and_methods_answer_the_error_shape(api: ApiHarness) -> None:
    assert _error(await api.get("/v1/nothing", ALICE.user_id), 404)["code"] == "not_found"
    posted = await api.client.post(f"/v1/data/{ALICE.user_id}/cycles")
    assert _error(posted, 405)["code"] == "method_not_allowed" and "GET" in posted.headers["allow"]


async def test_a_database_outage_answers_503_with_retry_after(postgres_settings: Any, pg_schema: str) -> None:
    from infra.db import create_pool

    pool = await create_pool(postgres_settings, schema=pg_schema)
    token = (await ApiTokens().issue(pool, ALICE.user_id)).token
    settings = api_settings(auth_cache_s=60)
    app = create_api(settings, pool=pool)
    app.state.projections = QueryServices.create(settings.projections, pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get(f"/v1/data/{ALICE.user_id}/cycles", headers=headers)).status_code == 200
        await pool.close()
        for path in ("cycles", "cycles/1", "daily", "sync"):
            response = await client.get(f"/v1/data/{ALICE.user_id}/{path}", headers=headers)
            assert _error(response, 503)["code"] == "unavailable"
            assert response.headers["retry-after"] == "2"


async def test_a_token_over_its_budget_answers_429(db_pool: asyncpg.Pool) -> None:
    token = (await ApiTokens().issue(db_pool, ALICE.user_id)).token
    settings = api_settings(rate_per_s=0.001, rate_burst=3)
    app = create_api(settings, pool=db_pool)
    app.state.projections = QueryServices.create(settings.projections, db_pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            (await client.get(f"/v1/data/{ALICE.user_id}/sync", headers=headers)).status_code
            for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429]
        limited = await client.get(f"/v1/data/{ALICE.user_id}/sync", headers=headers)
        assert _error(limited, 429)["code"] == "rate_limited" and limited.headers["retry-after"] == "2"


async def test_documents_are_served_as_whoop_sent_them(api: ApiHarness) -> None:
    odd = sleep(
        ALICE, "9a9a9a9a-0000-4000-8000-000000000009", 5, T0, T0 + timedelta(hours=8), T0 + timedelta(hours=9)
    )
    odd = msgspec.structs.replace(
        odd, document={**odd.document, "future_whoop_field": {"nested": [1, 2.5, None]}}
    )
    await apply_batches(api.pool, [[odd]])
    (record,) = (await api.get(f"/v1/data/{ALICE.user_id}/sleep", ALICE.user_id)).json()["records"]
    assert record == orjson.loads(orjson.dumps(odd.document))
    assert KINDS == ("recovery", "sleep", "workouts", "cycles")
    assert date.fromisoformat(odd.local_date.isoformat()) == odd.local_date


async def test_a_revoked_token_stops_working_once_its_cached_lookup_expires(db_pool: asyncpg.Pool) -> None:
    from projections.errors import Unauthenticated
    from projections.query.auth import Authenticator
    from projections.query.http import Call

    issued = await ApiTokens().issue(db_pool, ALICE.user_id)
    now = [100.0]
    auth = Authenticator(db_pool, (), cache_s=2.0, clock=lambda: now[0])
    request = Call.from_scope(
        {"type": "http", "path": "/", "headers": [(b"authorization", f"Bearer {issued.token}".encode())]}
    )
    assert (await auth.authenticate(request)).user_id == ALICE.user_id
    await ApiTokens().revoke(db_pool, issued.token_id)
    now[0] += 1.9
    assert (await auth.authenticate(request)).user_id == ALICE.user_id  # still remembered
    now[0] += 0.2
    with pytest.raises(Unauthenticated):
        await auth.authenticate(request)
    uncached = Authenticator(db_pool, (), cache_s=0)
    with pytest.raises(Unauthenticated):
        await uncached.authenticate(request)
