"""Strict schemas of the WHOOP v2 documents (``whoop-api-v2.md`` §6): the tests' oracle for the simulator.

These models describe what the simulator *emits*: unknown fields are rejected, integers must be
integers and floats must be floats (WHOOP serialises ``70.0``, never ``70``, for float fields).
The conformance tests validate every §14 example and every generated document against them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr

__all__ = [
    "ActivityMapping",
    "Cycle",
    "CycleScore",
    "PaginatedCycleResponse",
    "PaginatedSleepResponse",
    "Recovery",
    "RecoveryCollection",
    "RecoveryScore",
    "ScoreState",
    "Sleep",
    "SleepNeeded",
    "SleepScore",
    "SleepStageSummary",
    "TokenError",
    "TokenResponse",
    "UserBasicProfile",
    "UserBodyMeasurement",
    "WebhookBody",
    "WorkoutCollection",
    "WorkoutScore",
    "WorkoutV2",
    "ZoneDurations",
]


def _float_only(value: object) -> float:
    """WHOOP writes float fields with a decimal point (``70.0``); an int there is a simulator bug."""
    if not isinstance(value, float):
        raise ValueError("expected a JSON number with a decimal point")  # noqa: TRY004 - pydantic wants ValueError
    return value


StrictFloat = Annotated[float, BeforeValidator(_float_only)]
DateTime = Annotated[StrictStr, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")]
Uuid = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Offset = Annotated[StrictStr, Field(pattern=r"^(Z|[+-]\d{2}:\d{2})$")]
Token = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$")]
Percent = Annotated[StrictFloat, Field(ge=0, le=100)]
Milli = Annotated[StrictInt, Field(ge=0)]
ScoreState = Literal["SCORED", "PENDING_SCORE", "UNSCORABLE"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CycleScore(_Doc):
    strain: Annotated[StrictFloat, Field(ge=0, le=21)]
    kilojoule: Annotated[StrictFloat, Field(ge=0)]
    average_heart_rate: Annotated[StrictInt, Field(gt=0, lt=260)]
    max_heart_rate: Annotated[StrictInt, Field(gt=0, lt=260)]


class Cycle(_Doc):
    id: StrictInt
    user_id: StrictInt
    created_at: DateTime
    updated_at: DateTime
    start: DateTime
    end: DateTime | None = None
    timezone_offset: Offset
    score_state: ScoreState
    score: CycleScore | None = None


class SleepStageSummary(_Doc):
    total_in_bed_time_milli: Milli
    total_awake_time_milli: Milli
    total_no_data_time_milli: Milli
    total_light_sleep_time_milli: Milli
    total_slow_wave_sleep_time_milli: Milli
    total_rem_sleep_time_milli: Milli
    sleep_cycle_count: Annotated[StrictInt, Field(ge=0)]
    disturbance_count: Annotated[StrictInt, Field(ge=0)]


class SleepNeeded(_Doc):
    baseline_milli: Milli
    need_from_sleep_debt_milli: Milli
    need_from_recent_strain_milli: Milli
    need_from_recent_nap_milli: Annotated[StrictInt, Field(le=0)]


class SleepScore(_Doc):
    stage_summary: SleepStageSummary
    sleep_needed: SleepNeeded
    respiratory_rate: Annotated[StrictFloat, Field(gt=0, lt=60)] | None = None
    sleep_performance_percentage: Percent | None = None
    sleep_consistency_percentage: Percent | None = None
    sleep_efficiency_percentage: Percent | None = None


class Sleep(_Doc):
    id: Uuid
    cycle_id: StrictInt
    v1_id: StrictInt | None = None
    user_id: StrictInt
    created_at: DateTime
    updated_at: DateTime
    start: DateTime
    end: DateTime
    timezone_offset: Offset
    nap: StrictBool
    score_state: ScoreState
    score: SleepScore | None = None


class RecoveryScore(_Doc):
    user_calibrating: StrictBool
    recovery_score: Percent
    resting_heart_rate: Annotated[StrictFloat, Field(gt=0, lt=200)]
    hrv_rmssd_milli: Annotated[StrictFloat, Field(gt=0, lt=500)]
    spo2_percentage: Percent | None = None
    skin_temp_celsius: Annotated[StrictFloat, Field(gt=20, lt=45)] | None = None


class Recovery(_Doc):
    cycle_id: StrictInt
    sleep_id: Uuid
    user_id: StrictInt
    created_at: DateTime
    updated_at: DateTime
    score_state: ScoreState
    score: RecoveryScore | None = None


class ZoneDurations(_Doc):
    zone_zero_milli: Milli
    zone_one_milli: Milli
    zone_two_milli: Milli
    zone_three_milli: Milli
    zone_four_milli: Milli
    zone_five_milli: Milli


class WorkoutScore(_Doc):
    strain: Annotated[StrictFloat, Field(ge=0, le=21)]
    average_heart_rate: Annotated[StrictInt, Field(gt=0, lt=260)]
    max_heart_rate: Annotated[StrictInt, Field(gt=0, lt=260)]
    kilojoule: Annotated[StrictFloat, Field(ge=0)]
    percent_recorded: Percent
    distance_meter: Annotated[StrictFloat, Field(ge=0)] | None = None
    altitude_gain_meter: Annotated[StrictFloat, Field(ge=0)] | None = None
    altitude_change_meter: StrictFloat | None = None
    zone_durations: ZoneDurations


class WorkoutV2(_Doc):
    id: Uuid
    v1_id: StrictInt | None = None
    user_id: StrictInt
    created_at: DateTime
    updated_at: DateTime
    start: DateTime
    end: DateTime
    timezone_offset: Offset
    sport_name: Annotated[StrictStr, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    score_state: ScoreState
    score: WorkoutScore | None = None
    sport_id: StrictInt | None = None


class UserBasicProfile(_Doc):
    user_id: StrictInt
    email: StrictStr
    first_name: StrictStr
    last_name: StrictStr


class UserBodyMeasurement(_Doc):
    height_meter: Annotated[StrictFloat, Field(gt=0, lt=3)]
    weight_kilogram: Annotated[StrictFloat, Field(gt=0, lt=400)]
    max_heart_rate: Annotated[StrictInt, Field(gt=0, lt=260)]


class _Page(_Doc):
    next_token: StrictStr | None = None


class PaginatedCycleResponse(_Page):
    records: list[Cycle]


class PaginatedSleepResponse(_Page):
    records: list[Sleep]


class RecoveryCollection(_Page):
    records: list[Recovery]


class WorkoutCollection(_Page):
    records: list[WorkoutV2]


class TokenResponse(_Doc):
    access_token: Token
    expires_in: Annotated[StrictInt, Field(gt=0)]
    refresh_token: Token | None = None
    scope: StrictStr
    token_type: Literal["bearer"]


class TokenError(_Doc):
    error: StrictStr
    error_description: StrictStr | None = None


class ActivityMapping(_Doc):
    v2_activity_id: Uuid


class WebhookBody(_Doc):
    user_id: StrictInt
    id: Uuid | StrictInt
    type: Literal[
        "workout.updated",
        "workout.deleted",
        "sleep.updated",
        "sleep.deleted",
        "recovery.updated",
        "recovery.deleted",
    ]
    trace_id: Uuid
