"""The read models' columns, in the order of their rows: one tuple per table.

``projections.sql`` and ``projections.bulk_sql`` build their statements from these lists, and
``projections.rows`` builds each row in this order (``ROW_SOURCES``).
"""

from __future__ import annotations

__all__ = ["CYCLE_COLUMNS", "RECOVERY_COLUMNS", "SLEEP_COLUMNS", "SLEEP_MS_COLUMNS", "WORKOUT_COLUMNS"]

_SPAN = ("start_at", "end_at", "timezone_offset", "local_date")
_EFFORT = ("strain", "energy_kcal", "average_heart_rate_bpm", "max_heart_rate_bpm")
SLEEP_MS_COLUMNS = (
    "in_bed_ms",
    "awake_ms",
    "light_ms",
    "slow_wave_ms",
    "rem_ms",
    "no_data_ms",
    "asleep_ms",
    "sleep_needed_ms",
)
"""A sleep's durations in milliseconds (``bigint`` columns)."""

CYCLE_COLUMNS = (
    "user_id",
    "cycle_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    *_SPAN,
    *_EFFORT,
    "document",
)
SLEEP_COLUMNS = (
    "user_id",
    "sleep_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    "cycle_id",
    "nap",
    *_SPAN,
    *SLEEP_MS_COLUMNS,
    "sleep_cycle_count",
    "disturbance_count",
    "respiratory_rate_bpm",
    "performance_pct",
    "consistency_pct",
    "efficiency_pct",
    "document",
)
RECOVERY_COLUMNS = (
    "user_id",
    "cycle_id",
    "sleep_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    "local_date",
    "created_at",
    "user_calibrating",
    "recovery_score_pct",
    "resting_heart_rate_bpm",
    "hrv_rmssd_ms",
    "spo2_pct",
    "skin_temp_c",
    "document",
)
WORKOUT_COLUMNS = (
    "user_id",
    "workout_id",
    "whoop_user_id",
    "version",
    "normalizer_version",
    "score_state",
    "sport_name",
    "sport_id",
    *_SPAN,
    *_EFFORT,
    "percent_recorded",
    "distance_m",
    "altitude_gain_m",
    "altitude_change_m",
    "zone_ms",
    "document",
)
