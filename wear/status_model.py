"""What ``wear status`` shows, as values (pure): consumer lag, DLQ counts, the WHOOP quota, connections
needing re-authorization, backfills and rebuilds in progress.

:mod:`wear.status_reads` gathers these from Kafka and PostgreSQL; :mod:`wear.status_view` draws them
with rich; :func:`status_json` is the ``--json`` document. Nothing here does I/O or reads a clock.

Lag of a partition is ``end - position``: ``position`` is the group's next offset (committed in Kafka,
or stored in PostgreSQL beside a projection's effects); a partition where the group stored nothing is
at the log start (``start``), as a consumer that resets to ``earliest`` would be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from processors.quota import DAY_S, MINUTE_S, Priority, QuotaPolicy

__all__ = [
    "Backfill",
    "DlqCount",
    "GroupLag",
    "PartitionLag",
    "PriorityUse",
    "Quota",
    "QuotaWindow",
    "Reauth",
    "Rebuild",
    "Status",
    "partition_lag",
    "quota_windows",
    "sorted_groups",
    "status_json",
]

Kind = Literal["kafka", "postgres"]


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one group: where the group is, where the log ends, and the difference."""

    topic: str
    partition: int
    position: int
    end: int
    committed: bool  # False: the group stored no offset here (position is the log start)

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)


def partition_lag(topic: str, partition: int, stored: int | None, start: int, end: int) -> PartitionLag:
    """The lag of one partition from the group's stored next offset (None: nothing stored).

    A stored offset below the log start (records removed by retention or compaction) counts from the
    log start: what is gone cannot be read any more.
    """
    position = start if stored is None else max(stored, start)
    return PartitionLag(topic, partition, position, end, stored is not None)


@dataclass(frozen=True)
class GroupLag:
    """A consumer group of the pipeline and its lag per partition.

    ``kind`` says where its offsets live: ``kafka`` (committed to Kafka: fetcher, normalizer) or
    ``postgres`` (stored beside the effects: projections, read-model versions being built).
    ``members`` is the number of live members of its Kafka consumer group (0: stopped).
    ``missing`` lists the group's topics that do not exist on Kafka.
    """

    stage: str
    group: str
    kind: Kind
    members: int
    partitions: tuple[PartitionLag, ...]
    missing: tuple[str, ...] = ()

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True)
class DlqCount:
    """Messages held by one dead-letter topic (end - start over its partitions); None: no such topic."""

    topic: str
    messages: int | None


@dataclass(frozen=True)
class PriorityUse:
    """One priority in one quota window: requests it took, how many it may take, how many are left to it."""

    priority: str
    used: int
    allowed: int
    left: int


@dataclass(frozen=True)
class QuotaWindow:
    """One sliding window of the shared WHOOP quota (``minute`` or ``day``)."""

    window: str
    seconds: float
    capacity: int
    used: int
    priorities: tuple[PriorityUse, ...]

    @property
    def left(self) -> int:
        return max(0, self.capacity - self.used)


def quota_windows(
    policy: QuotaPolicy, used: Mapping[str, Mapping[int, int]]
) -> tuple[QuotaWindow, QuotaWindow]:
    """The minute and day windows from the grants counted in each (``used[window][priority]``).

    A priority may take a request while fewer than its allowed grants (the capacity less its reserve,
    ``QuotaPolicy.windows``) were made in the window by everyone: what is left to it is that
    allowance less every grant in the window, not only its own.
    """
    windows = []
    for index, (name, seconds, capacity) in enumerate(
        (("minute", MINUTE_S, policy.per_minute), ("day", DAY_S, policy.per_day))
    ):
        counts = used.get(name, {})
        total = sum(counts.values())
        priorities = []
        for priority in Priority:
            allowed = policy.windows(priority)[index][1]
            priorities.append(
                PriorityUse(
                    priority.name.lower(), counts.get(int(priority), 0), allowed, max(0, allowed - total)
                )
            )
        windows.append(QuotaWindow(name, seconds + policy.margin_s, capacity, total, tuple(priorities)))
    return windows[0], windows[1]


@dataclass(frozen=True)
class Quota:
    """The shared WHOOP quota bucket: its windows, and the pause a 429 set (if still ahead)."""

    bucket: str
    windows: tuple[QuotaWindow, ...]
    paused_until: datetime | None = None


@dataclass(frozen=True)
class Reauth:
    """A connection whose WHOOP authorization must be renewed by the member."""

    user_id: str
    whoop_user_id: int
    since: datetime


@dataclass(frozen=True)
class Backfill:
    """A pull (backfill) job requested or running, and its progress per resource type."""

    job_id: str
    user_id: str
    status: str
    resource_types: tuple[str, ...]
    types_done: int
    pages: int
    records: int
    created_at: datetime


@dataclass(frozen=True)
class Rebuild:
    """A read-model version being built, or a records generation being filled (renormalization).

    ``done``/``total`` are offsets applied out of those to reach (the topic's end offsets now).
    """

    kind: Literal["read-model version", "records generation"]
    number: int
    state: str
    topic: str
    done: int
    total: int
    created_at: datetime


@dataclass(frozen=True)
class Status:
    """Everything ``wear status`` shows, taken at ``taken_at``."""

    taken_at: datetime
    groups: tuple[GroupLag, ...]
    dlqs: tuple[DlqCount, ...]
    quota: Quota
    reauth: tuple[Reauth, ...]
    reauth_total: int
    backfills: tuple[Backfill, ...]
    rebuilds: tuple[Rebuild, ...] = field(default=())


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _group(group: GroupLag) -> dict[str, Any]:
    return {
        "stage": group.stage,
        "group": group.group,
        "offsets_in": group.kind,
        "members": group.members,
        "lag": group.lag,
        "missing_topics": list(group.missing),
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "position": p.position,
                "end": p.end,
                "lag": p.lag,
                "committed": p.committed,
            }
            for p in group.partitions
        ],
    }


def _window(window: QuotaWindow) -> dict[str, Any]:
    return {
        "window": window.window,
        "seconds": window.seconds,
        "capacity": window.capacity,
        "used": window.used,
        "left": window.left,
        "by_priority": [
            {"priority": p.priority, "used": p.used, "allowed": p.allowed, "left": p.left}
            for p in window.priorities
        ],
    }


def status_json(status: Status) -> dict[str, Any]:
    """The ``--json`` document of ``wear status``."""
    return {
        "taken_at": status.taken_at.isoformat(),
        "consumer_groups": [_group(group) for group in status.groups],
        "total_lag": sum(group.lag for group in status.groups),
        "dlq": [
            {"topic": d.topic, "messages": d.messages, "exists": d.messages is not None} for d in status.dlqs
        ],
        "quota": {
            "bucket": status.quota.bucket,
            "paused_until": _instant(status.quota.paused_until),
            "windows": [_window(w) for w in status.quota.windows],
        },
        "needs_reauth": {
            "total": status.reauth_total,
            "connections": [
                {"user_id": r.user_id, "whoop_user_id": r.whoop_user_id, "since": r.since.isoformat()}
                for r in status.reauth
            ],
        },
        "backfills": [
            {
                "job_id": b.job_id,
                "user_id": b.user_id,
                "status": b.status,
                "resource_types": list(b.resource_types),
                "types_done": b.types_done,
                "pages": b.pages,
                "records": b.records,
                "created_at": b.created_at.isoformat(),
            }
            for b in status.backfills
        ],
        "rebuilds": [
            {
                "kind": r.kind,
                "number": r.number,
                "state": r.state,
                "topic": r.topic,
                "done": r.done,
                "total": r.total,
                "created_at": r.created_at.isoformat(),
            }
            for r in status.rebuilds
        ],
    }


def group_sort_key(group: GroupLag) -> tuple[str, str]:
    """Groups in a stable order: by stage, then group id."""
    return (group.stage, group.group)


def sorted_groups(groups: Sequence[GroupLag]) -> tuple[GroupLag, ...]:
    """``groups`` in the order the screen shows them."""
    return tuple(sorted(groups, key=group_sort_key))
