"""Our events: strict, frozen, past-tense facts that share one envelope (msgspec Structs).

Every event carries ``event_id``, ``event_type``, ``schema_version``, ``occurred_at`` (aware
UTC), ``user_id`` (our own user id), ``source``, ``causation_id`` and ``trace_id``. Unknown
fields are rejected, so a producer bug cannot slip a field (or a secret) onto a topic unnoticed.

``event_type`` is the tag of a tagged union (msgspec's ``tag_field``): it is written first on the
wire, it picks the type when decoding, and each event exposes it as ``event.event_type``. A Struct
is checked when it is decoded or converted (``schemas.serde``), not when it is built in Python:
the types and ``Meta`` constraints below are the contract its readers enforce, and a datetime is
refused unless it is aware UTC, in both cases (``__post_init__``). ADR 0006 says why msgspec.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Protocol, get_args

import msgspec

__all__ = [
    "EVENT_TYPES",
    "BackfillRequested",
    "ConnectionRevoked",
    "Consumed",
    "DeadLetter",
    "Envelope",
    "UserConnected",
    "UserDisconnected",
    "UserErased",
    "UtcDatetime",
    "WebhookReceived",
    "WhoopEventType",
    "new_event_id",
]

UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
"""An aware datetime; ``__post_init__`` of every event also refuses a non-zero offset."""
WhoopEventType = Literal[
    "workout.updated",
    "workout.deleted",
    "sleep.updated",
    "sleep.deleted",
    "recovery.updated",
    "recovery.deleted",
]
_ZERO = timedelta(0)


def new_event_id() -> str:
    """A fresh, random event id."""
    return str(uuid.uuid4())


def _holds_datetime(annotation: object) -> bool:
    return annotation is datetime or any(_holds_datetime(arg) for arg in get_args(annotation))


_Getter = Callable[[object], tuple[datetime | None, ...]]
_DATETIMES: dict[type, tuple[tuple[str, ...], _Getter]] = {}
"""Per Struct type, its datetime fields and a getter of their values (made on first use: msgspec
knows a type's fields only once the class is made)."""


def _datetimes_of(cls: type[msgspec.Struct]) -> tuple[tuple[str, ...], _Getter]:
    names = tuple(field.name for field in msgspec.structs.fields(cls) if _holds_datetime(field.type))
    if len(names) > 1:
        getter: _Getter = attrgetter(*names)
    else:
        getter = lambda event: tuple(getattr(event, name) for name in names)  # noqa: E731
    _DATETIMES[cls] = (names, getter)
    return names, getter


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Frozen, unknown fields rejected, datetimes aware UTC."""

    def __post_init__(self) -> None:
        names, getter = _DATETIMES.get(type(self)) or _datetimes_of(type(self))
        for name, value in zip(names, getter(self), strict=True):
            # msgspec reads "Z" as timezone.utc itself: the usual case costs one identity test
            if value is not None and value.tzinfo is not UTC and value.utcoffset() != _ZERO:
                raise ValueError(f"Expected an aware UTC datetime - at `$.{name}`")


class _EventType:
    """``Type.event_type`` and ``event.event_type``: the tag msgspec writes and reads for the type."""

    def __get__(self, instance: object, owner: type[msgspec.Struct]) -> str:
        return str(owner.__struct_config__.tag)


class Envelope(_Strict, frozen=True, kw_only=True, tag_field="event_type"):
    """The fields every event carries; ``event_type`` is the tag each event type sets."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    schema_version: Annotated[int, msgspec.Meta(ge=1)] = 1
    occurred_at: UtcDatetime
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^:]+$")]
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    causation_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    trace_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None

    if TYPE_CHECKING:
        event_type: ClassVar[str]
    else:
        event_type = _EventType()


class WebhookReceived(Envelope, frozen=True, kw_only=True, tag="WebhookReceived"):
    """A WHOOP webhook passed signature verification at the ingest edge."""

    whoop_user_id: int
    whoop_event_type: WhoopEventType
    resource_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    whoop_trace_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    signature_timestamp_ms: int


class UserConnected(Envelope, frozen=True, kw_only=True, tag="UserConnected"):
    """A WHOOP member connected (or reconnected) their account."""

    whoop_user_id: int
    scopes: tuple[str, ...]
    reconnected: bool = False


class BackfillRequested(Envelope, frozen=True, kw_only=True, tag="BackfillRequested"):
    """History should be fetched for a member over a time range."""

    resource_types: tuple[Literal["cycle", "sleep", "recovery", "workout"], ...]
    start: UtcDatetime
    end: UtcDatetime
    job_id: str


class UserDisconnected(Envelope, frozen=True, kw_only=True, tag="UserDisconnected"):
    """A member disconnected: tokens deleted and the grant revoked at WHOOP."""

    whoop_user_id: int


class ConnectionRevoked(Envelope, frozen=True, kw_only=True, tag="ConnectionRevoked"):
    """WHOOP refused our refresh token: the member must authorize again."""

    whoop_user_id: int
    reason: Annotated[str, msgspec.Meta(max_length=200)]


class UserErased(Envelope, frozen=True, kw_only=True, tag="UserErased"):
    """A member asked to be erased: their data keys are destroyed and their rows deleted.

    Carries no health data and no WHOOP id: only our user id (the key of every record of theirs) and
    who asked (``member`` or ``admin``).
    """

    requested_by: Literal["member", "admin"]


class Consumed(Protocol):
    """A consumed record as a dead letter needs it (an aiokafka ``ConsumerRecord`` is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


_REASON_MAX = 2000  # the longest DeadLetter.reason: a longer one is cut


class DeadLetter(_Strict, frozen=True, kw_only=True):
    """What a stage could not process: the raw record, where it came from and why it failed."""

    # built by ``of`` in every stage; sent by ``infra.dead_letters`` (or in the normalizer's batch)

    origin_topic: str
    origin_partition: int
    origin_offset: int
    key: str | None
    value_b64: str
    error_type: str
    reason: Annotated[str, msgspec.Meta(max_length=_REASON_MAX)]
    stage: str
    failed_at: UtcDatetime

    @classmethod
    def of(
        cls,
        origin: Consumed,
        *,
        error_type: str,
        reason: str,
        stage: str,
        failed_at: datetime,
        omit_value: bool = False,
    ) -> DeadLetter:
        """The letter of ``origin``: its place, its key as text, its raw value in base64, the reason cut
        to 2,000 characters. ``omit_value`` leaves the value out (too large for the DLQ) and says so."""
        raw = origin.value or b""
        if omit_value:
            omitted = f"raw value of {len(raw)} bytes omitted: too large for the DLQ; see the origin offset"
            reason = f"{reason} [{omitted}]"
        return cls(
            origin_topic=origin.topic,
            origin_partition=origin.partition,
            origin_offset=origin.offset,
            key=None if origin.key is None else origin.key.decode("utf-8", "backslashreplace"),
            value_b64="" if omit_value else base64.b64encode(raw).decode("ascii"),
            error_type=error_type,
            reason=reason[:_REASON_MAX],
            stage=stage,
            failed_at=failed_at,
        )


EVENT_TYPES: dict[str, type[Envelope]] = {
    model.event_type: model
    for model in (
        WebhookReceived,
        UserConnected,
        BackfillRequested,
        UserDisconnected,
        ConnectionRevoked,
        UserErased,
    )
}
