"""The sync-activity projection: webhooks received and WHOOP documents fetched, per member.

:func:`read_activity` reads the few envelope fields it needs of an event of the webhook or document
topics (anything else is None: those topics belong to other stages); :func:`plan_activity` folds a
batch of arrivals into one :class:`ActivityDelta` per member (the latest times and the counts), which
``projections.store`` adds to the member's sync status. No I/O, no clock, no logging.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import msgspec

__all__ = ["Activity", "ActivityDelta", "plan_activity", "read_activity"]


@dataclass(frozen=True)
class Activity:
    """One webhook received, or one WHOOP document fetched, for a member."""

    user_id: str
    webhook_at: datetime | None = None
    fetch_at: datetime | None = None


@dataclass
class ActivityDelta:
    """What one batch saw for one member."""

    last_webhook_at: datetime | None = None
    last_fetch_at: datetime | None = None
    webhooks: int = 0
    documents: int = 0


class _ActivityEvent(msgspec.Struct, frozen=True):
    """The few envelope fields the sync status needs; the rest of the event is not read."""

    event_type: str
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^:\x00]+$")]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    fetched_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


_ACTIVITY = msgspec.json.Decoder(_ActivityEvent)


def read_activity(value: bytes | None) -> Activity | None:
    """A webhook or fetch of a member, or None for anything else (those topics belong to other stages)."""
    if value is None:
        return None
    try:
        event = _ACTIVITY.decode(value)
    except msgspec.DecodeError:
        return None
    if event.event_type == "WebhookReceived":
        return Activity(event.user_id, webhook_at=event.occurred_at.astimezone(UTC))
    if event.event_type == "DocumentFetched":
        return Activity(event.user_id, fetch_at=(event.fetched_at or event.occurred_at).astimezone(UTC))
    return None


def plan_activity(items: Iterable[Activity]) -> dict[str, ActivityDelta]:
    """Fold arrivals into one delta per member: the latest times and the counts."""
    deltas: dict[str, ActivityDelta] = {}
    for item in items:
        delta = deltas.setdefault(item.user_id, ActivityDelta())
        if item.webhook_at is not None:
            delta.webhooks += 1
            if delta.last_webhook_at is None or item.webhook_at > delta.last_webhook_at:
                delta.last_webhook_at = item.webhook_at
        if item.fetch_at is not None:
            delta.documents += 1
            if delta.last_fetch_at is None or item.fetch_at > delta.last_fetch_at:
                delta.last_fetch_at = item.fetch_at
    return deltas
