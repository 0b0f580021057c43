"""The document log and the canonical records: the contracts between fetcher, normalizer and projections.

``whoop.documents.v1`` carries ``DocumentFetched``: one WHOOP document exactly as fetched (raw
JSON), or a deletion (``deleted=True``, no document), with the member, resource type and id,
``fetched_at`` and the ids of the events that caused the fetch. It is the source of truth: a
replay through a fixed normalizer rebuilds everything downstream.

``wear.records.v1`` carries canonical, versioned records made by the pure normalizer from those
documents, in our units (``schemas.units``), with the member's local date computed from each
record's own ``timezone_offset``. Every record keeps the WHOOP document it came from (the phone
contract serves WHOOP-shaped records) and the ``normalizer_version`` that made it. Its version is
WHOOP's ``updated_at``: a projection ignores a record older than what it holds, so duplicates and
replays are no-ops. Deletions are explicit records; erasing a user writes tombstones.

Keys: ``<user_id>:<resource type>:<resource id>`` on both topics; a recovery's resource id is its
``cycle_id`` (recoveries have no id of their own).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import msgspec

from schemas.events import Envelope, UtcDatetime

__all__ = [
    "RECORD_TYPES",
    "CycleDeleted",
    "CycleRecorded",
    "DocumentFetched",
    "JsonValue",
    "RecoveryDeleted",
    "RecoveryRecorded",
    "ResourceType",
    "ScoreState",
    "SleepDeleted",
    "SleepRecorded",
    "WhoopDocument",
    "WorkoutDeleted",
    "WorkoutRecorded",
]

if TYPE_CHECKING:
    JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
else:  # msgspec cannot resolve a recursive alias; to it, Any is exactly "any JSON value"
    JsonValue = Any
ResourceType = Literal["cycle", "sleep", "recovery", "workout"]
ScoreState = Literal["SCORED", "PENDING_SCORE", "UNSCORABLE"]
WhoopDocument = dict[str, JsonValue]
TimezoneOffset = str  # "+hh:mm", "-hh:mm" or "Z", as WHOOP sends it
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Strain = Annotated[float, msgspec.Meta(ge=0, le=21)]
Positive = Annotated[float, msgspec.Meta(ge=0)]
Version = Annotated[int, msgspec.Meta(ge=1)]


class DocumentFetched(Envelope, frozen=True, kw_only=True, tag="DocumentFetched"):
    """A WHOOP document as fetched, or the fact that it no longer exists."""

    whoop_user_id: int
    resource_type: ResourceType
    resource_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    fetched_at: UtcDatetime
    deleted: bool = False
    document: WhoopDocument | None = None
    context: Annotated[
        WhoopDocument,
        msgspec.Meta(
            description="What the fetcher learned on the way that the document lacks, e.g. a recovery's"
            " sleep (its end and timezone_offset give the recovery's local date)."
        ),
    ] = msgspec.field(default_factory=dict)
    caused_by: tuple[str, ...] = ()


class _Record(Envelope, frozen=True, kw_only=True):
    whoop_user_id: int
    whoop_updated_at: Annotated[
        UtcDatetime, msgspec.Meta(description="WHOOP's updated_at: the version of this record.")
    ]
    normalizer_version: Version
    score_state: ScoreState
    document: WhoopDocument


class CycleRecorded(_Record, frozen=True, kw_only=True, tag="CycleRecorded"):
    """A physiological day (sleep onset to sleep onset)."""

    cycle_id: int
    start: UtcDatetime
    end: UtcDatetime | None
    timezone_offset: TimezoneOffset
    local_date: date
    strain: Strain | None = None
    energy_kcal: Positive | None = None
    average_heart_rate_bpm: int | None = None
    max_heart_rate_bpm: int | None = None


class SleepRecorded(_Record, frozen=True, kw_only=True, tag="SleepRecorded"):
    """A main sleep or a nap, with its stages in milliseconds."""

    sleep_id: str
    cycle_id: int
    nap: bool
    start: UtcDatetime
    end: UtcDatetime
    timezone_offset: TimezoneOffset
    local_date: date
    in_bed_ms: NonNegative | None = None
    awake_ms: NonNegative | None = None
    light_ms: NonNegative | None = None
    slow_wave_ms: NonNegative | None = None
    rem_ms: NonNegative | None = None
    no_data_ms: NonNegative | None = None
    asleep_ms: NonNegative | None = None
    sleep_needed_ms: NonNegative | None = None
    sleep_cycle_count: NonNegative | None = None
    disturbance_count: NonNegative | None = None
    respiratory_rate_bpm: Positive | None = None
    performance_pct: Percent | None = None
    consistency_pct: Percent | None = None
    efficiency_pct: Percent | None = None


class RecoveryRecorded(_Record, frozen=True, kw_only=True, tag="RecoveryRecorded"):
    """The recovery of a cycle, based on that cycle's main sleep."""

    cycle_id: int
    sleep_id: str
    local_date: Annotated[
        date | None,
        msgspec.Meta(description="Local date of the sleep's end, when the fetcher knew the sleep."),
    ]
    user_calibrating: bool | None = None
    recovery_score_pct: Percent | None = None
    resting_heart_rate_bpm: Positive | None = None
    hrv_rmssd_ms: Positive | None = None
    spo2_pct: Percent | None = None
    skin_temp_c: float | None = None


class WorkoutRecorded(_Record, frozen=True, kw_only=True, tag="WorkoutRecorded"):
    """A workout (or a WHOOP recovery activity such as sauna), with its heart-rate zones."""

    workout_id: str
    sport_name: str
    sport_id: int | None = None
    start: UtcDatetime
    end: UtcDatetime
    timezone_offset: TimezoneOffset
    local_date: date
    strain: Strain | None = None
    energy_kcal: Positive | None = None
    average_heart_rate_bpm: int | None = None
    max_heart_rate_bpm: int | None = None
    percent_recorded: Percent | None = None
    distance_m: Positive | None = None
    altitude_gain_m: float | None = None
    altitude_change_m: float | None = None
    zone_ms: Annotated[
        tuple[int, int, int, int, int, int] | None,
        msgspec.Meta(description="Milliseconds in heart-rate zones 0 to 5."),
    ] = None


class _Deleted(Envelope, frozen=True, kw_only=True):
    whoop_user_id: int
    normalizer_version: Version


class CycleDeleted(_Deleted, frozen=True, kw_only=True, tag="CycleDeleted"):
    cycle_id: int


class SleepDeleted(_Deleted, frozen=True, kw_only=True, tag="SleepDeleted"):
    sleep_id: str


class RecoveryDeleted(_Deleted, frozen=True, kw_only=True, tag="RecoveryDeleted"):
    """A recovery removed; ``recovery.deleted`` names the sleep, the fetcher resolved its cycle."""

    cycle_id: int
    sleep_id: str | None = None


class WorkoutDeleted(_Deleted, frozen=True, kw_only=True, tag="WorkoutDeleted"):
    workout_id: str


RECORD_TYPES: dict[str, type[Envelope]] = {
    model.event_type: model
    for model in (
        DocumentFetched,
        CycleRecorded,
        SleepRecorded,
        RecoveryRecorded,
        WorkoutRecorded,
        CycleDeleted,
        SleepDeleted,
        RecoveryDeleted,
        WorkoutDeleted,
    )
}
