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
  main sleep we hold (not while a sleep read is due: that one tells when the member last slept);
- ``workout``: a closed cycle whose strain its known workouts do not explain. Strain is logarithmic
  in cardiovascular load (``load_of``) and loads add up, so what the cycle's load exceeds the sum of
  its workouts' loads by is the load of the day's rest, at most ``rest_strain``'s for a 24-hour
  cycle. More than that is a workout we never heard of: one page of the workout collection over
  the cycle (not while a workout of the cycle is unscored: its load is not known yet);
- ``deleted``: a closed cycle whose strain its known workouts over-explain: what is left for the
  day's rest is below ``rest_floor_strain``'s load (scaled likewise), so a workout we hold was
  deleted while its ``workout.deleted`` webhook was lost (WHOOP rescored the cycle without it).
  One page of the workout collection over the cycle: the known workout it no longer lists is
  deleted (``processors.reconcile``, as the webhook would have);
- ``nap``: a main sleep whose need was lowered by a recent nap (``need_from_recent_nap_milli``)
  when we hold no nap since the main sleep before it: one page of the sleep collection between them.

A read that found nothing is not repeated before ``retry_after`` (a member who did not wear the
strap costs one silent read per ``retry_after``, not one per scan); a ``workout``, ``deleted`` or ``nap``
read is made once per cycle or sleep. What no gap reveals (a workout or a deleted workout too light to
move its cycle's strain past the rest band, e.g. meditation or an ice bath) is left to the slow full
sweep (``processors.reconcile``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "RECORD_SPAN",
    "Check",
    "CheckPolicy",
    "CycleFact",
    "MemberFacts",
    "SleepFact",
    "WorkoutFact",
    "day_signals",
    "load_of",
    "plan_checks",
    "recent_checks",
    "unexplained_load",
]

CheckKind = Literal["recovery", "pending", "sleep", "silent", "workout", "deleted", "nap"]
_CYCLE_READS = ("workout", "deleted")  # the same read of a cycle, for a workout missing or one gone
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
    nap_need_ms: int | None = None  # a main sleep's need_from_recent_nap_milli (< 0 after a nap)


@dataclass(frozen=True)
class CycleFact:
    """A cycle the fetcher holds: its window and its last known strain (None while unscored)."""

    cycle_id: int
    start: datetime
    end: datetime | None
    strain: float | None


@dataclass(frozen=True)
class WorkoutFact:
    """A workout the fetcher holds (not deleted): its start and strain (None while unscored)."""

    start: datetime
    strain: float | None


@dataclass(frozen=True)
class MemberFacts:
    """What the fetcher holds of one member in the reconciliation window."""

    user_id: str
    whoop_user_id: int
    connected_at: datetime
    sleeps: Sequence[SleepFact]
    checks: Mapping[str, datetime]  # check key -> when that read was last enqueued
    cycles: Sequence[CycleFact] = field(default=())
    workouts: Sequence[WorkoutFact] = field(default=())


@dataclass(frozen=True)
class CheckPolicy:
    recovery_grace: timedelta
    silent_after: timedelta
    retry_after: timedelta
    lookback: timedelta
    rest_strain: float = 9.5  # the most strain a 24-hour cycle reaches without a workout
    rest_floor_strain: float = 4.0  # the least strain a 24-hour cycle has without a workout


@dataclass(frozen=True)
class Check:
    """One targeted read: ``resource_id`` is a sleep id (recovery, pending, sleep, nap), a cycle id
    (workout, deleted) or the window's start (silent); a collection read covers ``start`` to ``end`` (now)."""

    kind: CheckKind
    resource_id: str
    start: datetime | None = None
    end: datetime | None = None

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
            if not _recent(facts.checks.get(f"pending:{sleep.sleep_id}"), now, policy.retry_after):
                wanted.append(Check("recovery", sleep.sleep_id))  # (a pending read brings it too)
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
    wanted += _unexplained_cycles(facts, now, policy)
    wanted += _unseen_naps(mains, facts.sleeps, facts.connected_at, now, policy)
    return [c for c in wanted if not _recent(facts.checks.get(c.key), now, _retry_after(c, policy))]


def day_signals(resource_type: str, document: Mapping[str, object] | None) -> tuple[float | None, int | None]:
    """What the checks read of a fetched document: a cycle's or workout's strain, a sleep's nap need."""
    score = document.get("score") if document else None
    if not isinstance(score, Mapping):
        return None, None
    if resource_type in ("cycle", "workout"):
        strain = score.get("strain")
        return (float(strain) if isinstance(strain, int | float) else None), None
    if resource_type == "sleep":
        needed = score.get("sleep_needed")
        nap = needed.get("need_from_recent_nap_milli") if isinstance(needed, Mapping) else None
        return None, (int(nap) if isinstance(nap, int | float) else None)
    return None, None


def load_of(strain: float) -> float:
    """The cardiovascular load behind a WHOOP strain (0-21, logarithmic in load)."""
    return -150.0 * math.log(max(1.0 - strain / 21.0, 1e-9))


def unexplained_load(cycle: CycleFact, workouts: Sequence[WorkoutFact]) -> float | None:
    """The load of a closed cycle its workouts leave unexplained; None when it cannot be told yet."""
    if cycle.end is None or cycle.strain is None:
        return None
    end = cycle.end
    inside = [w for w in workouts if cycle.start <= w.start < end]
    if any(w.strain is None for w in inside):
        return None
    return load_of(cycle.strain) - sum(load_of(w.strain) for w in inside if w.strain is not None)


def _unexplained_cycles(facts: MemberFacts, now: datetime, policy: CheckPolicy) -> list[Check]:
    wanted: list[Check] = []
    for cycle in facts.cycles:
        if cycle.start < facts.connected_at:  # its workouts before we watched are not ours to know
            continue
        residual = unexplained_load(cycle, facts.workouts)
        if residual is None or cycle.end is None or cycle.end < now - policy.lookback:
            continue
        if any(
            _recent(facts.checks.get(f"{k}:{cycle.cycle_id}"), now, policy.lookback) for k in _CYCLE_READS
        ):
            continue  # one page over the cycle lists all its workouts: what it left is the sweep's
        day = max((cycle.end - cycle.start).total_seconds() / 3600.0, 1.0) / 24.0
        if residual > load_of(policy.rest_strain) * day:  # a workout we never heard of
            wanted.append(Check("workout", str(cycle.cycle_id), start=cycle.start, end=cycle.end))
        elif residual < load_of(policy.rest_floor_strain) * day:  # a workout we hold is gone
            wanted.append(Check("deleted", str(cycle.cycle_id), start=cycle.start, end=cycle.end))
    return wanted


def _unseen_naps(
    mains: Sequence[SleepFact],
    sleeps: Sequence[SleepFact],
    watched_since: datetime,
    now: datetime,
    policy: CheckPolicy,
) -> list[Check]:
    wanted: list[Check] = []
    naps = [s.start for s in sleeps if s.nap is True and s.start is not None]
    for sleep in mains:
        if sleep.start is None or not sleep.nap_need_ms or sleep.nap_need_ms >= 0:
            continue
        if sleep.start < now - policy.lookback:
            continue
        before = [m.end for m in mains if m.end is not None and m.end <= sleep.start]
        since = max(before) if before else sleep.start - timedelta(hours=30)
        if since < watched_since:  # a nap before we watched is not ours to know
            continue
        if not any(since <= nap < sleep.start for nap in naps):
            wanted.append(Check("nap", sleep.sleep_id, start=since, end=sleep.start))
    return wanted


def recent_checks(checks: Mapping[str, datetime], now: datetime, policy: CheckPolicy) -> dict[str, datetime]:
    """The check marks still worth keeping (younger than the window a gap can be in)."""
    horizon = now - max(policy.lookback, policy.retry_after)
    return {key: at for key, at in checks.items() if at > horizon}


def _retry_after(check: Check, policy: CheckPolicy) -> timedelta:
    """A cycle or a main sleep is read once: what that read did not find is the full sweep's."""
    return policy.lookback if check.kind in ("workout", "deleted", "nap") else policy.retry_after


def _recent(at: datetime | None, now: datetime, retry_after: timedelta) -> bool:
    return at is not None and now - at < retry_after
