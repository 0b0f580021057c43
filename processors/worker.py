"""A fetch worker: claims the most urgent due task row, runs its handler, applies the one failure policy.

Several workers run per process (``FETCHER_CONCURRENCY``), and several processes share the queue.
While a handler runs, the worker renews the row's lease; if the process dies, the lease expires and
another worker runs the row again (at-least-once; documents appended twice are harmless). A member
who disconnected has their rows dropped; one who must authorize again has them parked.

Failures (``fetch_plan.task_failure``): no budget (or a 429) defers the row until the quota frees;
WHOOP or Kafka trouble defers it with back-off (``FETCHER_ERROR_BACKOFF_S``, the last delay repeats:
never dropped); a refused grant parks the member's rows; anything else (a 4xx, a malformed document,
a bug) goes to the dead-letter topic of the event that caused it, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from infra import connections
from infra.appender import Appender
from infra.dead_letters import DeadLetters
from infra.logs import trace_context
from processors.backfill import fail_job
from processors.errors import FetchError, QuotaDeferred
from processors.fetch_plan import error_delay, task_failure
from processors.intake import incoming_of
from processors.resources import Member
from processors.task_queue import Task
from processors.work import Context, Run
from schemas.keys import record_key
from schemas.topics import DLQ_REDRIVE_OF_HEADER, DLQ_SUFFIX

__all__ = ["Handler", "Worker", "wait_for"]

logger = logging.getLogger(__name__)

Handler = Callable[[Context, Task, Member, Run], Awaitable[None]]
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


async def wait_for(ctx: Context, event: asyncio.Event, seconds: float) -> None:
    """Return when ``event`` is set or ``seconds`` (on the context's clock) have passed."""
    if event.is_set() or seconds <= 0:
        return
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(ctx.clock.sleep(seconds))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (waiter, sleeper):
            pending.cancel()
        await asyncio.gather(waiter, sleeper, return_exceptions=True)


@dataclass(eq=False)
class Worker:
    """One claim loop."""

    ctx: Context
    handlers: Mapping[str, Handler]
    appender: Appender
    wake: asyncio.Event
    dead_letter_topic: str
    runs: int = field(default=0, init=False)
    _letters: DeadLetters = field(init=False)

    def __post_init__(self) -> None:
        self._letters = DeadLetters(self.appender, "fetcher", self.ctx.clock.now)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run due rows until ``stop`` is set."""
        ctx = self.ctx
        while not stop.is_set():
            try:
                task = await ctx.queue.claim(ctx.clock.now())
            except _DB_ERRORS as exc:
                logger.warning("claiming a task failed (%s); retrying", type(exc).__name__)
                await wait_for(ctx, stop, ctx.settings.poll_interval_s)
                continue
            if task is None:
                await self._idle(stop)
                continue
            await self.execute(task)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Sleep until new work is announced (``wake``, also set on stop) or the next row is due."""
        ctx = self.ctx
        self.wake.clear()
        timeout = ctx.settings.poll_interval_s
        with contextlib.suppress(*_DB_ERRORS):
            due = await ctx.queue.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, (due - ctx.clock.now()).total_seconds()))
        if not stop.is_set():
            await wait_for(ctx, self.wake, timeout)

    async def _renew(self, task: Task) -> None:
        ctx = self.ctx
        while True:
            await ctx.clock.sleep(ctx.settings.lease_s / 3)
            with contextlib.suppress(*_DB_ERRORS):
                if not await ctx.queue.renew(task, ctx.clock.now()):
                    return

    async def execute(self, task: Task) -> None:
        """Run one claimed row to an outcome, in the trace of the row's first webhook (its lines and
        appends carry it, as the documents it appends do: ``DocumentLog``)."""
        with trace_context(task.trace_ids[0] if task.trace_ids else None, user_id=task.user_id):
            await self._execute(task)

    async def _execute(self, task: Task) -> None:
        ctx = self.ctx
        member = Member(task.user_id, task.whoop_user_id)
        run = Run()
        self.runs += 1
        renewer = asyncio.ensure_future(self._renew(task))
        try:
            status = await connections.status(ctx.pool, member.user_id)
            if status is None or status == "disconnected":
                logger.info(
                    "user %s is not connected: dropping %s %s", member.user_id, task.kind, task.resource_id
                )
                await self._drop(task, "disconnected")
            elif status == "needs_reauth":
                await ctx.queue.park(ctx.pool, member.user_id)
            else:
                await self.handlers[task.kind](ctx, task, member, run)
        except Exception as exc:  # noqa: BLE001 - every failure goes through the one policy below
            await self._failed(task, member, run, exc)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _failed(self, task: Task, member: Member, run: Run, exc: Exception) -> None:
        ctx = self.ctx
        outcome = task_failure(exc)
        now = ctx.clock.now()
        try:
            if outcome == "defer":
                if isinstance(exc, QuotaDeferred):
                    wait, errors = exc.wait_s, task.error_attempts
                else:
                    wait, errors = (
                        error_delay(task.error_attempts, ctx.settings.error_backoff_s),
                        task.error_attempts + 1,
                    )
                    logger.warning(
                        "user %s %s %s failed (%s: %s); again in %.0f s",
                        member.user_id,
                        task.kind,
                        task.resource_id,
                        type(exc).__name__,
                        exc,
                        wait,
                    )
                until = exc.until if isinstance(exc, QuotaDeferred) else None
                await ctx.queue.reschedule(
                    task,
                    due_at=until or now + timedelta(seconds=wait),  # rows refused together come due together
                    wants=run.left(task),
                    error_attempts=errors,
                    error=f"{type(exc).__name__}: {exc}",
                    keep_event_at=True,
                )
            elif outcome == "park":
                logger.warning("user %s must authorize again: their work is parked", member.user_id)
                await ctx.queue.reschedule(task, due_at=now, wants=run.left(task), keep_event_at=True)
                await ctx.queue.park(ctx.pool, member.user_id)
            else:
                if isinstance(exc, FetchError):
                    logger.error(
                        "user %s %s %s dead-lettered: %s", member.user_id, task.kind, task.resource_id, exc
                    )
                else:
                    logger.exception(
                        "user %s %s %s dead-lettered", member.user_id, task.kind, task.resource_id
                    )
                await self._dead_letter(task, exc)
                await self._drop(task, f"dead-lettered: {type(exc).__name__}")
        except Exception:  # the lease expires and the row runs again
            logger.exception("could not record the failure of task %s", task.task_id)

    async def _drop(self, task: Task, reason: str) -> None:
        """Forget the row; a backfill's job fails with it (it would never finish)."""
        ctx = self.ctx
        await ctx.queue.cancel(ctx.pool, task.user_id, task.kind, task.resource_id)
        if task.kind == "backfill":
            await fail_job(ctx.pool, str(task.payload.get("job_id")), reason)

    async def _dead_letter(self, task: Task, exc: Exception) -> None:
        """The event that caused the work to ``<its topic>.dlq``; a redriven one names its old letter."""
        origin = incoming_of(task.origin or {}, self.dead_letter_topic.removesuffix(DLQ_SUFFIX))
        again = "" if origin.redrive_of is None else f"redrive of {origin.redrive_of}: "
        redriven = () if origin.redrive_of is None else [(DLQ_REDRIVE_OF_HEADER, origin.redrive_of.encode())]
        await self._letters.send(
            origin,
            exc,
            reason=f"{again}{task.kind} {task.resource_id}: {exc}",
            key=record_key(task.user_id, task.kind, task.resource_id),
            headers=redriven,
        )
