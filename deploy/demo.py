"""The traffic behind ``make run``: simulated members connect and live, so data flows end to end.

Once the simulator and the HTTP edge answer, a few simulated WHOOP members connect their account
through the edge's OAuth routes exactly as the phone app does (authorize, consent at the
simulated WHOOP, callback with the code), which stores their tokens and asks for a backfill.
Then, every few seconds, one member records a workout or wakes up from a sleep in the simulator,
which sends signed webhooks to the edge. Where the query API exists, the driver reads the
member's data back with the member's own API token, closing the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = ["CONNECTED", "ConnectedMember", "DemoError", "drive"]

logger = logging.getLogger(__name__)

APP_REDIRECT = "synheart://oauth/callback"
CONNECTED = "connected WHOOP member"  # how the activity line of a new connection starts


class DemoError(RuntimeError):
    """A stage did not behave as the demo needs (its message says which and how)."""


@dataclass(frozen=True)
class ConnectedMember:
    """A simulated WHOOP member connected through the edge."""

    whoop_user_id: int
    user_id: str
    api_token: str


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


async def _record_activity(
    client: httpx.AsyncClient, simulator: str, member: ConnectedMember, step: int
) -> str:
    """One activity in the simulator; a main sleep the member's day does not allow yet becomes a nap."""
    attempts: list[tuple[str, dict[str, object]]]
    if step % 2 == 0:
        attempts = [("new-workout", {"user_id": member.whoop_user_id, "scoring": "scored"})]
    else:
        sleep = {"user_id": member.whoop_user_id, "scoring": "pending", "score_after_s": 2}
        attempts = [("new-sleep", sleep), ("new-sleep", {**sleep, "nap": True})]
    for scenario, body in attempts:
        answer = await client.post(f"{simulator}/_sim/scenarios/{scenario}", json=body)
        if answer.status_code == 409:  # e.g. a main sleep cannot start before the current cycle did
            continue
        if answer.status_code >= 400:
            raise DemoError(
                f"simulator scenario {scenario} answered {answer.status_code}: {answer.text[:200]}"
            )
        return f"{scenario} (nap)" if body.get("nap") else scenario
    return "nothing possible right now"


async def _read_back(client: httpx.AsyncClient, edge: str, member: ConnectedMember) -> int | None:
    answer = await client.get(
        f"{edge}/v1/data/{member.user_id}/workouts",
        params={"limit": 25},
        headers={"Authorization": f"Bearer {member.api_token}"},
    )
    if answer.status_code != 200:
        return None  # no query API yet
    records = answer.json().get("records", [])
    return len(records) if isinstance(records, list) else None


async def drive(
    edge: str,
    simulator: str,
    stop: asyncio.Event,
    say: Callable[[str], None],
    *,
    members: int = 3,
    interval_s: float = 3.0,
) -> None:
    """Connect ``members`` simulated members, then make one of them active every ``interval_s``."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        await _wait_healthy(client, f"{simulator}/_sim/health")
        await _wait_healthy(client, f"{edge}/healthz")
        roster = (await client.get(f"{simulator}/_sim/members")).json()["members"][:members]
        connected = [await connect_member(client, edge, simulator, m["user_id"]) for m in roster]
        for member in connected:
            say(f"{CONNECTED} {member.whoop_user_id} as user {member.user_id}")
        for step in itertools.count():
            if stop.is_set():
                return
            member = connected[step % len(connected)]
            scenario = await _record_activity(client, simulator, member, step)
            seen = await _read_back(client, edge, member)
            readable = "" if seen is None else f"; {seen} workout(s) readable through the query API"
            say(f"member {member.whoop_user_id}: {scenario}{readable}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
