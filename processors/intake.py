"""The fetcher's intake: ``whoop.webhooks.v1`` and ``whoop.connections.v1`` → work rows and deletions.

Driven by the fetcher's faust agents (``processors.fetcher``, ADR 0002): for each record, in
partition order, decode it, ask ``fetch_plan`` what it means, and act:

* a fetch → enqueue (or merge into) the resource's work row at the live priority: due after a short
  wait (``FETCHER_COALESCE_IDLE_S``) when the resource is idle, after the coalescing window when a
  fetch of it is queued, in flight or just started (``live_due_at``); a webhook whose WHOOP
  ``trace_id`` was already handled is skipped;
* a deletion → a deletion document appended now (no WHOOP call), the resource's queued work dropped;
  ``recovery.deleted`` is resolved through the stored sleep → cycle link;
* connection events → backfill jobs (none for a job already over), parked / resumed / dropped work
  (a disconnect also fails the member's pull jobs whose work it drops).

:meth:`Intake.handle_with_retry` returns True only once the record's effects are in PostgreSQL
and Kafka, and the agent acknowledges a record (manual acks: faust commits only acknowledged
offsets) only then; a record left unhandled at a stop is not acknowledged and comes again:
at-least-once (a redone record merges into the same row or appends an equal deletion, both
harmless). A record that cannot be decoded or acted on goes to ``<topic>.dlq``; PostgreSQL or
Kafka trouble is retried with back-off, holding the record; nothing raises out of the agent.
:meth:`Intake.act` is the same intake without the dead-lettering (it raises :class:`NotActionable`),
writing through a given connection: ``wear dlq redrive`` runs a dead letter's event through it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from infra import connections
from infra.appender import Appender, AppendFailed
from infra.dead_letters import DeadLetters
from infra.logs import progress_logger, trace_context
from infra.vault import Executor
from processors.backfill import drop_member_backfills, start_backfill
from processors.fetch_plan import (
    WANT_RECOVERY,
    Delete,
    Fetch,
    Ignore,
    Park,
    Reject,
    Resume,
    StartBackfill,
    plan_connection,
    plan_webhook,
)
from processors.quota import Priority
from processors.resources import Item, Member
from processors.tokens import TokenManager
from processors.work import Context
from schemas.events import Envelope, UserConnected, WebhookReceived
from schemas.serde import SchemaError, decode

__all__ = ["Incoming", "Intake", "NotActionable", "incoming_of", "live_due_at", "origin_of"]

logger = logging.getLogger(__name__)
progress = progress_logger(__name__)

_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 10.0
_RETRIABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, AppendFailed)


class NotActionable(Exception):
    """The record cannot be acted on: it belongs in ``<topic>.dlq`` with this error type and reason."""

    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.error_type = error_type
        self.reason = reason


@contextlib.asynccontextmanager
async def _transaction(db: Executor) -> AsyncIterator[Executor]:
    """A transaction on ``db``: a connection of the pool, or (a savepoint) in the caller's transaction."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection, connection.transaction():
            yield connection
    else:
        async with db.transaction():
            yield db


@dataclass(frozen=True)
class Incoming:
    """One consumed record, as the intake needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    redrive_of: str | None = (
        None  # ``wear dlq redrive``: the dead letter (<partition>:<offset>) it comes from
    )


def live_due_at(
    now: datetime, last_fetch_started: datetime | None, window: timedelta, idle_wait: timedelta
) -> datetime:
    """When a webhook's live fetch is due: after ``idle_wait`` on an idle resource, else the window.

    A resource whose last fetch started less than ``window`` ago is in a burst (WHOOP's duplicates,
    a sleep's ``sleep.updated`` + ``recovery.updated`` trickling in): its fetch waits for the rest.
    A row already queued keeps the earlier due time and one in flight runs again after the window
    (``TaskQueue.enqueue``), so a burst costs one more call at most.
    """
    if last_fetch_started is not None and now - last_fetch_started < window:
        return now + window
    return now + min(idle_wait, window)


def origin_of(record: Incoming) -> dict[str, Any]:
    """Where an event came from, kept with the work it caused (for a dead letter)."""
    origin: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": None if record.key is None else record.key.decode("utf-8", "replace"),
        "value_b64": base64.b64encode(record.value or b"").decode(),
    }
    if record.redrive_of is not None:
        origin["redrive_of"] = record.redrive_of
    return origin


def incoming_of(origin: Mapping[str, object], topic: str) -> Incoming:
    """The record an ``origin_of`` came from (``topic`` and offset -1 where the origin says nothing)."""
    key, redrive_of = origin.get("key"), origin.get("redrive_of")
    return Incoming(
        topic=str(origin.get("topic") or topic),
        partition=int(str(origin.get("partition", -1))),
        offset=int(str(origin.get("offset", -1))),
        key=None if key is None else str(key).encode(),
        value=base64.b64decode(str(origin.get("value_b64") or "")),
        redrive_of=None if redrive_of is None else str(redrive_of),
    )


@dataclass(eq=False)
class Intake:
    """Turns consumed events into work; one per process."""

    ctx: Context
    appender: Appender
    tokens: TokenManager | None
    wake: asyncio.Event
    handled: int = field(default=0, init=False)
    skipped_duplicates: int = field(default=0, init=False)
    _letters: DeadLetters = field(init=False)

    def __post_init__(self) -> None:
        self._letters = DeadLetters(self.appender, "fetcher", self.ctx.clock.now)

    async def handle_with_retry(self, record: Incoming, stop: asyncio.Event) -> bool:
        """Handle ``record``, retrying what is retriable; False when ``stop`` came first."""
        delay = _RETRY_FIRST_S
        while True:
            try:
                await self._handle_or_dead_letter(record)
            except _RETRIABLE as exc:
                logger.warning(
                    "%s[%d]@%d not handled yet (%s); retrying in %.1f s",
                    record.topic,
                    record.partition,
                    record.offset,
                    type(exc).__name__,
                    delay,
                )
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, _RETRY_MAX_S)
                    continue
                return False
            self.handled += 1
            return True

    async def _handle_or_dead_letter(self, record: Incoming) -> None:
        try:
            await self.handle(record)
        except _RETRIABLE:
            raise
        except Exception as exc:  # a bug: dead-letter it rather than crash the agent (faust would skip it)
            logger.exception("%s[%d]@%d could not be handled", record.topic, record.partition, record.offset)
            reason = "the fetcher failed on this record; see its log"
            await self._letters.send(record, exc, error_type="InternalError", reason=reason)

    async def handle(self, record: Incoming) -> None:
        """Act on one record, or dead-letter it (raises only what is worth retrying)."""
        try:
            await self.act(record, self.ctx.pool)
        except NotActionable as exc:
            await self._letters.send(record, exc, error_type=exc.error_type, reason=exc.reason)

    async def act(self, record: Incoming, db: Executor, *, dry_run: bool = False) -> str:
        """Carry out what ``record`` asks; what was done, in a few words.

        PostgreSQL writes go through ``db`` (the pool, or a connection in the caller's transaction:
        ``wear dlq redrive`` records its bookkeeping in the same one); the deletion documents a
        ``*.deleted`` webhook asks for are appended to Kafka. Raises :class:`NotActionable` for a
        record that belongs in the dead-letter topic. With ``dry_run``, nothing is appended to Kafka
        and nothing is written outside ``db`` (the caller rolls ``db``'s transaction back).
        """
        try:
            event = decode(record.value or b"", record.topic, record.partition, record.offset)
        except SchemaError as exc:
            raise NotActionable("SchemaError", exc.reason) from exc
        with trace_context(event.trace_id, user_id=event.user_id):  # its lines and appends carry it
            if isinstance(event, WebhookReceived):
                return await self._webhook(event, record, db, dry_run)
            return await self._connection(event, record, db)

    async def _webhook(self, event: WebhookReceived, record: Incoming, db: Executor, dry_run: bool) -> str:
        ctx = self.ctx
        plan = plan_webhook(event)
        member = Member(event.user_id, event.whoop_user_id)
        now = ctx.clock.now()
        if isinstance(plan, Reject):
            raise NotActionable("Rejected", plan.reason)
        if isinstance(plan, Fetch):
            state = await ctx.log.state(member.user_id, plan.kind, plan.resource_id)
            if state is not None and event.whoop_trace_id in state.trace_ids:
                self.skipped_duplicates += 1
                logger.info("duplicate webhook %s for user %s skipped", event.whoop_trace_id, member.user_id)
                return f"webhook {event.whoop_trace_id} already handled: nothing to fetch"
            window = timedelta(seconds=ctx.settings.coalesce_window_s)
            idle_wait = timedelta(seconds=ctx.settings.coalesce_idle_s)
            fetched = None if state is None else state.fetched_at
            await ctx.queue.enqueue(
                db,
                user_id=member.user_id,
                whoop_user_id=member.whoop_user_id,
                kind=plan.kind,
                resource_id=plan.resource_id,
                wants=plan.wants,
                priority=Priority.LIVE,
                due_at=live_due_at(now, fetched, window, idle_wait),
                event_at=event.occurred_at,
                caused_by=[event.event_id],
                trace_ids=[event.whoop_trace_id],
                origin=origin_of(record),
                busy_due_at=now + window,
                now=now,
            )
            self.wake.set()
            progress.info(
                "webhook %s: fetch of %s %s queued", event.whoop_event_type, plan.kind, plan.resource_id
            )
            return f"fetch of {plan.kind} {plan.resource_id} queued ({', '.join(sorted(plan.wants))})"
        if isinstance(plan, Delete):
            items = [Item(plan.resource_type, plan.resource_id)]
            if plan.resource_type == "sleep":
                link = await ctx.log.sleep_link(member.user_id, plan.resource_id)
                if link is not None and link.nap is not True:
                    items.append(Item("recovery", str(link.cycle_id), context={"sleep_id": plan.resource_id}))
            await ctx.queue.cancel(db, member.user_id, plan.resource_type, plan.resource_id)
            if not dry_run:
                await self._delete(member, event, items, plan.resource_type, plan.resource_id)
            return f"{len(items)} deletion documents for {plan.resource_type} {plan.resource_id}"
        link = await ctx.log.sleep_link(member.user_id, plan.sleep_id)
        if link is None:
            logger.warning(
                "recovery.deleted of user %s names sleep %s, which was never fetched: nothing to delete",
                member.user_id,
                plan.sleep_id,
            )
            return f"sleep {plan.sleep_id} was never fetched: no recovery to delete"
        await ctx.queue.drop_want(db, member.user_id, "sleep", plan.sleep_id, WANT_RECOVERY)
        items = [Item("recovery", str(link.cycle_id), context={"sleep_id": plan.sleep_id})]
        if not dry_run:
            await self._delete(member, event, items, "sleep", plan.sleep_id)
        return f"deletion document for the recovery of sleep {plan.sleep_id}"

    async def _delete(
        self, member: Member, event: WebhookReceived, items: list[Item], trace_type: str, trace_id_of: str
    ) -> None:
        ctx = self.ctx
        appended = await ctx.log.publish(
            member,
            items,
            fetch_started=ctx.clock.now(),
            caused_by=[event.event_id],
            trace_ids=[event.whoop_trace_id],
        )
        await ctx.log.record_traces(ctx.pool, member.user_id, trace_type, trace_id_of, [event.whoop_trace_id])
        logger.info(
            "%s for user %s: %d deletion documents appended",
            event.whoop_event_type,
            member.user_id,
            len(appended),
        )

    async def _connection(self, event: Envelope, record: Incoming, db: Executor) -> str:
        ctx = self.ctx
        plan = plan_connection(event)
        user_id = event.user_id
        if isinstance(plan, Ignore):
            logger.info("%s of user %s ignored: %s", event.event_type, user_id, plan.reason)
            return f"{event.event_type} ignored: {plan.reason}"
        if isinstance(plan, StartBackfill):
            whoop_user_id = await connections.whoop_user_id(db, user_id)
            if whoop_user_id is None:
                raise NotActionable("UnknownMember", f"backfill {plan.job_id}: user {user_id} unknown")
            async with _transaction(db) as tx:
                queued = await start_backfill(
                    tx,
                    ctx.queue,
                    Member(user_id, whoop_user_id),
                    plan,
                    ctx.clock.now(),
                    [event.event_id],
                    origin_of(record),
                )
            if not queued:
                logger.info("backfill %s of user %s is already over: nothing queued", plan.job_id, user_id)
                return f"backfill {plan.job_id} is already over: nothing queued"
            logger.info("backfill %s of user %s queued (%d stages)", plan.job_id, user_id, len(plan.stages))
            self.wake.set()
            return f"backfill {plan.job_id} queued ({len(plan.stages)} stages)"
        if isinstance(plan, Resume):
            if self.tokens is not None:
                self.tokens.forget(user_id)
            await ctx.queue.unpark(db, user_id, ctx.clock.now())
            if isinstance(event, UserConnected):
                logger.info("user %s connected: parked work resumes", user_id)
            self.wake.set()
            return f"user {user_id}'s parked work resumed"
        if isinstance(plan, Park):
            await ctx.queue.park(db, user_id)
            logger.info("user %s must authorize again (%s): work parked", user_id, plan.reason)
            return f"user {user_id}'s work parked"
        if self.tokens is not None:
            self.tokens.forget(user_id)
        async with _transaction(db) as tx:
            await drop_member_backfills(tx, ctx.queue, user_id, "disconnected")
            await ctx.queue.drop_user(tx, user_id)
        logger.info("user %s disconnected: queued work dropped", user_id)
        return f"user {user_id}'s queued work dropped"
