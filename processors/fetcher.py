"""The fetcher's runner: builds its adapters and runs intake, workers and the reconciliation scan.

One process holds one ``httpx.AsyncClient`` (``WhoopClient``), one Kafka producer for documents,
one faust app (``processors.faust_app.create_app``, ADR 0002) whose two agents feed the intake from
``whoop.webhooks.v1`` and ``whoop.connections.v1`` in the ``FETCHER_GROUP_ID`` group, and one
PostgreSQL pool. An agent acknowledges a record (manual acks) only once the intake stored the
record's effects, so faust commits nothing that is not done, even when a stop interrupts it. The
work itself lives in PostgreSQL (``fetcher_tasks``), so any number of fetcher processes share it:
the intake of whichever process owns a partition enqueues, the ``FETCHER_CONCURRENCY`` workers of
every process claim, and one quota (``fetcher_quota``) bounds them all. ``NOTIFY fetcher_tasks``
wakes idle workers of every process when work is enqueued.

``run_fetcher(settings, stop)`` returns once ``stop`` is set and everything is closed. Tests and
benchmarks build :class:`Fetcher` themselves to inject a clock or a WHOOP transport and to read
its counters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import asyncpg
import faust
import httpx

from infra.appender import DurableAppender
from infra.db import create_pool
from infra.member_keys import MemberKeys
from infra.vault import TokenVault
from processors.backfill import handle_backfill
from processors.clock import Clock, SystemClock
from processors.faust_app import create_app, registry_topic
from processors.intake import Incoming, Intake
from processors.member_api import MemberWhoop
from processors.metrics import APPEND_SECONDS
from processors.quota import PgQuota, QuotaPolicy, quota_policy
from processors.reconcile import handle_reconcile, schedule_reconciliations
from processors.resources import DocumentLog
from processors.settings import Settings
from processors.task_queue import CHANNEL, TaskQueue
from processors.tokens import TokenManager
from processors.whoop_client import WhoopClient
from processors.work import Context, handle_sleep, handle_workout
from processors.worker import Handler, Worker, wait_for
from schemas.topics import DLQ_SUFFIX, TopicSpec, topic

__all__ = ["Fetcher", "policy_of", "run_fetcher"]

logger = logging.getLogger(__name__)

HANDLERS: dict[str, Handler] = {
    "workout": handle_workout,
    "sleep": handle_sleep,
    "backfill": handle_backfill,
    "reconcile": handle_reconcile,
}


def policy_of(settings: Settings) -> QuotaPolicy:
    """The quota policy the settings describe."""
    return quota_policy(settings.fetcher)


class Fetcher:
    """One fetcher process's parts, started by :meth:`start` and run by :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        whoop_transport: httpx.AsyncBaseTransport | None = None,
        schema: str | None = None,
        reconcile: bool = True,
        partitions: int | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._transport = whoop_transport
        self._schema = schema
        self._reconcile = reconcile
        self._partitions = partitions
        self._stop = asyncio.Event()
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.wake = asyncio.Event()

    async def start(self) -> None:
        """Open the pool (migrating), the producer, the HTTP client and the consumer."""
        s, f = self.settings, self.settings.fetcher
        self.pool: asyncpg.Pool = await create_pool(
            s.postgres, schema=self._schema, max_size=max(s.processors.db_pool_size, f.concurrency + 4)
        )
        self.appender = await DurableAppender.start(s.kafka, "fetcher")
        self.appender.observe = APPEND_SECONDS.observe
        self.quota = PgQuota(self.pool, policy_of(s), self.clock, f.quota_bucket)
        self.client = WhoopClient.create(s.whoop, f, self.quota, self.clock, transport=self._transport)
        self.tokens = TokenManager(
            self.pool,
            TokenVault(s.vault.keyring()),
            self.client,
            self.appender,
            f.connections_topic,
            self.clock,
            f.refresh_margin_s,
        )
        self.queue = TaskQueue(self.pool, self.owner, f.lease_s)
        self.keys = MemberKeys(s.vault.keyring())
        self.log = DocumentLog(self.pool, self.appender, f.documents_topic, self.clock, self.keys)
        self.ctx = Context(
            self.pool, self.queue, self.log, MemberWhoop(self.client, self.tokens), self.clock, f
        )
        self.intake = Intake(self.ctx, self.appender, self.tokens, self.wake)
        dead_letters = f.webhooks_topic + DLQ_SUFFIX
        self.workers = [
            Worker(self.ctx, HANDLERS, self.appender, self.wake, dead_letters) for _ in range(f.concurrency)
        ]
        self._datadir = Path(f.datadir) if f.datadir else Path(tempfile.mkdtemp(prefix="fetcher-faust-"))
        self.app = create_app(s.kafka, f.group_id, datadir=self._datadir)
        for role, name in (
            ("whoop.webhooks.v1", f.webhooks_topic),
            ("whoop.connections.v1", f.connections_topic),
        ):
            self._agent(self._spec(role, name))
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(CHANNEL, self._notified)
        logger.info("fetcher %s started (%d workers)", self.owner, f.concurrency)

    def _spec(self, role: str, name: str) -> TopicSpec:
        spec = replace(topic(role), name=name)
        return spec if self._partitions is None else replace(spec, partitions=self._partitions)

    def _agent(self, spec: TopicSpec) -> None:
        intake, stop = self.intake, self._stop

        async def consume(stream: faust.StreamT[bytes]) -> None:
            # Manual acks: faust's iterator acks the current event in its ``finally``, even when the
            # loop is left without handling it (a stop during retries); an event acked here is one
            # whose effects are stored. Faust commits only acked offsets, so an event left unacked
            # (and every later one of its partition) is delivered again to the group.
            manual = cast("faust.Stream[bytes]", stream).noack()  # StreamT does not declare noack()
            async for event in manual.events():
                message = event.message
                record = Incoming(
                    message.topic, message.partition, message.offset, message.key, message.value
                )
                if not await intake.handle_with_retry(record, stop):
                    return
                await manual.ack(event)

        self.app.agent(registry_topic(self.app, spec), name=f"intake-{spec.name}")(consume)

    def _notified(self, *args: Any) -> None:
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then close everything."""
        try:
            await self.app.start()
            async with asyncio.TaskGroup() as group:
                for worker in self.workers:
                    group.create_task(worker.run(stop))
                if self._reconcile:
                    group.create_task(self._reconcile_loop(stop))
                group.create_task(self._wake_on_stop(stop))
        finally:
            await self.close()

    async def _wake_on_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stop.set()
        self.wake.set()

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await schedule_reconciliations(self.ctx):
                    self.wake.set()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                logger.warning(
                    "reconciliation scan failed (%s: %s); next scan as planned", type(exc).__name__, exc
                )
            await wait_for(self.ctx, stop, self.settings.fetcher.reconcile_scan_s)

    async def close(self) -> None:
        """Stop the faust app and close the client, the producer and the pool (each even if another fails)."""
        self._stop.set()
        try:
            try:
                await self.app.stop()
            finally:
                if not self.settings.fetcher.datadir:
                    shutil.rmtree(self._datadir, ignore_errors=True)
                await self.client.aclose()
        finally:
            try:
                await self.appender.stop()
            finally:
                await self._close_pool()
        logger.info("fetcher %s stopped", self.owner)

    async def _close_pool(self) -> None:
        try:
            await self._listener.remove_listener(CHANNEL, self._notified)
            await self.pool.release(self._listener)
            await asyncio.wait_for(self.pool.close(), timeout=10)
        except (TimeoutError, asyncpg.InterfaceError, OSError) as exc:
            logger.warning("closing the pool: %s; terminating its connections", type(exc).__name__)
            self.pool.terminate()


async def run_fetcher(settings: Settings, stop: asyncio.Event, **options: Any) -> None:
    """Run one fetcher until ``stop`` is set (``options``: see :class:`Fetcher`)."""
    fetcher = Fetcher(settings, **options)
    await fetcher.start()
    await fetcher.run(stop)
