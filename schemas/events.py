"""Our events: strict, frozen, past-tense facts that share one envelope.

Every event carries ``event_id``, ``event_type``, ``schema_version``, ``occurred_at`` (aware
UTC), ``user_id`` (our own user id), ``source``, ``causation_id`` and ``trace_id``. Unknown
fields are rejected, so a producer bug cannot slip a field (or a secret) onto a topic unnoticed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_TYPES",
    "BackfillRequested",
    "ConnectionRevoked",
    "DeadLetter",
    "Envelope",
    "UserConnected",
    "UserDisconnected",
    "UserErased",
    "WebhookReceived",
    "WhoopEventType",
    "new_event_id",
]


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError("must be an aware UTC datetime")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
WhoopEventType = Literal[
    "workout.updated",
    "workout.deleted",
    "sleep.updated",
    "sleep.deleted",
    "recovery.updated",
    "recovery.deleted",
]


def new_event_id() -> str:
    """A fresh, random event id."""
    return str(uuid.uuid4())


class Envelope(BaseModel):
    """The fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=64)
    event_type: str
    schema_version: int = Field(default=1, ge=1)
    occurred_at: UtcDatetime
    user_id: str = Field(min_length=1, max_length=64, pattern=r"^[^:]+$")
    source: str = Field(min_length=1, max_length=64)
    causation_id: str | None = Field(default=None, max_length=128)
    trace_id: str | None = Field(default=None, max_length=128)


class WebhookReceived(Envelope):
    """A WHOOP webhook passed signature verification at the ingest edge."""

    event_type: Literal["WebhookReceived"] = "WebhookReceived"
    whoop_user_id: int
    whoop_event_type: WhoopEventType
    resource_id: str = Field(min_length=1, max_length=64)
    whoop_trace_id: str = Field(min_length=1, max_length=128)
    signature_timestamp_ms: int


class UserConnected(Envelope):
    """A WHOOP member connected (or reconnected) their account."""

    event_type: Literal["UserConnected"] = "UserConnected"
    whoop_user_id: int
    scopes: tuple[str, ...]
    reconnected: bool = False


class BackfillRequested(Envelope):
    """History should be fetched for a member over a time range."""

    event_type: Literal["BackfillRequested"] = "BackfillRequested"
    resource_types: tuple[Literal["cycle", "sleep", "recovery", "workout"], ...]
    start: UtcDatetime
    end: UtcDatetime
    job_id: str


class UserDisconnected(Envelope):
    """A member disconnected: tokens deleted and the grant revoked at WHOOP."""

    event_type: Literal["UserDisconnected"] = "UserDisconnected"
    whoop_user_id: int


class ConnectionRevoked(Envelope):
    """WHOOP refused our refresh token: the member must authorize again."""

    event_type: Literal["ConnectionRevoked"] = "ConnectionRevoked"
    whoop_user_id: int
    reason: str = Field(max_length=200)


class UserErased(Envelope):
    """A member asked to be erased: their data keys are destroyed and their rows deleted.

    Carries no health data and no WHOOP id: only our user id (the key of every record of theirs) and
    who asked (``member`` or ``admin``).
    """

    event_type: Literal["UserErased"] = "UserErased"
    requested_by: Literal["member", "admin"]


class DeadLetter(BaseModel):
    """What a stage could not process: the raw record, where it came from and why it failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin_topic: str
    origin_partition: int
    origin_offset: int
    key: str | None
    value_b64: str
    error_type: str
    reason: str = Field(max_length=2000)
    stage: str
    failed_at: UtcDatetime


EVENT_TYPES: dict[str, type[Envelope]] = {
    model.model_fields["event_type"].default: model
    for model in (
        WebhookReceived,
        UserConnected,
        BackfillRequested,
        UserDisconnected,
        ConnectionRevoked,
        UserErased,
    )
}
