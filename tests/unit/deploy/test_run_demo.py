"""The traffic of ``make run``: members' activities in plain words, and their full record counts."""

from __future__ import annotations

import json

import httpx
import pytest

from deploy.demo import ConnectedMember, RecordCount, count_records, describe_activity, record_activity

EDGE, SIMULATOR = "http://edge", "http://sim"
MEMBER = ConnectedMember(100383, "u-1", "wpt_token")


@pytest.mark.parametrize(
    ("scenario", "record", "said"),
    [
        ("new-workout", {"sport_name": "hiking-rucking"}, "finished a workout (hiking rucking)"),
        ("new-sleep", {"nap": True}, "woke up from a nap"),
        (
            "new-sleep",
            {"nap": False},
            "woke up from a night's sleep (a new recovery)",
        ),
    ],
)
def test_an_activity_reads_as_plain_words(scenario: str, record: dict[str, object], said: str) -> None:
    assert describe_activity(scenario, record) == said


def _collections(sizes: dict[str, int], calls: list[httpx.Request]) -> httpx.MockTransport:
    """The query API's collections of one member, paged by 25 with an opaque next_token."""

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.headers.get("authorization") != f"Bearer {MEMBER.api_token}":
            return httpx.Response(401, json={"error": {"code": "unauthorized"}})
        kind = request.url.path.rsplit("/", 1)[-1]
        offset = int(request.url.params.get("next_token") or 0)
        limit = int(request.url.params["limit"])
        records = [{"id": n} for n in range(offset, min(offset + limit, sizes[kind]))]
        more = offset + limit < sizes[kind]
        return httpx.Response(
            200, json={"records": records, "next_token": str(offset + limit) if more else None}
        )

    return httpx.MockTransport(answer)


async def test_counts_are_every_readable_record_not_the_first_page() -> None:
    calls: list[httpx.Request] = []
    sizes = {"sleep": 40, "recovery": 31, "cycles": 0, "workouts": 60}
    async with httpx.AsyncClient(transport=_collections(sizes, calls)) as client:
        counts = await count_records(client, EDGE, MEMBER, {"sleep": 40, "recovery": 33, "workout": 61})
    assert counts == {
        "sleep": RecordCount(40, 40),
        "recovery": RecordCount(31, 33),
        "cycles": RecordCount(0, None),
        "workouts": RecordCount(60, 61),
    }
    assert all(call.url.path.startswith(f"/v1/data/{MEMBER.user_id}/") for call in calls)


async def test_a_count_past_its_page_limit_says_there_are_more() -> None:
    sizes = {"sleep": 80, "recovery": 1, "cycles": 1, "workouts": 1}
    async with httpx.AsyncClient(transport=_collections(sizes, [])) as client:
        counts = await count_records(client, EDGE, MEMBER, {}, max_pages=2)
    assert counts is not None and counts["sleep"] == RecordCount(50, None, more=True)


async def test_no_count_when_the_query_api_refuses() -> None:
    stranger = ConnectedMember(1, "u-2", "wpt_wrong")
    async with httpx.AsyncClient(transport=_collections({"sleep": 3}, [])) as client:
        assert await count_records(client, EDGE, stranger, {}) is None


def _simulator(refused: set[str], bodies: list[dict[str, object]]) -> httpx.MockTransport:
    """Scenarios of the simulator; those in ``refused`` (``new-sleep``, ``nap``) answer 409."""

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        scenario = request.url.path.rsplit("/", 1)[-1]
        kind = "nap" if body.get("nap") else scenario
        if kind in refused:
            return httpx.Response(
                409, json={"error": "a new sleep must start after the current cycle started"}
            )
        record = {"sport_name": "rowing"} if scenario == "new-workout" else {"nap": bool(body.get("nap"))}
        return httpx.Response(201, json={"record": record, "events": []})

    return httpx.MockTransport(answer)


@pytest.mark.parametrize(
    ("refused", "said"),
    [
        (set(), "woke up from a night's sleep (a new recovery)"),
        ({"new-sleep"}, "woke up from a nap"),
        # just woken up: neither a sleep nor a nap fits, so the member works out instead of "nothing"
        ({"new-sleep", "nap"}, "finished a workout (rowing)"),
    ],
)
async def test_a_sleep_turn_falls_back_to_a_nap_then_to_a_workout(refused: set[str], said: str) -> None:
    bodies: list[dict[str, object]] = []
    async with httpx.AsyncClient(transport=_simulator(refused, bodies)) as client:
        assert await record_activity(client, SIMULATOR, MEMBER, step=1) == said
    assert all(body["user_id"] == MEMBER.whoop_user_id for body in bodies)
