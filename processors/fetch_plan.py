"""What to fetch, and what to do next: pure decisions of the fetcher (no I/O, no clock).

``plan_webhook`` follows ``whoop-api-v2.md`` §10.6 per event type:

* ``workout.updated`` → fetch the workout by id; ``sleep.updated`` → fetch the sleep by id;
* ``recovery.updated`` (its id is the *sleep* UUID) → the sleep's work row wants its recovery:
  ``GET /v2/cycle/{cycle_id}/recovery`` with the cycle from our own sleep → cycle link (one call),
  or from ``GET /v2/activity/sleep/{id}`` first when the sleep was never seen;
* ``workout.deleted`` / ``sleep.deleted`` → deletion documents, no call (a sleep's recovery goes with it);
* ``recovery.deleted`` → resolved through the stored sleep → cycle link (the sleep is gone at WHOOP).

A sleep and its recovery share one work row (key: the sleep id), so ``sleep.updated`` and
``recovery.updated`` of one change cost one row and, with the link known, two calls for two documents.

``plan_connection`` maps the connection lifecycle: a backfill request becomes one job per
collection (recoveries after sleeps, so each recovery is dated by its stored sleep); a revoked
connection parks the member's work, a reconnect resumes it, a disconnect drops it.

The rest decides what follows a fetch: re-fetch schedules (``PENDING_SCORE``, 404 on ``*.updated``,
WHOOP down), whether an event is covered by a fetch that started after it, and the one failure
policy (``task_failure``: defer, park or dead-letter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import JsonValue

from infra.appender import AppendFailed
from processors.errors import NeedsReauth, WhoopUnauthorized
from schemas.events import (
    BackfillRequested,
    ConnectionRevoked,
    Envelope,
    UserConnected,
    UserDisconnected,
    UserErased,
    WebhookReceived,
)

__all__ = [
    "WANT_RECOVERY",
    "WANT_SLEEP",
    "WANT_WORKOUT",
    "BackfillStage",
    "Delete",
    "DeleteRecovery",
    "Drop",
    "Fetch",
    "Ignore",
    "Park",
    "Reject",
    "Resume",
    "StartBackfill",
    "backfill_stages",
    "covered",
    "cycles_query",
    "error_delay",
    "is_main_sleep",
    "is_pending",
    "plan_connection",
    "plan_webhook",
    "schedule_delay",
    "task_failure",
]

WANT_SLEEP = "sleep"
WANT_RECOVERY = "recovery"
WANT_WORKOUT = "workout"
COLLECTION_ORDER = ("sleep", "cycle", "workout", "recovery")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Fetch:
    """Enqueue (or merge into) the work row of one resource."""

    kind: Literal["workout", "sleep"]
    resource_id: str
    wants: frozenset[str]


@dataclass(frozen=True)
class Delete:
    """Append a deletion document (a sleep's also deletes the recovery linked to it)."""

    resource_type: Literal["workout", "sleep"]
    resource_id: str


@dataclass(frozen=True)
class DeleteRecovery:
    """Append the deletion of the recovery based on this sleep (resolved through the link)."""

    sleep_id: str


@dataclass(frozen=True)
class Reject:
    """The event cannot be acted on: it goes to the dead-letter topic."""

    reason: str


@dataclass(frozen=True)
class Ignore:
    """Nothing to do (logged)."""

    reason: str


@dataclass(frozen=True)
class BackfillStage:
    """One collection of a backfill job, and the collections to start once it is done."""

    resource_type: Literal["cycle", "sleep", "recovery", "workout"]
    then: tuple[Literal["cycle", "sleep", "recovery", "workout"], ...] = ()


@dataclass(frozen=True)
class StartBackfill:
    """Page through these collections over ``[start, end)`` for the pull job ``job_id``."""

    job_id: str
    stages: tuple[BackfillStage, ...]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Park:
    """The member must authorize again: keep their work until then."""

    reason: str


@dataclass(frozen=True)
class Resume:
    """The member (re)connected: parked work is due again."""


@dataclass(frozen=True)
class Drop:
    """The member disconnected: forget their queued work."""


WebhookPlan = Fetch | Delete | DeleteRecovery | Reject
ConnectionPlan = StartBackfill | Park | Resume | Drop | Ignore


def plan_webhook(event: WebhookReceived) -> WebhookPlan:
    """What a verified WHOOP webhook asks of the fetcher (§10.6)."""
    ident = event.resource_id
    if not _UUID.match(ident):
        return Reject(f"{event.whoop_event_type}: id {ident[:64]!r} is not a v2 UUID")
    ident = ident.lower()
    match event.whoop_event_type:
        case "workout.updated":
            return Fetch("workout", ident, frozenset({WANT_WORKOUT}))
        case "sleep.updated":
            return Fetch("sleep", ident, frozenset({WANT_SLEEP}))
        case "recovery.updated":
            return Fetch("sleep", ident, frozenset({WANT_RECOVERY}))
        case "workout.deleted":
            return Delete("workout", ident)
        case "sleep.deleted":
            return Delete("sleep", ident)
        case "recovery.deleted":
            return DeleteRecovery(ident)
    return Reject(f"unknown event type {event.whoop_event_type!r}")  # pragma: no cover - Literal


def backfill_stages(types: Sequence[str]) -> tuple[BackfillStage, ...]:
    """One stage per requested collection; recoveries wait for the sleeps when both are asked."""
    wanted = [t for t in COLLECTION_ORDER if t in set(types)]
    chain_recovery = "sleep" in wanted and "recovery" in wanted
    stages = []
    for resource_type in wanted:
        if resource_type == "recovery" and chain_recovery:
            continue
        then: tuple[Literal["recovery"], ...] = (
            ("recovery",) if resource_type == "sleep" and chain_recovery else ()
        )
        stages.append(BackfillStage(resource_type, then))  # type: ignore[arg-type]
    return tuple(stages)


def plan_connection(event: Envelope) -> ConnectionPlan:
    """What a connection lifecycle event asks of the fetcher."""
    if isinstance(event, BackfillRequested):
        if event.end <= event.start:
            return Ignore(f"backfill {event.job_id}: empty range")
        return StartBackfill(event.job_id, backfill_stages(event.resource_types), event.start, event.end)
    if isinstance(event, UserConnected):
        return Resume()
    if isinstance(event, ConnectionRevoked):
        return Park(event.reason)
    if isinstance(event, UserDisconnected | UserErased):
        return Drop()
    return Ignore(f"{event.event_type} is not for the fetcher")


def schedule_delay(attempts: int, schedule: Sequence[float]) -> float | None:
    """The delay before attempt ``attempts + 1`` of a schedule, or None when it is used up."""
    return schedule[attempts] if 0 <= attempts < len(schedule) else None


def error_delay(attempts: int, schedule: Sequence[float]) -> float:
    """The delay after the ``attempts``-th failure; the schedule's last delay repeats (never gives up)."""
    return schedule[min(max(attempts, 0), len(schedule) - 1)]


def covered(event_at: datetime | None, fetched_at: datetime | None, skew_s: float) -> bool:
    """Whether a fetch started at ``fetched_at`` saw what an event received at ``event_at`` announced."""
    if event_at is None or fetched_at is None:
        return False
    return fetched_at >= event_at + timedelta(seconds=skew_s)


def is_pending(document: Mapping[str, JsonValue]) -> bool:
    """WHOOP is still scoring it (§3: "check back later")."""
    return document.get("score_state") == "PENDING_SCORE"


def is_main_sleep(document: Mapping[str, JsonValue]) -> bool:
    """A sleep that starts a cycle (not a nap): it has a recovery."""
    return document.get("nap") is False


def cycles_query(sleep: Mapping[str, JsonValue]) -> dict[str, str | int] | None:
    """The one cycle-collection page that holds both cycles a main sleep touches.

    A main sleep closes the previous cycle (which ends at the sleep's start) and opens the next one
    (which starts there); the window ``[start, start + 1 ms)`` overlaps exactly these two (§5.1).
    """
    start = sleep.get("start")
    if not isinstance(start, str):
        return None
    try:
        moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return None
    after = moment + timedelta(milliseconds=1)
    return {
        "start": start,
        "end": after.strftime("%Y-%m-%dT%H:%M:%S.") + f"{after.microsecond // 1000:03d}Z",
        "limit": 2,
    }


TaskOutcome = Literal["defer", "park", "dead_letter"]


def task_failure(exc: Exception) -> TaskOutcome:
    """The one policy for a fetch that raised: defer (try later), park (re-auth), or dead-letter."""
    if isinstance(exc, NeedsReauth | WhoopUnauthorized):
        return "park"
    if isinstance(exc, AppendFailed) or getattr(exc, "retriable", False):
        return "defer"
    if isinstance(exc, OSError | TimeoutError):
        return "defer"  # PostgreSQL or the network hiccuped: the row runs again
    return "dead_letter"
