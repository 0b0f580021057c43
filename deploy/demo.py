"""The traffic behind ``make run``: simulated members connect and live, so data flows end to end.

Once the simulator and the HTTP edge answer, a few simulated WHOOP members connect their account
through the edge's OAuth routes exactly as the phone app does (authorize, consent at the
simulated WHOOP, callback with the code), which stores their tokens and asks for a backfill.
Then, every few seconds, it is one member's turn: the driver counts that member's records through
the query API with the member's own token, every page of them (beside what the simulated WHOOP
holds), closing the loop; then the member finishes a workout or wakes up from a sleep in the
simulator, which sends signed webhooks to the edge.
It reports to an ``Audience`` (the live view): who connected, what each member did in plain
words, and their record counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = [
    "CONNECTED",
    "KINDS",
    "WHOOP_KIND",
    "Audience",
    "ConnectedMember",
    "DemoError",
    "RecordCount",
    "connect_member",
    "count_records",
    "describe_activity",
    "drive",
    "record_activity",
]

logger = logging.getLogger(__name__)

APP_REDIRECT = "synheart://oauth/callback"
CONNECTED = "connected WHOOP member"  # how the closing summary's line of a new connection starts
KINDS = ("sleep", "recovery", "cycles", "workouts")
"""The query API's collections, as in ``GET /v1/data/{user_id}/{kind}``."""
WHOOP_KIND = {"sleep": "sleep", "recovery": "recovery", "cycles": "cycle", "workouts": "workout"}
"""The simulator's name of each collection's kind."""
PAGE = 25  # the query API's largest page
_PAGE_PAUSE_S = 0.1  # between the pages of one count: about 10 requests/s, half the API's per-token rate
_REVIVAL_S = 180.0  # how long the driver waits for a restarted edge or simulator


class DemoError(RuntimeError):
    """A stage did not behave as the demo needs (its message says which and how)."""


@dataclass(frozen=True)
class ConnectedMember:
    """A simulated WHOOP member connected through the edge."""

    whoop_user_id: int
    user_id: str
    api_token: str


@dataclass(frozen=True)
class RecordCount:
    """A member's records of one kind: readable through the query API, and held by the simulated WHOOP."""

    readable: int
    at_whoop: int | None
    more: bool = False  # the count stopped at its page limit: there are more readable records


class Audience(Protocol):
    """Who hears what the demo does (the live view)."""

    def connected(self, member: ConnectedMember, name: str) -> None: ...

    def did(self, member: ConnectedMember, activity: str) -> None: ...

    def counted(self, member: ConnectedMember, counts: Mapping[str, RecordCount]) -> None: ...

    def note(self, line: str) -> None: ...


async def _wait_healthy(client: httpx.AsyncClient, url: str, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(url)).status_code == 200:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise DemoError(f"{url} did not answer 200 within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def connect_member(
    client: httpx.AsyncClient, edge: str, simulator: str, whoop_user_id: int
) -> ConnectedMember:
    """Connect one member through the edge's OAuth routes, as the phone SDK does."""
    started = await client.get(f"{edge}/v1/oauth/authorize", params={"redirect_uri": APP_REDIRECT})
    if started.status_code != 200:
        raise DemoError(f"authorize answered {started.status_code}: {started.text[:200]}")
    await client.post(f"{simulator}/_sim/oauth/next-user", json={"user_id": whoop_user_id})
    consent = await client.get(started.json()["authorization_url"], follow_redirects=False)
    location = consent.headers.get("location", "")
    params = parse_qs(urlsplit(location).query)
    if consent.status_code != 302 or "code" not in params:
        raise DemoError(f"the simulated WHOOP did not approve: {consent.status_code}")
    callback = await client.post(
        f"{edge}/v1/oauth/callback",
        json={
            "code": params["code"][0],
            "state": params["state"][0],
            "redirect_uri": APP_REDIRECT,
            "vendor": "whoop",
        },
    )
    if callback.status_code not in (200, 201):
        raise DemoError(f"callback answered {callback.status_code}: {callback.text[:200]}")
    body = callback.json()
    return ConnectedMember(whoop_user_id, body["user_id"], body["api_token"])


def describe_activity(scenario: str, record: Mapping[str, object]) -> str:
    """What a member just did, in plain words, from the simulator's scenario and new record."""
    if scenario == "new-workout":
        sport = str(record.get("sport_name") or "unnamed").replace("-", " ")
        return f"finished a workout ({sport})"
    if record.get("nap"):
        return "woke up from a nap"
    return "woke up from a night's sleep (a new recovery)"


async def record_activity(
    client: httpx.AsyncClient, simulator: str, member: ConnectedMember, step: int
) -> str:
    """One activity in the simulator: a workout, or a sleep; a main sleep the member's day does not
    allow yet becomes a nap, and when not even a nap fits (the member woke up moments ago), a workout."""
    workout = ("new-workout", {"user_id": member.whoop_user_id, "scoring": "scored"})
    sleep = {"user_id": member.whoop_user_id, "scoring": "pending", "score_after_s": 2}
    attempts = (
        [workout] if step % 2 == 0 else [("new-sleep", sleep), ("new-sleep", {**sleep, "nap": True}), workout]
    )
    for scenario, body in attempts:
        answer = await client.post(f"{simulator}/_sim/scenarios/{scenario}", json=body)
        if answer.status_code == 409:  # e.g. a main sleep cannot start before the current cycle did
            continue
        if answer.status_code >= 400:
            raise DemoError(
                f"simulator scenario {scenario} answered {answer.status_code}: {answer.text[:200]}"
            )
        return describe_activity(scenario, answer.json().get("record") or {})
    return "did nothing this turn (the simulator allowed no new activity)"


async def _count_kind(
    client: httpx.AsyncClient, edge: str, member: ConnectedMember, kind: str, max_pages: int
) -> tuple[int, bool] | None:
    """How many records of ``kind`` the query API serves the member (paging as the phone does), and
    whether there are more than ``max_pages`` pages; None when the API does not answer 200."""
    total, cursor = 0, None
    for _ in range(max_pages):
        params: dict[str, str | int] = {"limit": PAGE}
        if cursor:
            params["next_token"] = cursor
        answer = await client.get(
            f"{edge}/v1/data/{member.user_id}/{kind}",
            params=params,
            headers={"Authorization": f"Bearer {member.api_token}"},
        )
        if answer.status_code != 200:
            return None
        body = answer.json()
        total += len(body.get("records") or [])
        cursor = body.get("next_token")
        if not cursor:
            return total, False
        await asyncio.sleep(_PAGE_PAUSE_S)  # keep well under the API's per-token rate limit
    return total, True


async def count_records(
    client: httpx.AsyncClient,
    edge: str,
    member: ConnectedMember,
    at_whoop: Mapping[str, int],
    max_pages: int = 100,
) -> dict[str, RecordCount] | None:
    """Each kind's records readable by the member through the query API, beside what WHOOP holds."""
    counts: dict[str, RecordCount] = {}
    for kind in KINDS:
        counted = await _count_kind(client, edge, member, kind, max_pages)
        if counted is None:
            return None
        counts[kind] = RecordCount(counted[0], at_whoop.get(WHOOP_KIND[kind]), more=counted[1])
    return counts


async def _whoop_counts(client: httpx.AsyncClient, simulator: str) -> dict[int, dict[str, int]]:
    """What the simulated WHOOP holds for each member, by WHOOP kind."""
    members = (await client.get(f"{simulator}/_sim/members")).json()["members"]
    return {m["user_id"]: m.get("counts", {}) for m in members}


async def _connect_all(
    client: httpx.AsyncClient, edge: str, simulator: str, members: int, audience: Audience
) -> list[ConnectedMember]:
    await _wait_healthy(client, f"{simulator}/_sim/health")
    await _wait_healthy(client, f"{edge}/healthz")
    roster = (await client.get(f"{simulator}/_sim/members")).json()["members"][:members]
    connected = []
    for entry in roster:
        member = await connect_member(client, edge, simulator, entry["user_id"])
        audience.connected(member, str(entry.get("first_name") or "member"))
        connected.append(member)
    return connected


async def _step(
    client: httpx.AsyncClient,
    edge: str,
    simulator: str,
    member: ConnectedMember,
    step: int,
    audience: Audience,
) -> None:
    # count first: the member's last activity had a whole round to flow through the pipeline
    at_whoop = (await _whoop_counts(client, simulator)).get(member.whoop_user_id, {})
    counts = await count_records(client, edge, member, at_whoop)
    if counts is not None:
        audience.counted(member, counts)
    audience.did(member, await record_activity(client, simulator, member, step))


async def drive(
    edge: str,
    simulator: str,
    stop: asyncio.Event,
    audience: Audience,
    *,
    members: int = 3,
    interval_s: float = 3.0,
) -> None:
    """Connect ``members`` simulated members, then make one of them active every ``interval_s``.

    While a stage restarts, the edge or the simulator may not answer for a while: the driver says
    so and waits for them (up to ``_REVIVAL_S``) instead of stopping the demo.
    """
    async with httpx.AsyncClient(timeout=10.0) as client:
        connected = await _connect_all(client, edge, simulator, members, audience)
        for step in itertools.count():
            if stop.is_set():
                return
            try:
                await _step(client, edge, simulator, connected[step % len(connected)], step, audience)
            except httpx.TransportError:
                audience.note("the edge or the simulator does not answer; waiting for it")
                await _wait_healthy(client, f"{simulator}/_sim/health", _REVIVAL_S)
                await _wait_healthy(client, f"{edge}/healthz", _REVIVAL_S)
                audience.note("the edge and the simulator answer again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
