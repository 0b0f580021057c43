"""The simulator's live state: the app registration, store, OAuth authority, quota, faults and sender.

:class:`Simulator` wires the pure parts together and owns the only background work (the webhook
sender and delayed scoring). It is built by :func:`simulator.app.create_app`, started and stopped by
the Starlette lifespan, and reachable from the routes as ``request.app.state.simulator``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random

import httpx

from infra.settings import WhoopAppSettings
from simulator.clock import Clock, Sleeper
from simulator.faults import Faults
from simulator.generator import Member, generate_member
from simulator.oauth import Authority, Client
from simulator.quota import Quota
from simulator.scenarios import ScenarioError, Scenarios
from simulator.settings import SimulatorSettings
from simulator.store import RenderOptions, Store
from simulator.webhooks import WebhookEvent, WebhookSender, WebhookSwitches

__all__ = ["Simulator"]

logger = logging.getLogger(__name__)


class Simulator:
    """Everything one simulated WHOOP cloud holds, for one registered app."""

    def __init__(
        self,
        settings: SimulatorSettings,
        app_settings: WhoopAppSettings,
        *,
        clock: Clock,
        sleeper: Sleeper,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleeper = sleeper
        self.time_scale = settings.time_scale
        self.client = Client(
            client_id=app_settings.whoop_client_id,
            client_secret=app_settings.whoop_client_secret.get_secret_value(),
            redirect_uris=app_settings.whoop_redirect_uris,
            webhook_url=app_settings.whoop_webhook_url,
        )
        self.rng = random.Random(settings.seed ^ 0x5EED)  # noqa: S311 - simulated data, not secrets
        self.store = Store(
            RenderOptions(unscored_score=settings.unscored_score, include_sport_id=settings.include_sport_id)
        )
        self.authority = Authority(
            [self.client],
            clock,
            token_lifetime_s=settings.token_lifetime_s,
            code_ttl_s=settings.code_ttl_s,
            mode=settings.oauth_mode,
        )
        self.quota = Quota(
            clock,
            per_minute=settings.quota_per_minute,
            per_day=settings.quota_per_day,
            enabled=settings.quota_enabled,
        )
        self.faults = Faults(random.Random(settings.seed ^ 0xFA17))  # noqa: S311 - fault draws, not secrets
        self.scenarios = Scenarios(self.store, self.rng, clock)
        self._http = httpx.AsyncClient(transport=webhook_transport)
        self.sender = WebhookSender(
            url=self.client.webhook_url,
            secret=self.client.client_secret,
            http=self._http,
            clock=clock,
            sleeper=sleeper,
            rng=random.Random(settings.seed ^ 0x00B0),  # noqa: S311 - delivery switches, not secrets
            retry_delays_s=settings.webhook_retry_delays_s,
            timeout_s=settings.webhook_timeout_s,
            switches=_switches(settings),
            time_scale=lambda: self.time_scale,
            is_connected=lambda user_id: self.authority.is_connected(self.client.client_id, user_id),
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.add_members(settings.members, settings.days)

    def member_ids(self) -> list[int]:
        """Members in creation order."""
        return list(self.store.members)

    def add_members(self, count: int, days: int) -> list[Member]:
        """Generate and index ``count`` more members (member ``i`` of a seed is always the same).

        Their history is placed on the clock now (at start-up or at run time): ``today`` is read
        again at every call, and nothing generated lies after the clock.
        """
        first = len(self.store.members)
        now_ms = self.clock.now_ms()
        today = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC).date()
        history_end = self.settings.history_end_date(today)
        created = [
            generate_member(
                self.settings.seed,
                index,
                days,
                history_end,
                current_state=self.settings.current_cycle_state,
                now_ms=now_ms,
            )
            for index in range(first, first + count)
        ]
        for member in created:
            self.store.add_member(member)
        return created

    def emit(self, events: list[WebhookEvent]) -> None:
        """Hand the events of one change to the webhook sender."""
        self.sender.emit(events)

    def schedule_scoring(self, kind: str, ident: str, outcome: str, after_s: float) -> None:
        """Complete the scoring of a pending record after ``after_s`` simulated seconds."""

        async def later() -> None:
            await self.sleeper(after_s / self.time_scale)
            try:
                self.emit(self.scenarios.complete_scoring(kind, ident, outcome))
            except ScenarioError as exc:  # deleted or scored by hand in the meantime
                logger.info("late scoring skipped kind=%s id=%s reason=%s", kind, ident, exc)

        task = asyncio.create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for scheduled scoring and every webhook delivery (tests and scripts)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.sender.drain()

    async def start(self) -> None:
        """Start background work (lifespan start)."""
        await self.sender.start()

    async def aclose(self) -> None:
        """Stop background work and close the HTTP client (lifespan end)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.aclose()
        await self._http.aclose()


def _switches(settings: SimulatorSettings) -> WebhookSwitches:
    """How the simulated WHOOP delivers webhooks (the settings' ``SIMULATOR_WEBHOOK_*``)."""
    return WebhookSwitches(
        enabled=settings.webhooks_enabled,
        model=settings.webhook_model,
        duplicate_rate=settings.webhook_duplicate_rate,
        drop_rate=settings.webhook_drop_rate,
        reorder=settings.webhook_reorder,
        resign_retries=settings.webhook_resign_retries,
    )
