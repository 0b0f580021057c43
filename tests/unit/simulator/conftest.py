"""Fixtures of the simulator tests: an in-process simulator on a manual clock, driven over ASGI.

Webhooks go to an in-process receiver (an ``httpx.MockTransport``) whose answers a test scripts.
Nothing here waits on real time: the sleeper advances the manual clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from infra.settings import WhoopAppSettings
from simulator.app import create_app
from simulator.clock import ManualClock
from simulator.runtime import Simulator
from simulator.settings import SimulatorSettings

NOW = dt.datetime(2025, 11, 12, 12, 0, tzinfo=dt.UTC)
ALL_SCOPES = "offline read:recovery read:cycles read:workout read:sleep read:profile read:body_measurement"


@dataclass
class Receiver:
    """The webhook receiver: records every request and answers from a script (default 204)."""

    requests: list[httpx.Request] = field(default_factory=list)
    script: list[int | type[Exception]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.script.pop(0) if self.script else 204
        if isinstance(answer, type):
            raise answer("scripted failure")
        return httpx.Response(answer)


@dataclass
class Harness:
    app: Starlette
    sim: Simulator
    clock: ManualClock
    http: httpx.AsyncClient
    receiver: Receiver
    app_settings: WhoopAppSettings

    async def connect(self, user_id: int | None = None, scopes: list[str] | None = None) -> dict[str, Any]:
        """Connect a member through the control API; returns the token response."""
        user = user_id if user_id is not None else self.sim.member_ids()[0]
        body = {"scopes": scopes} if scopes is not None else {}
        response = await self.http.post(f"/_sim/members/{user}/tokens", json=body)
        assert response.status_code == 200, response.text
        token: dict[str, Any] = response.json()
        return token

    async def get(self, path: str, token: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(int(NOW.timestamp() * 1000))


@pytest.fixture
def sim_settings() -> SimulatorSettings:
    return SimulatorSettings(seed=7, members=3, days=20, webhook_timeout_s=1.0)


@pytest.fixture
def app_settings() -> WhoopAppSettings:
    return WhoopAppSettings()


@pytest.fixture
def make_harness(clock: ManualClock, app_settings: WhoopAppSettings) -> Callable[[SimulatorSettings], Any]:
    """Build a harness for given settings; use as ``async with make_harness(settings) as h``."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def build(settings: SimulatorSettings) -> AsyncIterator[Harness]:
        receiver = Receiver()
        app = create_app(
            settings,
            app_settings,
            clock=clock,
            sleeper=clock.sleep,
            webhook_transport=httpx.MockTransport(receiver.handle),
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as http:
                yield Harness(app, app.state.simulator, clock, http, receiver, app_settings)

    return build


@pytest.fixture
async def harness(
    make_harness: Callable[[SimulatorSettings], Any], sim_settings: SimulatorSettings
) -> AsyncIterator[Harness]:
    async with make_harness(sim_settings) as built:
        yield built
