"""Which reads a member's reconciliation needs: a pure decision over what the fetcher already holds.

WHOOP's data model makes most of a member's day predictable (``whoop-api-v2.md`` §3, §10):
every day has a cycle, a main sleep and a recovery; a scored main sleep is followed by its
recovery; a sleep or workout webhook names its resource. So a member whose days are complete and
consistent needs no collection read at all. A gap makes a missed webhook likely, and each kind
of gap has its own targeted read:

- ``recovery``: a scored main sleep that ended ``recovery_grace`` ago without its recovery
  (the ``recovery.updated`` webhook was missed): one call, through the sleep → cycle link;
- ``pending``: a main sleep still held unscored ``recovery_grace`` after it ended (its scoring
  webhooks were missed and the pending re-fetches gave up): the sleep and its recovery;
- ``sleep``: a recovery whose sleep we never fetched (its ``sleep.updated`` webhooks were
  missed): one call for the sleep, one for the two cycles it closes and opens;
- ``silent``: no main sleep ended in the last ``silent_after`` (a whole day without its sleep
  webhooks, or without any): one page of the sleep and of the workout collections since the last
  main sleep we hold (not while a sleep read is due: that one tells when the member last slept).

A read that found nothing is not repeated before ``retry_after`` (a member who did not wear the
strap costs one silent read per ``retry_after``, not one per scan). What no gap reveals, a nap or
a workout whose only webhook was lost, is left to the slow full sweep (``processors.reconcile``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["RECORD_SPAN", "Check", "CheckPolicy", "MemberFacts", "SleepFact", "plan_checks", "recent_checks"]

CheckKind = Literal["recovery", "pending", "sleep", "silent"]
RECORD_SPAN = timedelta(hours=12)  # longer than any sleep or workout: a collection read starts this early


@dataclass(frozen=True)
class SleepFact:
    """A sleep the fetcher knows through the sleep → cycle link.

    ``start`` is None when only its recovery was seen (the sleep itself was never fetched).
    """

    sleep_id: str
    cycle_id: int
    nap: bool | None
    start: datetime | None
    end: datetime | None
    score_state: str | None
    has_recovery: bool


@dataclass(frozen=True)
class MemberFacts:
    """What the fetcher holds of one member in the reconciliation window."""

    user_id: str
    whoop_user_id: int
    connected_at: datetime
    sleeps: Sequence[SleepFact]
    checks: Mapping[str, datetime]  # check key -> when that read was last enqueued


@dataclass(frozen=True)
class CheckPolicy:
    recovery_grace: timedelta
    silent_after: timedelta
    retry_after: timedelta
    lookback: timedelta


@dataclass(frozen=True)
class Check:
    """One targeted read: ``resource_id`` is a sleep id (recovery, sleep) or the window's start (silent)."""

    kind: CheckKind
    resource_id: str
    start: datetime | None = None

    @property
    def key(self) -> str:
        """What marks this read as done: a silent read is one per member, whatever its window."""
        return "silent" if self.kind == "silent" else f"{self.kind}:{self.resource_id}"


def plan_checks(facts: MemberFacts, now: datetime, policy: CheckPolicy) -> list[Check]:
    """The targeted reads this member needs now (none for a complete, consistent member)."""
    wanted: list[Check] = []
    mains = [s for s in facts.sleeps if s.nap is not True and s.start is not None]
    for sleep in mains:
        if sleep.has_recovery or sleep.end is None or sleep.end > now - policy.recovery_grace:
            continue
        if sleep.score_state == "SCORED":
            wanted.append(Check("recovery", sleep.sleep_id))
        elif sleep.score_state == "PENDING_SCORE":  # its scoring webhooks missed, re-fetches given up
            wanted.append(Check("pending", sleep.sleep_id))
    for sleep in facts.sleeps:
        if sleep.start is None:  # known only from its recovery
            wanted.append(Check("sleep", sleep.sleep_id))
    ends = [s.end for s in mains if s.end is not None]
    last_end = max(ends) if ends else None
    quiet_since = max(last_end or facts.connected_at, facts.connected_at, now - policy.lookback)
    orphans = any(c.kind == "sleep" for c in wanted)  # a main sleep we hold only by its recovery
    if now - quiet_since >= policy.silent_after and not orphans:
        start = quiet_since - RECORD_SPAN  # a record that began before the quiet stretch is in it too
        wanted.append(Check("silent", quiet_since.isoformat(), start=start))
    return [c for c in wanted if not _recent(facts.checks.get(c.key), now, policy.retry_after)]


def recent_checks(checks: Mapping[str, datetime], now: datetime, policy: CheckPolicy) -> dict[str, datetime]:
    """The check marks still worth keeping (younger than the window a gap can be in)."""
    horizon = now - max(policy.lookback, policy.retry_after)
    return {key: at for key, at in checks.items() if at > horizon}


def _recent(at: datetime | None, now: datetime, retry_after: timedelta) -> bool:
    return at is not None and now - at < retry_after
