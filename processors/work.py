"""The fetch work of one task row: a workout, or a sleep and its recovery (and the cycles it touches).

Each handler gets a claimed :class:`~processors.task_queue.Task` and finishes it itself: complete,
or reschedule (``PENDING_SCORE`` re-fetch with back-off at the re-fetch priority, 404 retries).
Before calling WHOOP it drops what a fetch that started after the newest merged event already
covered (duplicates and reorders cost nothing). ``Run.done`` records what is finished, so a run
cut short (no budget, WHOOP down) resumes with only the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from pydantic import JsonValue

from processors.clock import Clock
from processors.errors import WhoopBadResponse, WhoopNotFound
from processors.fetch_plan import (
    WANT_RECOVERY,
    WANT_SLEEP,
    WANT_WORKOUT,
    covered,
    cycles_query,
    is_main_sleep,
    is_pending,
    schedule_delay,
)
from processors.member_api import WhoopApi
from processors.quota import Priority
from processors.resources import DocumentLog, Item, Member, SleepLink
from processors.settings import FetcherSettings
from processors.task_queue import Task, TaskQueue

__all__ = ["WANT_CYCLES", "Context", "Run", "handle_sleep", "handle_workout"]

logger = logging.getLogger(__name__)

WANT_CYCLES = "cycles"
Json = dict[str, JsonValue]


@dataclass
class Context:
    """What every handler works with."""

    pool: asyncpg.Pool
    queue: TaskQueue
    log: DocumentLog
    api: WhoopApi
    clock: Clock
    settings: FetcherSettings


@dataclass
class Run:
    """Progress of one run of a task: wants finished so far, and wants the run found."""

    done: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)

    def left(self, task: Task) -> set[str]:
        """What a run cut short still owes."""
        return (set(task.wants) | self.added) - self.done


async def _finish(ctx: Context, task: Task, member: Member, resource_type: str) -> None:
    await ctx.log.record_traces(ctx.pool, member.user_id, resource_type, task.resource_id, task.trace_ids)
    await ctx.queue.complete(task)


async def _pending_again(
    ctx: Context, task: Task, member: Member, resource_type: str, wants: set[str]
) -> None:
    """Re-fetch later (PENDING_SCORE or a recovery not there yet), or give up after the schedule."""
    await ctx.log.record_traces(ctx.pool, member.user_id, resource_type, task.resource_id, task.trace_ids)
    delay = schedule_delay(task.pending_attempts, ctx.settings.pending_backoff_s)
    if delay is None:
        logger.info(
            "user %s %s %s still pending after %d re-fetches; reconciliation takes over",
            member.user_id,
            task.kind,
            task.resource_id,
            task.pending_attempts,
        )
        await ctx.queue.complete(task)
        return
    await ctx.queue.reschedule(
        task,
        due_at=ctx.clock.now() + timedelta(seconds=delay),
        wants=wants,
        priority=Priority.REFETCH,
        pending_attempts=task.pending_attempts + 1,
        not_found_attempts=0,
        error_attempts=0,
    )


async def _publish_fetched(ctx: Context, task: Task, member: Member, item: Item, started: datetime) -> None:
    """Append the document WHOOP answered for ``task``, with the task's cause and trace ids."""
    await ctx.log.publish(
        member, [item], fetch_started=started, caused_by=task.caused_by, trace_ids=task.trace_ids
    )


async def _not_found_again(ctx: Context, task: Task) -> bool:
    """Retry a 404 later; False when the retries are used up (then it counts as gone)."""
    delay = schedule_delay(task.not_found_attempts, ctx.settings.not_found_backoff_s)
    if delay is None:
        return False
    await ctx.queue.reschedule(
        task,
        due_at=ctx.clock.now() + timedelta(seconds=delay),
        not_found_attempts=task.not_found_attempts + 1,
        keep_event_at=True,
    )
    return True


async def handle_workout(ctx: Context, task: Task, member: Member, run: Run) -> None:
    """``GET /v2/activity/workout/{id}`` → the document; pending → re-fetch; 404 → retry, then deleted."""
    workout_id = task.resource_id
    if task.latest_event_at is not None:
        state = await ctx.log.state(member.user_id, "workout", workout_id)
        if state is not None and covered(task.latest_event_at, state.fetched_at, ctx.settings.clock_skew_s):
            await _finish(ctx, task, member, "workout")
            return
    started = ctx.clock.now()
    try:
        doc = await ctx.api.get(member, f"/activity/workout/{workout_id}", priority=task.priority)
    except WhoopNotFound:
        if await _not_found_again(ctx, task):
            return
        await ctx.log.publish(
            member, [Item("workout", workout_id)], fetch_started=started, caused_by=task.caused_by
        )
        await _finish(ctx, task, member, "workout")
        return
    _check_id(doc, "id", workout_id)
    await _publish_fetched(ctx, task, member, Item("workout", workout_id, doc), started)
    run.done.add(WANT_WORKOUT)
    if is_pending(doc):
        await _pending_again(ctx, task, member, "workout", {WANT_WORKOUT})
    else:
        await _finish(ctx, task, member, "workout")


def _check_id(doc: Json, field_name: str, expected: str) -> None:
    if str(doc.get(field_name, "")).lower() != expected.lower():
        raise WhoopBadResponse(f"WHOOP answered a document whose {field_name} is not {expected}")


def _link_of(doc: Json, sleep_id: str) -> SleepLink | None:
    cycle_id = doc.get("cycle_id")
    if not isinstance(cycle_id, int) or isinstance(cycle_id, bool):
        return None
    nap = doc.get("nap")
    start, end, offset = doc.get("start"), doc.get("end"), doc.get("timezone_offset")
    return SleepLink(
        sleep_id,
        cycle_id,
        nap if isinstance(nap, bool) else None,
        start if isinstance(start, str) else None,
        end if isinstance(end, str) else None,
        offset if isinstance(offset, str) else None,
    )


async def _sleep_wants(ctx: Context, task: Task, member: Member, link: SleepLink | None) -> set[str]:
    """The task's wants less what a fetch made after its latest event already covers."""
    wants = set(task.wants)
    if task.latest_event_at is None:
        return wants
    skew = ctx.settings.clock_skew_s
    state = await ctx.log.state(member.user_id, "sleep", task.resource_id)
    if state is not None and covered(task.latest_event_at, state.fetched_at, skew):
        wants.discard(WANT_SLEEP)
    if link is not None:
        rec = await ctx.log.state(member.user_id, "recovery", str(link.cycle_id))
        if rec is not None and covered(task.latest_event_at, rec.fetched_at, skew):
            wants.discard(WANT_RECOVERY)
    return wants


async def _fetch_recovery(ctx: Context, task: Task, member: Member, link: SleepLink) -> bool:
    """Fetch and publish the recovery of the sleep's cycle; False while it is missing or pending."""
    started = ctx.clock.now()
    try:
        recovery = await ctx.api.get(member, f"/cycle/{link.cycle_id}/recovery", priority=task.priority)
    except WhoopNotFound:
        return False  # not there yet (§10.6): later
    item = Item("recovery", str(link.cycle_id), recovery, link.recovery_context())
    await _publish_fetched(ctx, task, member, item, started)
    return not is_pending(recovery)


async def handle_sleep(ctx: Context, task: Task, member: Member, run: Run) -> None:
    """A sleep and/or its recovery (§10.6), and the two cycles a newly seen main sleep touches."""
    sleep_id = task.resource_id
    link = await ctx.log.sleep_link(member.user_id, sleep_id)
    wants = await _sleep_wants(ctx, task, member, link)
    run.done.update(task.wants - wants)
    remaining: set[str] = set()
    sleep_doc: Json | None = None
    if WANT_SLEEP in wants or (WANT_RECOVERY in wants and link is None):
        started = ctx.clock.now()
        try:
            sleep_doc = await ctx.api.get(member, f"/activity/sleep/{sleep_id}", priority=task.priority)
        except WhoopNotFound:
            if await _not_found_again(ctx, task):
                return
            if WANT_SLEEP in wants:  # gone: the sleep, and the recovery based on it
                gone = [Item("sleep", sleep_id)]
                if link is not None and link.nap is not True:
                    gone.append(Item("recovery", str(link.cycle_id), context={"sleep_id": sleep_id}))
                await ctx.log.publish(member, gone, fetch_started=started, caused_by=task.caused_by)
            await _finish(ctx, task, member, "sleep")
            return
        _check_id(sleep_doc, "id", sleep_id)
        first_seen = link is None
        await _publish_fetched(ctx, task, member, Item("sleep", sleep_id, sleep_doc), started)
        run.done.add(WANT_SLEEP)
        link = _link_of(sleep_doc, sleep_id)
        if is_pending(sleep_doc):
            remaining.add(WANT_SLEEP)
            if is_main_sleep(sleep_doc):
                remaining.add(WANT_RECOVERY)  # scored together with the sleep
        if first_seen and is_main_sleep(sleep_doc):
            wants.add(WANT_CYCLES)
            run.added.add(WANT_CYCLES)
    if WANT_CYCLES in wants and link is not None and link.sleep_start is not None:
        await _cycles(ctx, task, member, link.sleep_start)
        run.done.add(WANT_CYCLES)
    if WANT_RECOVERY in wants and link is not None and link.nap is not True:
        if sleep_doc is not None and is_pending(sleep_doc):
            pass  # the recovery is pending with its sleep: fetched when the sleep is scored
        elif not await _fetch_recovery(ctx, task, member, link):
            remaining.add(WANT_RECOVERY)
        run.done.add(WANT_RECOVERY)
    if remaining:
        await _pending_again(ctx, task, member, "sleep", remaining)
    else:
        await _finish(ctx, task, member, "sleep")


async def _cycles(ctx: Context, task: Task, member: Member, sleep_start: str) -> None:
    """The cycle a main sleep closes and the one it opens: one collection call, two documents."""
    query = cycles_query({"start": sleep_start})
    if query is None:
        return
    started = ctx.clock.now()
    page = await ctx.api.get(member, "/cycle", priority=task.priority, params=query)
    records = page.get("records")
    items = []
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict) and isinstance(record.get("id"), int):
            items.append(Item("cycle", str(record["id"]), record))
    await ctx.log.publish(member, items, fetch_started=started, caused_by=task.caused_by)
