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
from typing import Literal

from pydantic import Field, JsonValue

from schemas.events import Envelope, UtcDatetime

__all__ = [
    "RECORD_TYPES",
    "CycleDeleted",
    "CycleRecorded",
    "DocumentFetched",
    "RecoveryDeleted",
    "RecoveryRecorded",
    "ResourceType",
    "ScoreState",
    "SleepDeleted",
    "SleepRecorded",
    "WorkoutDeleted",
    "WorkoutRecorded",
]

ResourceType = Literal["cycle", "sleep", "recovery", "workout"]
ScoreState = Literal["SCORED", "PENDING_SCORE", "UNSCORABLE"]
WhoopDocument = dict[str, JsonValue]
TimezoneOffset = str  # "+hh:mm", "-hh:mm" or "Z", as WHOOP sends it


class DocumentFetched(Envelope):
    """A WHOOP document as fetched, or the fact that it no longer exists."""

    event_type: Literal["DocumentFetched"] = "DocumentFetched"
    whoop_user_id: int
    resource_type: ResourceType
    resource_id: str = Field(min_length=1, max_length=64)
    fetched_at: UtcDatetime
    deleted: bool = False
    document: WhoopDocument | None = None
    context: WhoopDocument = Field(
        default_factory=dict,
        description="What the fetcher learned on the way that the document lacks, e.g. a recovery's sleep"
        " (its end and timezone_offset give the recovery's local date).",
    )
    caused_by: tuple[str, ...] = ()


class _Record(Envelope):
    whoop_user_id: int
    whoop_updated_at: UtcDatetime = Field(description="WHOOP's updated_at: the version of this record.")
    normalizer_version: int = Field(ge=1)
    score_state: ScoreState
    document: WhoopDocument


class CycleRecorded(_Record):
    """A physiological day (sleep onset to sleep onset)."""

    event_type: Literal["CycleRecorded"] = "CycleRecorded"
    cycle_id: int
    start: UtcDatetime
    end: UtcDatetime | None
    timezone_offset: TimezoneOffset
    local_date: date
    strain: float | None = Field(default=None, ge=0, le=21)
    energy_kcal: float | None = Field(default=None, ge=0)
    average_heart_rate_bpm: int | None = None
    max_heart_rate_bpm: int | None = None


class SleepRecorded(_Record):
    """A main sleep or a nap, with its stages in milliseconds."""

    event_type: Literal["SleepRecorded"] = "SleepRecorded"
    sleep_id: str
    cycle_id: int
    nap: bool
    start: UtcDatetime
    end: UtcDatetime
    timezone_offset: TimezoneOffset
    local_date: date
    in_bed_ms: int | None = Field(default=None, ge=0)
    awake_ms: int | None = Field(default=None, ge=0)
    light_ms: int | None = Field(default=None, ge=0)
    slow_wave_ms: int | None = Field(default=None, ge=0)
    rem_ms: int | None = Field(default=None, ge=0)
    no_data_ms: int | None = Field(default=None, ge=0)
    asleep_ms: int | None = Field(default=None, ge=0)
    sleep_needed_ms: int | None = Field(default=None, ge=0)
    sleep_cycle_count: int | None = Field(default=None, ge=0)
    disturbance_count: int | None = Field(default=None, ge=0)
    respiratory_rate_bpm: float | None = Field(default=None, ge=0)
    performance_pct: float | None = Field(default=None, ge=0, le=100)
    consistency_pct: float | None = Field(default=None, ge=0, le=100)
    efficiency_pct: float | None = Field(default=None, ge=0, le=100)


class RecoveryRecorded(_Record):
    """The recovery of a cycle, based on that cycle's main sleep."""

    event_type: Literal["RecoveryRecorded"] = "RecoveryRecorded"
    cycle_id: int
    sleep_id: str
    local_date: date | None = Field(
        description="Local date of the sleep's end, when the fetcher knew the sleep."
    )
    user_calibrating: bool | None = None
    recovery_score_pct: float | None = Field(default=None, ge=0, le=100)
    resting_heart_rate_bpm: float | None = Field(default=None, ge=0)
    hrv_rmssd_ms: float | None = Field(default=None, ge=0)
    spo2_pct: float | None = Field(default=None, ge=0, le=100)
    skin_temp_c: float | None = None


class WorkoutRecorded(_Record):
    """A workout (or a WHOOP recovery activity such as sauna), with its heart-rate zones."""

    event_type: Literal["WorkoutRecorded"] = "WorkoutRecorded"
    workout_id: str
    sport_name: str
    sport_id: int | None = None
    start: UtcDatetime
    end: UtcDatetime
    timezone_offset: TimezoneOffset
    local_date: date
    strain: float | None = Field(default=None, ge=0, le=21)
    energy_kcal: float | None = Field(default=None, ge=0)
    average_heart_rate_bpm: int | None = None
    max_heart_rate_bpm: int | None = None
    percent_recorded: float | None = Field(default=None, ge=0, le=100)
    distance_m: float | None = Field(default=None, ge=0)
    altitude_gain_m: float | None = None
    altitude_change_m: float | None = None
    zone_ms: tuple[int, int, int, int, int, int] | None = Field(
        default=None, description="Milliseconds in heart-rate zones 0 to 5."
    )


class _Deleted(Envelope):
    whoop_user_id: int
    normalizer_version: int = Field(ge=1)


class CycleDeleted(_Deleted):
    event_type: Literal["CycleDeleted"] = "CycleDeleted"
    cycle_id: int


class SleepDeleted(_Deleted):
    event_type: Literal["SleepDeleted"] = "SleepDeleted"
    sleep_id: str


class RecoveryDeleted(_Deleted):
    """A recovery removed; ``recovery.deleted`` names the sleep, the fetcher resolved its cycle."""

    event_type: Literal["RecoveryDeleted"] = "RecoveryDeleted"
    cycle_id: int
    sleep_id: str | None = None


class WorkoutDeleted(_Deleted):
    event_type: Literal["WorkoutDeleted"] = "WorkoutDeleted"
    workout_id: str


RECORD_TYPES: dict[str, type[Envelope]] = {
    model.model_fields["event_type"].default: model
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
