"""Reconciliation: catches what webhooks missed, spending WHOOP calls only where a miss is likely.

WHOOP says webhooks can be missed (``whoop-api-v2.md`` §10.5) and cycles have no webhook at all.
Two mechanisms, both at the reconciliation priority (below live webhooks and pending re-fetches):

- **Targeted reads** (``processors.reconcile_checks``, decided by ``processors.reconcile_plan``):
  every ``FETCHER_RECONCILE_CHECK_S`` each member's held data is checked against WHOOP's data
  model (every day has a cycle, a main sleep and a recovery; a scored sleep is followed by its
  recovery; a cycle's strain is its workouts' load plus the day's rest; a nap lowers the next
  sleep's need) in the fetcher's own tables. A complete, consistent member costs no call; a gap
  costs the one read that fills it (a recovery, a sleep, a page of workouts over a cycle, a page
  of sleeps before a sleep, or one page of each for a day without any main sleep). A cycle whose
  strain its known workouts over-explain lost one of them: the page of workouts over it finds which
  (below: what we hold that WHOOP no longer lists). A collection read that found nothing is counted
  (``targeted_empty``).
- **The slow full sweep** (this module), the safety net for what no gap reveals (a workout, or a
  deleted one, too light to move its cycle's strain out of the resting band): every
  ``FETCHER_RECONCILE_INTERVAL_S`` (two weeks by default) each connected member gets one task row
  reading the sleep and workout collections over the last ``FETCHER_RECONCILE_LOOKBACK_S``, usually
  one page each. Members are
  spread evenly over the period (a member's first sweep is placed at random in it: no thundering
  herd after a deploy).

Collection pages carry whole documents, so nothing is fetched by id: a document is appended only
when it differs from what was last appended for that resource (``updated_at`` / ``score_state``),
so a read that finds nothing new appends nothing and costs nothing more. What a read finds, it
completes like the webhook path would: a main sleep the webhooks missed gets a follow-up work row
for its recovery (one call, through the sleep → cycle link) and, when it was never seen, for the
two cycles it closes and opens (one call). A record we hold in the read's window that WHOOP no
longer lists was deleted while its ``*.deleted`` webhook was lost: its deletion is appended (a
sleep's with its recovery's).

The times live in ``fetcher_reconciliations`` (owned by ``processors.reconcile_store``):
``next_due_at`` (the sweep), ``next_check_at`` and ``checks`` (the targeted reads);
``last_finished_at`` says "swept up to here". Any fetcher
process may run the scan: claiming due members is one ``UPDATE ... RETURNING``, and the task
rows merge, so two scanners never double the work.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from processors import reconcile_store
from processors.backfill import COLLECTIONS, documents, page_params, resource_type_of, to_query_time
from processors.fetch_plan import WANT_RECOVERY, is_main_sleep
from processors.quota import Priority
from processors.reconcile_checks import schedule_checks
from processors.reconcile_plan import RECORD_SPAN
from processors.resources import Item, Member, SleepLink
from processors.task_queue import Task
from processors.work import WANT_CYCLES, Context, Run
from schemas.records import ResourceType

__all__ = ["ORDER", "handle_reconcile", "schedule_reconciliations"]

logger = logging.getLogger(__name__)

ORDER = ("sleep", "workout")


async def schedule_reconciliations(ctx: Context) -> int:
    """Enqueue a full sweep for every connected member that is due, and the targeted reads of the
    members with a gap; returns how many sweeps and targeted reads were enqueued."""
    now = ctx.clock.now()
    interval = ctx.settings.reconcile_interval_s
    async with ctx.pool.acquire() as db, db.transaction():
        await reconcile_store.enrol(db, now, interval)
        due = await reconcile_store.claim_sweeps(db, now, interval)
        lookback = now - timedelta(seconds=ctx.settings.reconcile_lookback_s)
        for row in due:
            # what happened before the fetcher watched the member is the backfill's, not the sweep's
            watched: datetime | None = row["watched_since"]
            start = to_query_time(lookback if watched is None else max(lookback, watched - RECORD_SPAN))
            await ctx.queue.enqueue(
                db,
                user_id=row["user_id"],
                whoop_user_id=row["whoop_user_id"],
                kind="reconcile",
                resource_id="collections",
                priority=Priority.RECONCILE,
                due_at=now,
                payload={
                    "types": list(ORDER),
                    "start": start,
                    "end": to_query_time(now),
                    "next_token": None,
                    "calls": 0,
                    "published": 0,
                },
            )
    if due:
        logger.info("full reconciliation sweep due for %d members", len(due))
    targeted = await schedule_checks(ctx)
    return len(due) + sum(targeted.values())


async def handle_reconcile(ctx: Context, task: Task, member: Member, run: Run) -> None:
    """One page of the member's sweep; the row runs again until every collection is read."""
    payload = dict(task.payload)
    types = [resource_type_of(t) for t in payload.get("types") or []]
    if not types:
        await ctx.queue.complete(task)
        return
    resource_type = types[0]
    params = page_params(payload, ctx.settings.backfill_page_size)
    started = ctx.clock.now()
    page = await ctx.api.get(member, COLLECTIONS[resource_type], priority=task.priority, params=params)
    raw = page.get("records")
    records = [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
    items = await documents(ctx, member, resource_type, records)
    known = (
        await ctx.log.sleep_links(member.user_id, [i.resource_id for i in items])
        if resource_type == "sleep"
        else {}
    )
    appended = await ctx.log.publish(member, items, fetch_started=started, caused_by=task.caused_by)
    followed = await _follow_up(ctx, member, appended, known)
    next_token = page.get("next_token")
    more = (
        bool(next_token) and isinstance(next_token, str) and len(records) >= ctx.settings.backfill_page_size
    )
    seen = [*payload.get("seen", []), *(i.resource_id for i in items)]
    deleted = 0 if more else await _deletions(ctx, member, resource_type, payload, set(seen), task.caused_by)
    payload.update(
        calls=int(payload.get("calls", 0)) + 1,
        published=int(payload.get("published", 0)) + len(appended) + deleted,
        next_token=next_token if more else None,
        types=types if more else types[1:],
        seen=seen if more else [],
    )
    if appended or deleted:
        logger.info(
            "reconciliation of user %s: %d %s documents and %d deletions webhooks missed (%d follow-ups)",
            member.user_id,
            len(appended),
            resource_type,
            deleted,
            followed,
        )
    if payload["types"]:
        await ctx.queue.reschedule(task, due_at=ctx.clock.now(), payload=payload, error_attempts=0)
        return
    if payload.get("sweep") is False:  # a targeted read (a silent member, a cycle, a sleep), not the sweep
        if not payload["published"]:
            await reconcile_store.count_empty_read(ctx.pool, member.user_id)
        await ctx.queue.complete(task)
        return
    await reconcile_store.finish_sweep(
        ctx.pool, member.user_id, ctx.clock.now(), int(payload["calls"]), int(payload["published"])
    )
    await ctx.queue.complete(task)


async def _follow_up(ctx: Context, member: Member, appended: list[Item], known: dict[str, SleepLink]) -> int:
    """A main sleep the webhooks missed: its recovery (and, if new, its two cycles) as work rows."""
    count = 0
    for item in appended:
        if item.resource_type != "sleep" or item.document is None or not is_main_sleep(item.document):
            continue
        wants = {WANT_RECOVERY} if item.resource_id in known else {WANT_RECOVERY, WANT_CYCLES}
        await ctx.queue.enqueue(
            ctx.pool,
            user_id=member.user_id,
            whoop_user_id=member.whoop_user_id,
            kind="sleep",
            resource_id=item.resource_id,
            wants=wants,
            priority=Priority.RECONCILE,
            due_at=ctx.clock.now(),
        )
        count += 1
    return count


async def _deletions(
    ctx: Context,
    member: Member,
    resource_type: ResourceType,
    payload: dict[str, Any],
    seen: set[str],
    caused_by: tuple[str, ...],
) -> int:
    """What we hold in the sweep's window that WHOOP no longer lists was deleted: append the deletions."""
    start, end = _instant(str(payload["start"])), _instant(str(payload["end"]))
    gone = await ctx.log.live_in_window(member.user_id, resource_type, start, end, end) - seen
    if not gone:
        return 0
    items = [Item(resource_type, resource_id) for resource_id in sorted(gone)]
    if resource_type == "sleep":
        links = await ctx.log.sleep_links(member.user_id, sorted(gone))
        items += [
            Item("recovery", str(link.cycle_id), context={"sleep_id": sleep_id})
            for sleep_id, link in links.items()
            if link.nap is not True
        ]
    appended = await ctx.log.publish(member, items, fetch_started=ctx.clock.now(), caused_by=caused_by)
    for item in items:
        if item.resource_type != "recovery":
            await ctx.queue.cancel(ctx.pool, member.user_id, item.resource_type, item.resource_id)
    return len(appended)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
