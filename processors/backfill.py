"""Backfill: page through WHOOP's collections over a requested range, with progress anyone can read.

A ``BackfillRequested`` (on connect, or a pull) becomes one task row per collection at the
backfill priority (the lowest: it only uses budget the other work leaves). Each run of the row
fetches one page (``limit=25``, ``start``/``end`` of the request, ``nextToken`` from the last page,
§7), appends the page's documents and stores the cursor in the row, so a crash resumes at the
page it was on. A page shorter than the limit, or one without ``next_token``, ends the collection.
Recoveries run after the sleeps (so each recovery is dated by its stored sleep). A full page costs
one call for 25 documents: 0.04 calls per record.

Progress: ``fetcher_backfill_progress`` (one row per job and collection: status, pages, records,
calls) and the job's row in ``pull_jobs`` (status ``running``/``done``, ``progress`` = the same
figures per collection), which the edge's pull-status route serves.

Fairness: each page records when its member was served (``fetcher_backfill_turns``); workers take
backfill work from the member served least recently (``TaskQueue.claim``), so members take turns
page by page and a member's long pull delays another's by about one page per member waiting.

A job that is no longer active (``failed``: superseded by a reconnect, stale, or its member gone;
or already ``done``) costs no more calls: its rows are dropped when they come up. A job whose rows
the fetcher drops (member disconnected, a dead letter) is marked ``failed``, so it never blocks the
member's next pull (the edge allows one active pull per member).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast, get_args

from pydantic import JsonValue

from infra import erasure_gate, pull_jobs
from infra.vault import Executor
from processors.fetch_plan import BackfillStage, StartBackfill
from processors.quota import Priority
from processors.resources import Item, Member, resource_id_of
from processors.task_queue import Task, TaskQueue
from processors.work import Context, Run
from schemas.records import ResourceType

__all__ = [
    "COLLECTIONS",
    "BackfillTotals",
    "documents",
    "drop_member_backfills",
    "end_turn",
    "fail_job",
    "handle_backfill",
    "page_params",
    "progress_totals",
    "resource_type_of",
    "start_backfill",
    "to_query_time",
]

logger = logging.getLogger(__name__)

COLLECTIONS = {
    "cycle": "/cycle",
    "sleep": "/activity/sleep",
    "recovery": "/recovery",
    "workout": "/activity/workout",
}


async def _sync_pull_job(db: Executor, job_id: str) -> None:
    """Report the job's figures per collection to its ``pull_jobs`` row (``done`` once all are)."""
    rows = await db.fetch(
        "SELECT resource_type, status, pages, records, calls FROM fetcher_backfill_progress "
        "WHERE job_id = $1",
        job_id,
    )
    figures = ("status", "pages", "records", "calls")
    progress = {r["resource_type"]: {name: r[name] for name in figures} for r in rows}
    done = bool(rows) and all(r["status"] == "done" for r in rows)
    await pull_jobs.record_progress(db, job_id, done, progress)


@dataclass(frozen=True)
class BackfillTotals:
    """A job's figures over its collections: how many are done, pages and records fetched so far."""

    types_done: int
    pages: int
    records: int


async def progress_totals(db: Executor, job_ids: Sequence[str]) -> dict[str, BackfillTotals]:
    """The totals of each of ``job_ids`` that has progress rows (``wear status``)."""
    rows = await db.fetch(
        "SELECT job_id, count(*) FILTER (WHERE status = 'done') AS types_done, "
        "coalesce(sum(pages), 0) AS pages, coalesce(sum(records), 0) AS records "
        "FROM fetcher_backfill_progress WHERE job_id = ANY($1::text[]) GROUP BY job_id",
        list(job_ids),
    )
    return {
        r["job_id"]: BackfillTotals(int(r["types_done"]), int(r["pages"]), int(r["records"])) for r in rows
    }


def to_query_time(moment: datetime) -> str:
    """A WHOOP query datetime: RFC 3339 UTC with milliseconds (§3)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def page_params(payload: Mapping[str, Any], page_size: int) -> dict[str, str | int]:
    """The query of one collection page of a backfill or reconciliation task: its time range, the
    page size and, after the first page, WHOOP's ``nextToken``."""
    params: dict[str, str | int] = {
        "start": str(payload["start"]),
        "end": str(payload["end"]),
        "limit": page_size,
    }
    if payload.get("next_token"):
        params["nextToken"] = str(payload["next_token"])
    return params


async def _enqueue_stage(
    db: Executor,
    queue: TaskQueue,
    member: Member,
    job_id: str,
    stage: BackfillStage,
    start: str,
    end: str,
    now: datetime,
    caused_by: Sequence[str],
    origin: dict[str, Any] | None,
) -> None:
    await queue.enqueue(
        db,
        user_id=member.user_id,
        whoop_user_id=member.whoop_user_id,
        kind="backfill",
        resource_id=f"{job_id}:{stage.resource_type}",
        priority=Priority.BACKFILL,
        due_at=now,
        caused_by=caused_by,
        payload={
            "job_id": job_id,
            "resource_type": stage.resource_type,
            "start": start,
            "end": end,
            "then": list(stage.then),
            "next_token": None,
            "pages": 0,
            "records": 0,
        },
        origin=origin,
    )


async def fail_job(db: Executor, job_id: str, reason: str) -> None:
    """Mark an active job ``failed`` (its work was dropped), so it no longer blocks the member's pulls."""
    await pull_jobs.fail_active(db, [job_id], reason[:500])


async def end_turn(db: Executor, user_id: str, served_at: datetime) -> None:
    """The member's backfill fetched a page: the other members' backfills go first now."""
    if not await erasure_gate.admit(db, [user_id]):
        return  # the member's erasure has begun: nothing is written for them
    await db.execute(
        "INSERT INTO fetcher_backfill_turns (user_id, served_at) VALUES ($1, $2) ON CONFLICT (user_id) "
        "DO UPDATE SET served_at = GREATEST(fetcher_backfill_turns.served_at, EXCLUDED.served_at)",
        user_id,
        served_at,
    )


async def drop_member_backfills(db: Executor, queue: TaskQueue, user_id: str, reason: str) -> None:
    """Before a member's rows are dropped: fail the jobs those rows belong to, forget their turn."""
    await pull_jobs.fail_active(db, await queue.backfill_job_ids(db, user_id), reason)
    await db.execute("DELETE FROM fetcher_backfill_turns WHERE user_id = $1", user_id)


async def start_backfill(
    db: Executor,
    queue: TaskQueue,
    member: Member,
    plan: StartBackfill,
    now: datetime,
    caused_by: Sequence[str],
    origin: dict[str, Any] | None,
) -> bool:
    """Record the job's progress rows and enqueue its first stages (inside the caller's transaction).

    False, and nothing queued, when the job is already over (superseded, or a redelivered request).
    """
    if await pull_jobs.ended(db, plan.job_id) is not None:
        return False
    if not await erasure_gate.admit(db, [member.user_id]):
        return False  # the member's erasure has begun
    types = [s.resource_type for s in plan.stages] + [t for s in plan.stages for t in s.then]
    await db.executemany(
        """
        INSERT INTO fetcher_backfill_progress (job_id, user_id, resource_type, range_start, range_end)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, resource_type) DO NOTHING
        """,
        [(plan.job_id, member.user_id, t, plan.start, plan.end) for t in types],
    )
    start, end = to_query_time(plan.start), to_query_time(plan.end)
    for stage in plan.stages:
        await _enqueue_stage(db, queue, member, plan.job_id, stage, start, end, now, caused_by, origin)
    await _sync_pull_job(db, plan.job_id)
    return True


async def _fail_unfinished(db: Executor, job_id: str) -> None:
    """The job's collections not done yet are ``failed`` (the job ended: they will not run)."""
    await db.execute(
        "UPDATE fetcher_backfill_progress SET status = 'failed', updated_at = now() "
        "WHERE job_id = $1 AND status <> 'done'",
        job_id,
    )


async def _mark_running(db: Executor, job_id: str, resource_type: str, now: datetime) -> None:
    """The collection's first page is being fetched (``queued`` → ``running``)."""
    await db.execute(
        "UPDATE fetcher_backfill_progress SET status = 'running', started_at = COALESCE(started_at, $3), "
        "updated_at = now() WHERE job_id = $1 AND resource_type = $2 AND status = 'queued'",
        job_id,
        resource_type,
        now,
    )


async def _record_page(
    db: Executor, job_id: str, resource_type: str, records: int, more: bool, now: datetime
) -> None:
    """One more page (one call) of the collection; without ``more``, the collection is ``done``."""
    await db.execute(
        """
        UPDATE fetcher_backfill_progress SET pages = pages + 1, records = records + $3, calls = calls + 1,
            status = CASE WHEN $4 THEN status ELSE 'done' END,
            finished_at = CASE WHEN $4 THEN finished_at ELSE $5 END, updated_at = now()
        WHERE job_id = $1 AND resource_type = $2
        """,
        job_id,
        resource_type,
        records,
        more,
        now,
    )


async def handle_backfill(ctx: Context, task: Task, member: Member, run: Run) -> None:
    """Fetch the next page of one collection of one job."""
    payload = dict(task.payload)
    job_id, resource_type = str(payload["job_id"]), resource_type_of(payload["resource_type"])
    ended = await pull_jobs.ended(ctx.pool, job_id)
    if ended is not None:
        logger.info("backfill %s of user %s is %s: %s dropped", job_id, member.user_id, ended, resource_type)
        await _fail_unfinished(ctx.pool, job_id)  # this collection, and those that were to come after it
        await ctx.queue.complete(task)
        return
    params = page_params(payload, ctx.settings.backfill_page_size)
    await _mark_running(ctx.pool, job_id, resource_type, ctx.clock.now())
    started = ctx.clock.now()
    page = await ctx.api.get(member, COLLECTIONS[resource_type], priority=task.priority, params=params)
    records = [r for r in _records(page) if isinstance(r, dict)]
    items = await documents(ctx, member, resource_type, records)
    await ctx.log.publish(member, items, fetch_started=started, caused_by=task.caused_by)
    next_token = page.get("next_token")
    more = (
        bool(next_token) and isinstance(next_token, str) and len(records) >= ctx.settings.backfill_page_size
    )
    payload.update(
        next_token=next_token if more else None,
        pages=int(payload.get("pages", 0)) + 1,
        records=int(payload.get("records", 0)) + len(items),
    )
    async with ctx.pool.acquire() as db, db.transaction():
        await _record_page(db, job_id, resource_type, len(items), more, ctx.clock.now())
        if not more:
            for then in payload.get("then") or []:
                await _enqueue_stage(
                    db,
                    ctx.queue,
                    member,
                    job_id,
                    BackfillStage(then),
                    str(payload["start"]),
                    str(payload["end"]),
                    ctx.clock.now(),
                    task.caused_by,
                    dict(task.origin) if task.origin else None,
                )
        await _sync_pull_job(db, job_id)
        await end_turn(db, member.user_id, ctx.clock.now())
    if more:
        await ctx.queue.reschedule(task, due_at=ctx.clock.now(), payload=payload, error_attempts=0)
    else:
        logger.info(
            "backfill %s of user %s: %s done (%s pages, %s records)",
            job_id,
            member.user_id,
            resource_type,
            payload["pages"],
            payload["records"],
        )
        await ctx.queue.complete(task)


def resource_type_of(value: object) -> ResourceType:
    """A collection name from a payload; ValueError when it is not one."""
    if value not in get_args(ResourceType):
        raise ValueError(f"not a WHOOP collection: {value!r}")
    return cast(ResourceType, value)


def _records(page: dict[str, JsonValue]) -> list[JsonValue]:
    records = page.get("records")
    return records if isinstance(records, list) else []


async def documents(
    ctx: Context, member: Member, resource_type: ResourceType, records: Sequence[dict[str, JsonValue]]
) -> list[Item]:
    """The items of a collection page; recoveries carry their sleep (from the link) in ``context``."""
    links = {}
    if resource_type == "recovery":
        sleep_ids = [str(r["sleep_id"]) for r in records if isinstance(r.get("sleep_id"), str)]
        links = await ctx.log.sleep_links(member.user_id, sleep_ids)
    items = []
    for record in records:
        try:
            resource_id = resource_id_of(resource_type, record)
        except ValueError:
            logger.warning("user %s: a %s record without its id was skipped", member.user_id, resource_type)
            continue
        context: dict[str, JsonValue] = {}
        if resource_type == "recovery":
            link = links.get(str(record.get("sleep_id")))
            context = link.recovery_context() if link is not None else {}
        items.append(Item(resource_type, resource_id, record, context))
    return items
