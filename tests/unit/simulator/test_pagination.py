"""Pagination and filtering (§5.1, §7): full walks, exactly once, newest first, start/end, limits, tokens."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.pagination import decode_token, encode_token
from simulator.timefmt import format_ms, parse_query_datetime

from .conftest import Harness

pytestmark = pytest.mark.unit

COLLECTIONS = {
    "/developer/v2/cycle": ("cycle", "id"),
    "/developer/v2/activity/sleep": ("sleep", "id"),
    "/developer/v2/activity/workout": ("workout", "id"),
    "/developer/v2/recovery": ("recovery", "cycle_id"),
}


async def _walk(harness: Harness, path: str, token: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    pages = 0
    next_token = None
    while True:
        query = dict(params)
        if next_token:
            query["nextToken"] = next_token
        response = await harness.get(path, token, **query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        records += body["records"]
        next_token = body.get("next_token")
        if not next_token:
            return records, pages


def _sort_start(record: dict[str, Any], harness: Harness) -> int:
    if "start" in record:
        return parse_query_datetime(record["start"])
    return parse_query_datetime(harness.sim.store.sleeps[record["sleep_id"]].doc["start"])


@pytest.mark.parametrize("path", sorted(COLLECTIONS))
@pytest.mark.parametrize("limit", [1, 7, 25])
async def test_full_walk_returns_each_record_exactly_once_newest_first(
    harness: Harness, path: str, limit: int
) -> None:
    token = (await harness.connect())["access_token"]
    user_id = harness.sim.member_ids()[0]
    kind, key = COLLECTIONS[path]
    records, pages = await _walk(harness, path, token, limit=limit)
    ids = [record[key] for record in records]
    assert len(ids) == len(set(ids)) == harness.sim.store.count(user_id, kind)  # type: ignore[arg-type]
    assert pages == -(-len(ids) // limit)
    starts = [_sort_start(record, harness) for record in records]
    assert starts == sorted(starts, reverse=True)
    assert all(record["user_id"] == user_id for record in records)


async def test_default_limit_is_ten_and_over_25_is_a_400(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    assert len((await harness.get("/developer/v2/cycle", token)).json()["records"]) == 10
    assert len((await harness.get("/developer/v2/cycle", token, limit=25)).json()["records"]) == 20
    assert (await harness.get("/developer/v2/cycle", token, limit=26)).status_code == 400
    assert (await harness.get("/developer/v2/cycle", token, limit=0)).status_code == 400
    assert (await harness.get("/developer/v2/cycle", token, limit="ten")).status_code == 400


async def test_limit_one_returns_the_current_cycle_with_null_end(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    latest = (await harness.get("/developer/v2/cycle", token, limit=1)).json()["records"][0]
    assert latest["end"] is None and latest["score_state"] == "SCORED"


async def test_walk_is_stable_while_records_are_added(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    user_id = harness.sim.member_ids()[0]
    path = "/developer/v2/activity/workout"
    first = (await harness.get(path, token, limit=5)).json()
    created = await harness.http.post("/_sim/scenarios/new-workout", json={"user_id": user_id})
    assert created.status_code == 201
    rest, _ = await _walk(harness, path, token, limit=5, nextToken=first["next_token"])
    ids = [r["id"] for r in first["records"] + rest]
    assert len(ids) == len(set(ids)) == harness.sim.store.count(user_id, "workout") - 1
    assert created.json()["record"]["id"] not in ids  # newer than the first page: not in this walk


async def test_start_inclusive_end_exclusive_by_overlap(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    cycles, _ = await _walk(harness, "/developer/v2/cycle", token, limit=25)
    middle = cycles[5]
    start, end = parse_query_datetime(middle["start"]), parse_query_datetime(middle["end"])
    # a window from the cycle's start to its end: the cycle itself, and the previous one (its end == start)
    window, _ = await _walk(harness, "/developer/v2/cycle", token, start=format_ms(start), end=format_ms(end))
    assert [c["id"] for c in window] == [middle["id"], cycles[6]["id"]]
    # end is exclusive: a window ending exactly at the cycle's start excludes it
    before, _ = await _walk(
        harness, "/developer/v2/cycle", token, start=format_ms(start - 1), end=format_ms(start)
    )
    assert middle["id"] not in [c["id"] for c in before]
    # every record of a bounded walk intersects the window
    lo, hi = parse_query_datetime(cycles[10]["start"]), parse_query_datetime(cycles[3]["end"])
    some, _ = await _walk(
        harness, "/developer/v2/activity/sleep", token, start=format_ms(lo), end=format_ms(hi), limit=3
    )
    assert some
    for sleep in some:
        assert parse_query_datetime(sleep["start"]) < hi and parse_query_datetime(sleep["end"]) >= lo


async def test_recovery_window_uses_the_sleep(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    sleeps, _ = await _walk(harness, "/developer/v2/activity/sleep", token, limit=25)
    main = next(s for s in sleeps[3:] if not s["nap"] and s["cycle_id"] in harness.sim.store.recoveries)
    start = main["start"]
    end = format_ms(parse_query_datetime(main["start"]) + 1)
    recoveries, _ = await _walk(harness, "/developer/v2/recovery", token, start=start, end=end)
    assert [r["sleep_id"] for r in recoveries] == [main["id"]]


@pytest.mark.parametrize("bad", ["not-base64!", "eyJmb28iOjF9", encode_token((1, "x"))[:-4]])
async def test_bad_next_token_and_dates_are_400(harness: Harness, bad: str) -> None:
    token = (await harness.connect())["access_token"]
    assert (await harness.get("/developer/v2/cycle", token, nextToken=bad)).status_code == 400


async def test_date_only_start_is_400(harness: Harness) -> None:
    token = (await harness.connect())["access_token"]
    assert (await harness.get("/developer/v2/cycle", token, start="2025-10-01")).status_code == 400
    assert (
        await harness.get("/developer/v2/cycle", token, start="2025-10-01T00:00:00.000Z")
    ).status_code == 200


def test_token_round_trip() -> None:
    assert decode_token(encode_token((-1760409667312, "abc"))) == (-1760409667312, "abc")


@pytest.mark.parametrize(("setting", "expected"), [("null", None), ("empty", ""), ("omit", "absent")])
async def test_end_of_list_representation(
    make_harness: Any, sim_settings: Any, setting: str, expected: Any
) -> None:
    async with make_harness(sim_settings.model_copy(update={"end_of_list": setting})) as harness:
        token = (await harness.connect())["access_token"]
        body = (await harness.get("/developer/v2/cycle", token, limit=25)).json()
        assert body.get("next_token", "absent") == expected
