"""Targeted reconciliation: finds members whose held data has a gap and enqueues only the reads it needs.

Every ``FETCHER_RECONCILE_CHECK_S`` each connected member is looked at through the fetcher's own
tables (``fetcher_sleep_cycles``, ``fetcher_resources``): no WHOOP call. The decision is
``processors.reconcile_plan.plan_checks``; this module gathers its inputs and carries it out:

- ``recovery``: a ``sleep`` work row wanting the recovery (one call through the sleep → cycle link);
- ``pending``: a ``sleep`` work row wanting the sleep and its recovery (two calls);
- ``sleep``: a ``sleep`` work row wanting the sleep and its two cycles (two calls);
- ``silent``: a ``reconcile`` task row reading one page of the sleep and workout collections
  since the member's last main sleep (``processors.reconcile.handle_reconcile``), whose
  follow-ups (recovery, cycles) are those of the full sweep;
- ``workout``: a ``reconcile`` task row reading one page of the workout collection over a cycle
  whose strain its known workouts do not explain;
- ``deleted``: the same read over a cycle whose strain its known workouts over-explain (a known
  workout was deleted): the read appends the deletion of what WHOOP no longer lists;
- ``nap``: a ``reconcile`` task row reading one page of the sleep collection between a main sleep
  whose need counts a nap and the main sleep before it.

All of them run at the reconciliation priority, below live webhooks and pending re-fetches. The
marks in ``fetcher_reconciliations.checks`` keep a read that found nothing from being repeated
before ``FETCHER_RECONCILE_RETRY_S``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson

from processors import reconcile_store
from processors.backfill import to_query_time
from processors.fetch_plan import WANT_RECOVERY, WANT_SLEEP
from processors.quota import Priority
from processors.reconcile_plan import (
    Check,
    CheckPolicy,
    CycleFact,
    MemberFacts,
    SleepFact,
    WorkoutFact,
    plan_checks,
    recent_checks,
)
from processors.work import WANT_CYCLES, Context

__all__ = ["policy_of", "schedule_checks"]

logger = logging.getLogger(__name__)

ORDER = ("sleep", "workout")
_READS = {
    "silent": ORDER,
    "workout": ("workout",),
    "deleted": ("workout",),
    "nap": ("sleep",),
}  # the collections each read pages
BATCH = (
    2000  # members checked per scan and transaction (the rest at the next scan); SKIP LOCKED: scanners share
)


def policy_of(ctx: Context) -> CheckPolicy:
    s = ctx.settings
    return CheckPolicy(
        recovery_grace=timedelta(seconds=s.reconcile_recovery_grace_s),
        silent_after=timedelta(seconds=s.reconcile_silent_after_s),
        retry_after=timedelta(seconds=s.reconcile_retry_s),
        lookback=timedelta(seconds=max(s.reconcile_silent_after_s, 86_400.0) * 2),
        rest_strain=s.reconcile_rest_strain,
        rest_floor_strain=s.reconcile_rest_floor_strain,
    )


async def schedule_checks(ctx: Context) -> dict[str, int]:
    """Look for gaps in every member due for a check; enqueue the targeted reads. Returns counts by kind."""
    now = ctx.clock.now()
    policy = policy_of(ctx)
    counts: dict[str, int] = defaultdict(int)
    async with ctx.pool.acquire() as db, db.transaction():
        due = await reconcile_store.claim_checks(db, now, ctx.settings.reconcile_check_s, BATCH)
        if not due:
            return {}
        users = [r["user_id"] for r in due]
        sleeps = await _sleeps(db, users, now - policy.lookback)
        cycles, workouts = await _days(db, users, now - policy.lookback)
        for row in due:
            facts = MemberFacts(
                user_id=row["user_id"],
                whoop_user_id=row["whoop_user_id"],
                connected_at=row["watched_since"],
                sleeps=sleeps.get(row["user_id"], []),
                checks=_marks(row["checks"]),
                cycles=cycles.get(row["user_id"], []),
                workouts=workouts.get(row["user_id"], []),
            )
            checks = plan_checks(facts, now, policy)
            for check in checks:
                await _enqueue(ctx, db, facts, check, now)
                counts[check.kind] += 1
            marks = recent_checks({**facts.checks, **{c.key: now for c in checks}}, now, policy)
            if checks or marks != facts.checks:
                await reconcile_store.store_marks(db, facts.user_id, marks, len(checks))
    if counts:
        logger.info("reconciliation: targeted reads %s (%d members checked)", dict(counts), len(due))
    return dict(counts)


async def _sleeps(db: Any, user_ids: list[str], since: datetime) -> dict[str, list[SleepFact]]:
    rows = await db.fetch(
        """
        SELECT l.user_id, l.sleep_id, l.cycle_id, l.nap, l.sleep_start, l.sleep_end, s.score_state,
               s.nap_need_ms, rec.resource_id IS NOT NULL AS has_recovery
        FROM fetcher_sleep_cycles l
        LEFT JOIN fetcher_resources s
          ON s.user_id = l.user_id AND s.resource_type = 'sleep' AND s.resource_id = l.sleep_id
        LEFT JOIN fetcher_resources rec
          ON rec.user_id = l.user_id AND rec.resource_type = 'recovery'
         AND rec.resource_id = l.cycle_id::text AND rec.deleted_at IS NULL
         AND rec.whoop_updated_at IS NOT NULL
        WHERE l.user_id = ANY($1::text[]) AND s.deleted_at IS NULL
          AND (l.sleep_end >= $2 OR (l.sleep_start IS NULL AND rec.resource_id IS NOT NULL))
        """,
        user_ids,
        since,
    )
    out: dict[str, list[SleepFact]] = defaultdict(list)
    for r in rows:
        out[r["user_id"]].append(
            SleepFact(
                sleep_id=r["sleep_id"],
                cycle_id=r["cycle_id"],
                nap=r["nap"],
                start=r["sleep_start"],
                end=r["sleep_end"],
                score_state=r["score_state"],
                has_recovery=r["has_recovery"],
                nap_need_ms=r["nap_need_ms"],
            )
        )
    return out


async def _days(
    db: Any, user_ids: list[str], since: datetime
) -> tuple[dict[str, list[CycleFact]], dict[str, list[WorkoutFact]]]:
    """The closed cycles (with their strain) and the workouts held since ``since``."""
    rows = await db.fetch(
        """
        SELECT user_id, resource_type, resource_id, record_start, record_end, strain
        FROM fetcher_resources
        WHERE user_id = ANY($1::text[]) AND deleted_at IS NULL AND record_start IS NOT NULL
          AND ((resource_type = 'cycle' AND record_end >= $2)
               OR (resource_type = 'workout' AND record_start >= $2 - interval '2 days'))
        """,
        user_ids,
        since,
    )
    cycles: dict[str, list[CycleFact]] = defaultdict(list)
    workouts: dict[str, list[WorkoutFact]] = defaultdict(list)
    for r in rows:
        if r["resource_type"] == "cycle":
            cycles[r["user_id"]].append(
                CycleFact(int(r["resource_id"]), r["record_start"], r["record_end"], r["strain"])
            )
        else:
            workouts[r["user_id"]].append(WorkoutFact(r["record_start"], r["strain"]))
    return cycles, workouts


def _marks(raw: Any) -> dict[str, datetime]:
    value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(value, dict):
        return {}
    return {str(k): datetime.fromisoformat(v) for k, v in value.items() if isinstance(v, str)}


async def _enqueue(ctx: Context, db: Any, facts: MemberFacts, check: Check, now: datetime) -> None:
    common: dict[str, Any] = {
        "user_id": facts.user_id,
        "whoop_user_id": facts.whoop_user_id,
        "priority": Priority.RECONCILE,
        "due_at": now,
    }
    if check.kind == "recovery":
        await ctx.queue.enqueue(
            db, kind="sleep", resource_id=check.resource_id, wants={WANT_RECOVERY}, **common
        )
    elif check.kind == "pending":
        await ctx.queue.enqueue(
            db, kind="sleep", resource_id=check.resource_id, wants={WANT_SLEEP, WANT_RECOVERY}, **common
        )
    elif check.kind == "sleep":
        await ctx.queue.enqueue(
            db, kind="sleep", resource_id=check.resource_id, wants={WANT_SLEEP, WANT_CYCLES}, **common
        )
    else:
        start = check.start or now
        await ctx.queue.enqueue(
            db,
            kind="reconcile",
            resource_id="silent" if check.kind == "silent" else check.key,
            payload={
                "types": list(_READS[check.kind]),
                "start": to_query_time(start),
                "end": to_query_time(check.end or now),
                "next_token": None,
                "calls": 0,
                "published": 0,
                "sweep": False,
            },
            **common,
        )
