"""Conformance with the clock (issue 15): nothing the simulator holds lies after its clock.

A client written against the real WHOOP pages every collection of a member with the defaults (no
``start``, ``end`` = now, ``limit`` 10, following ``next_token``) and must find exactly what
``/_sim/members`` counts. WHOOP never holds a record that starts, ends or is updated in the future,
and the newest cycle is the open one (``end`` null). Checked for members generated at start-up with
``SIMULATOR_HISTORY_END=today`` and for members added at run time (``POST /_sim/members``), in every
home zone, at several times of day and around DST changes; the manual clock is the simulator's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from simulator.clock import ManualClock
from simulator.generator import HOME_ZONES, generate_member
from simulator.settings import SimulatorSettings
from simulator.timefmt import parse_query_datetime

from .conftest import Harness

pytestmark = pytest.mark.unit

COLLECTIONS = {
    "cycle": "/developer/v2/cycle",
    "sleep": "/developer/v2/activity/sleep",
    "workout": "/developer/v2/activity/workout",
    "recovery": "/developer/v2/recovery",
}
ZONES = len(HOME_ZONES)  # member index i lives in HOME_ZONES[i % 6]: 6 members cover every zone
# several times of day (UTC), so every home zone is met before, during and after its night; and the
# days of the EU (Oct 26) and US (Nov 2) DST changes of 2025 and Sydney's (Apr 5 2026)
MOMENTS = [
    "2025-11-12T00:30:00",
    "2025-11-12T05:05:00",
    "2025-11-12T09:40:00",
    "2025-11-12T14:50:00",
    "2025-11-12T19:15:00",
    "2025-11-12T23:55:00",
    "2025-10-26T07:20:00",
    "2025-11-02T12:10:00",
    "2026-04-05T16:45:00",
]
RUN_TIME_STEPS_H = (3.5, 7.25, 11.0)  # the clock moves on; members are added at run time after each step


def _ms(moment: str) -> int:
    return int(dt.datetime.fromisoformat(moment).replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture(params=MOMENTS)
def clock(request: pytest.FixtureRequest) -> ManualClock:
    return ManualClock(_ms(request.param))


async def _walk(harness: Harness, path: str, token: str) -> list[dict[str, Any]]:
    """Every record of a collection with WHOOP's defaults, as a third-party client pages it."""
    records: list[dict[str, Any]] = []
    next_token: str | None = None
    while True:
        params = {"nextToken": next_token} if next_token else {}
        response = await harness.get(path, token, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["records"]
        next_token = body.get("next_token")
        if not next_token:
            return records


def _future(record: dict[str, Any], now_ms: int) -> list[str]:
    return [
        f"{name}={record[name]}"
        for name in ("start", "end", "created_at", "updated_at")
        if record.get(name) is not None and parse_query_datetime(record[name]) > now_ms
    ]


async def _check_member(harness: Harness, member: dict[str, Any]) -> list[str]:
    """What a client sees of one member that WHOOP would never show (empty when faithful)."""
    now_ms = harness.clock.now_ms()
    who = f"{member['user_id']} ({member['home_zone']})"
    token = (await harness.connect(member["user_id"]))["access_token"]
    problems: list[str] = []
    for kind, path in COLLECTIONS.items():
        records = await _walk(harness, path, token)
        if len(records) != member["counts"][kind]:
            problems.append(
                f"{who}: {kind} paged {len(records)}, /_sim/members counts {member['counts'][kind]}"
            )
        for record in records:
            if late := _future(record, now_ms):
                problems.append(f"{who}: {kind} {record.get('id', record.get('cycle_id'))} after now: {late}")
        if kind == "cycle":
            open_cycles = [c["id"] for c in records if c["end"] is None]
            if not records or records[0]["end"] is not None or open_cycles != [records[0]["id"]]:
                problems.append(f"{who}: the newest cycle is not the only open one: {open_cycles}")
    return problems


async def _members(harness: Harness) -> list[dict[str, Any]]:
    response = await harness.http.get("/_sim/members")
    assert response.status_code == 200
    members: list[dict[str, Any]] = response.json()["members"]
    return members


async def test_clients_page_exactly_the_counts_and_nothing_after_now(
    make_harness: Callable[[SimulatorSettings], Any], clock: ManualClock
) -> None:
    settings = SimulatorSettings(seed=15, members=ZONES, days=40, history_end="today", quota_enabled=False)
    async with make_harness(settings) as harness:
        problems = [p for m in await _members(harness) for p in await _check_member(harness, m)]
        for hours in RUN_TIME_STEPS_H:
            clock.advance(hours * 3600)
            response = await harness.http.post("/_sim/members", json={"count": ZONES, "days": 40})
            assert response.status_code == 201, response.text
            added = response.json()["members"]
            assert {m["home_zone"] for m in added} == set(HOME_ZONES)
            problems += [p for m in added for p in await _check_member(harness, m)]
        # members made earlier still page exactly what is counted, later in the day
        problems += [p for m in (await _members(harness))[:ZONES] for p in await _check_member(harness, m)]
    assert not problems, "\n".join(problems[:20]) + f"\n... {len(problems)} problems"


async def test_a_fixed_history_end_not_yet_over_is_cut_at_the_clock(
    make_harness: Callable[[SimulatorSettings], Any], clock: ManualClock
) -> None:
    today = dt.datetime.fromtimestamp(clock.now_ms() / 1000, tz=dt.UTC).date()
    settings = SimulatorSettings(
        seed=3, members=ZONES, days=20, history_end=today.isoformat(), quota_enabled=False
    )
    async with make_harness(settings) as harness:
        problems = [p for m in await _members(harness) for p in await _check_member(harness, m)]
    assert not problems, "\n".join(problems[:20]) + f"\n... {len(problems)} problems"


@pytest.mark.parametrize("index", range(ZONES))
def test_generated_history_keeps_its_length_and_ends_with_the_open_cycle(index: int) -> None:
    for hour in range(0, 24 * 3, 5):  # three days, every five hours
        now_ms = _ms("2025-11-10T00:00:00") + hour * 3_600_000
        today = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC).date()
        member = generate_member(15, index, 12, today, current_state="SCORED", now_ms=now_ms)
        assert len(member.cycles) == 12
        assert [c["end"] is None for c in member.cycles] == [False] * 11 + [True]
        newest = max(parse_query_datetime(c["start"]) for c in member.cycles)
        assert parse_query_datetime(member.cycles[-1]["start"]) == newest
        documents = member.cycles + member.sleeps + member.workouts + member.recoveries
        assert not [late for doc in documents if (late := _future(doc, now_ms))]
        # the night that opens the current cycle is over: its sleep and recovery exist
        assert {s["cycle_id"] for s in member.sleeps if not s["nap"]} >= {member.cycles[-1]["id"]}


def test_a_history_well_in_the_past_is_not_changed_by_the_clock() -> None:
    end = dt.date(2025, 11, 10)
    later = _ms("2025-12-01T00:00:00")
    for index in range(ZONES):
        before = generate_member(9, index, 30, end, current_state="SCORED")
        after = generate_member(9, index, 30, end, current_state="SCORED", now_ms=later)
        assert (before.cycles, before.sleeps, before.workouts, before.recoveries) == (
            after.cycles,
            after.sleeps,
            after.workouts,
            after.recoveries,
        )
