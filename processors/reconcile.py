"""Reconciliation: a periodic, cheap sweep per connected member that catches what webhooks missed.

WHOOP says webhooks can be missed (``whoop-api-v2.md`` §10.5) and cycles have no webhook at all.
Every ``FETCHER_RECONCILE_INTERVAL_S`` each connected member gets one task row at the
reconciliation priority that reads the four collections over the last
``FETCHER_RECONCILE_LOOKBACK_S`` (sleeps first, so recoveries are dated by their sleep): usually
one page each, four calls per member per sweep. Collection pages carry whole documents, so nothing
is fetched by id: each document is appended only when it differs from what was last appended for
that resource (``updated_at`` / ``score_state``), so a sweep that finds nothing new appends nothing.

The sweep times live in ``fetcher_reconciliations``: a member's first sweep is spread at random over
one interval (no thundering herd after a deploy); ``last_finished_at`` says "checked up to here".
Any fetcher process may run the scan: claiming due members is one ``UPDATE ... RETURNING``, and
the task rows merge, so two scanners never double the work.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from processors.backfill import COLLECTIONS, documents, resource_type_of, to_query_time
from processors.quota import Priority
from processors.resources import Member
from processors.task_queue import Task
from processors.work import Context, Run

__all__ = ["ORDER", "handle_reconcile", "schedule_reconciliations"]

logger = logging.getLogger(__name__)

ORDER = ("sleep", "recovery", "cycle", "workout")


async def schedule_reconciliations(ctx: Context) -> int:
    """Enqueue a sweep for every connected member that is due; returns how many."""
    now = ctx.clock.now()
    interval = ctx.settings.reconcile_interval_s
    async with ctx.pool.acquire() as db, db.transaction():
        await db.execute(
            """
            INSERT INTO fetcher_reconciliations (user_id, next_due_at)
            SELECT c.user_id, $1::timestamptz + make_interval(secs => random() * $2::float8)
            FROM whoop_connections c WHERE c.status = 'connected'
            ON CONFLICT (user_id) DO NOTHING
            """,
            now,
            interval,
        )
        due = await db.fetch(
            """
            UPDATE fetcher_reconciliations r
            SET next_due_at = $1::timestamptz + make_interval(secs => $2::float8), last_started_at = $1,
                updated_at = now()
            FROM whoop_connections c
            WHERE c.user_id = r.user_id AND c.status = 'connected' AND r.next_due_at <= $1::timestamptz
            RETURNING r.user_id, c.whoop_user_id
            """,
            now,
            interval,
        )
        start = to_query_time(now - timedelta(seconds=ctx.settings.reconcile_lookback_s))
        for row in due:
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
        logger.info("reconciliation due for %d members", len(due))
    return len(due)


async def handle_reconcile(ctx: Context, task: Task, member: Member, run: Run) -> None:
    """One page of the member's sweep; the row runs again until every collection is read."""
    payload = dict(task.payload)
    types = [resource_type_of(t) for t in payload.get("types") or []]
    if not types:
        await ctx.queue.complete(task)
        return
    resource_type = types[0]
    params: dict[str, str | int] = {
        "start": str(payload["start"]),
        "end": str(payload["end"]),
        "limit": ctx.settings.backfill_page_size,
    }
    if payload.get("next_token"):
        params["nextToken"] = str(payload["next_token"])
    started = ctx.clock.now()
    page = await ctx.api.get(member, COLLECTIONS[resource_type], priority=task.priority, params=params)
    raw = page.get("records")
    records = [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
    items = await documents(ctx, member, resource_type, records)
    appended = await ctx.log.publish(member, items, fetch_started=started, caused_by=task.caused_by)
    next_token = page.get("next_token")
    more = (
        bool(next_token) and isinstance(next_token, str) and len(records) >= ctx.settings.backfill_page_size
    )
    payload.update(
        calls=int(payload.get("calls", 0)) + 1,
        published=int(payload.get("published", 0)) + len(appended),
        next_token=next_token if more else None,
        types=types if more else types[1:],
    )
    if appended:
        logger.info(
            "reconciliation of user %s found %d %s documents webhooks missed",
            member.user_id,
            len(appended),
            resource_type,
        )
    if payload["types"]:
        await ctx.queue.reschedule(task, due_at=ctx.clock.now(), payload=payload, error_attempts=0)
        return
    await ctx.pool.execute(
        """
        UPDATE fetcher_reconciliations SET last_finished_at = $2, last_calls = $3, last_published = $4,
            runs = runs + 1, updated_at = now()
        WHERE user_id = $1
        """,
        member.user_id,
        ctx.clock.now(),
        payload["calls"],
        payload["published"],
    )
    await ctx.queue.complete(task)
