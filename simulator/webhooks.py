"""The webhook sender: signed POSTs to the app's webhook URL with WHOOP's retry behaviour (§10.5).

First attempts go out in order from one queue; a failed delivery (non-2xx, error or timeout) is
retried by its own task after each delay of the retry schedule (five retries over about an hour,
divided by the current time scale). Switches reproduce WHOOP's imperfections: duplicates (same
``trace_id``), reordering within one change, drops, and retries that keep the first signature.
Members who revoked the app get nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from simulator.clock import Clock, Sleeper
from simulator.signing import webhook_body, webhook_headers

__all__ = ["Attempt", "WebhookEvent", "WebhookSender", "WebhookSwitches"]

logger = logging.getLogger(__name__)


class WebhookSwitches(BaseModel):
    """Sender behaviour, changeable at run time through the control API."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    model: Literal["v2", "v1"] = "v2"
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    reorder: bool = False
    resign_retries: bool = True


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One notification: ``id`` is the v2 UUID (the sleep's for recovery events), ``v1_id`` the legacy int."""

    user_id: int
    type: str
    id: str
    trace_id: str
    v1_id: int | None = None


@dataclass(slots=True)
class Attempt:
    """One delivery attempt, as shown by ``GET /_sim/webhooks/deliveries``."""

    trace_id: str
    type: str
    id: str
    user_id: int
    attempt: int
    timestamp_ms: int
    status: int | None = None
    error: str | None = None
    outcome: str = "pending"


@dataclass
class _Stats:
    emitted: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    duplicated: int = 0
    given_up: int = 0
    skipped_revoked: int = 0


@dataclass
class _Job:
    event: WebhookEvent
    body: bytes
    first_timestamp_ms: int | None = None
    attempts: int = 0


@dataclass(kw_only=True, eq=False)
class WebhookSender:
    """Delivers :class:`WebhookEvent` s to one app's URL."""

    url: str
    secret: str
    http: httpx.AsyncClient
    clock: Clock
    sleeper: Sleeper
    rng: random.Random
    retry_delays_s: tuple[float, ...]
    timeout_s: float
    switches: WebhookSwitches
    time_scale: Callable[[], float]
    is_connected: Callable[[int], bool]
    attempts: deque[Attempt] = field(default_factory=lambda: deque(maxlen=10_000), init=False)
    stats: _Stats = field(default_factory=_Stats, init=False)
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _worker: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        """Start the first-attempt worker."""
        self._worker = asyncio.create_task(self._run(), name="webhook-sender")

    async def aclose(self) -> None:
        """Stop the worker and every pending retry."""
        tasks = [*self._tasks, *([self._worker] if self._worker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None

    def emit(self, events: list[WebhookEvent]) -> None:
        """Queue the notifications of one change (applying drop, duplicate and reorder switches)."""
        if not self.switches.enabled:
            return
        batch: list[WebhookEvent] = []
        for event in events:
            self.stats.emitted += 1
            if not self.is_connected(event.user_id):
                self.stats.skipped_revoked += 1
                continue
            if self.switches.drop_rate and self.rng.random() < self.switches.drop_rate:
                self.stats.dropped += 1
                self.attempts.append(
                    Attempt(event.trace_id, event.type, event.id, event.user_id, 0, 0, None, None, "dropped")
                )
                continue
            batch.append(event)
            if self.switches.duplicate_rate and self.rng.random() < self.switches.duplicate_rate:
                self.stats.duplicated += 1
                batch.append(event)
        if self.switches.reorder:
            self.rng.shuffle(batch)
        for event in batch:
            self._queue.put_nowait(_Job(event, self._body(event)))

    def _body(self, event: WebhookEvent) -> bytes:
        if self.switches.model == "v1":
            return webhook_body(event.user_id, event.v1_id or 0, event.type, event.trace_id)
        return webhook_body(event.user_id, event.id, event.type, event.trace_id)

    async def drain(self) -> None:
        """Wait until every queued delivery and every scheduled retry has finished."""
        while True:
            await self._queue.join()
            pending = [task for task in self._tasks if not task.done()]
            if not pending and self._queue.empty():
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                if not await self._attempt(job):
                    task = asyncio.create_task(self._retry(job))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            finally:
                self._queue.task_done()

    async def _retry(self, job: _Job) -> None:
        for delay in self.retry_delays_s:
            await self.sleeper(delay / self.time_scale())
            if await self._attempt(job):
                return
        self.stats.given_up += 1
        logger.info(
            "webhook given up type=%s trace_id=%s attempts=%s",
            job.event.type,
            job.event.trace_id,
            job.attempts,
        )

    async def _attempt(self, job: _Job) -> bool:
        event = job.event
        if not self.is_connected(event.user_id):
            self.stats.skipped_revoked += 1
            return True  # nothing more to do for a revoked member
        now = self.clock.now_ms()
        if job.first_timestamp_ms is None or self.switches.resign_retries:
            timestamp = now
        else:
            timestamp = job.first_timestamp_ms
        job.first_timestamp_ms = job.first_timestamp_ms or now
        record = Attempt(event.trace_id, event.type, event.id, event.user_id, job.attempts, timestamp)
        job.attempts += 1
        self.attempts.append(record)
        try:
            response = await self.http.post(
                self.url,
                content=job.body,
                headers=webhook_headers(self.secret, timestamp, job.body),
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            record.error, record.outcome = type(exc).__name__, "failed"
            self.stats.failed_attempts += 1
            logger.info(
                "webhook failed type=%s trace_id=%s error=%s", event.type, event.trace_id, record.error
            )
            return False
        record.status = response.status_code
        if 200 <= response.status_code < 300:
            record.outcome = "delivered"
            self.stats.delivered += 1
            return True
        record.outcome = "failed"
        self.stats.failed_attempts += 1
        logger.info(
            "webhook refused type=%s trace_id=%s status=%s", event.type, event.trace_id, record.status
        )
        return False

    def snapshot(self) -> dict[str, Any]:
        """Stats and switches, for the control API."""
        return {
            "url": self.url,
            "switches": self.switches.model_dump(),
            "retry_delays_s": list(self.retry_delays_s),
            "stats": asdict(self.stats),
            "queued": self._queue.qsize(),
            "retrying": sum(1 for task in self._tasks if not task.done()),
        }
