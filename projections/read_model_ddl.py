"""The DDL of one version of the read models, run in that version's schema (``projections.versions``).

The same tables as migrations 0010 and 0011 made for version 1 (documents as ``json``), in three
parts, so that a version loaded in bulk can be created without its keys and indexes and get them
after the load (``projections.bulk``): :data:`TABLES`, then :data:`KEYS` (primary keys), then
:data:`INDEXES`. Names are unqualified: they land in the first schema of the ``search_path``.
``tests/integration/projections/test_versions.py`` checks that a new version's catalog matches
version 1's, so the two cannot drift apart.
"""

from __future__ import annotations

__all__ = ["INDEXES", "KEYS", "TABLES", "VERSIONED_TABLES"]

VERSIONED_TABLES: tuple[str, ...] = (
    "rm_cycles",
    "rm_sleeps",
    "rm_recoveries",
    "rm_workouts",
    "rm_tombstones",
    "rm_daily_summaries",
    "rm_sync_status",
)
"""The tables of a version: every read model that is a function of the records topic alone."""

_STRAIN_SCORE = """strain double precision,
    energy_kcal double precision,
    average_heart_rate_bpm bigint,
    max_heart_rate_bpm bigint,"""
"""The strain score columns, alike in a cycle and a workout (WHOOP scores both the same way)."""

TABLES: tuple[str, ...] = (
    f"""
CREATE TABLE rm_cycles (
    user_id text NOT NULL,
    cycle_id bigint NOT NULL,
    whoop_user_id bigint NOT NULL,
    version timestamptz NOT NULL,
    normalizer_version bigint NOT NULL,
    score_state text NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz,
    timezone_offset text NOT NULL,
    local_date date NOT NULL,
    {_STRAIN_SCORE}
    document json NOT NULL,
    -- open or longer than 7 days: found by a second, small index when a window is filtered by start
    long_span boolean GENERATED ALWAYS AS (end_at IS NULL OR end_at - start_at > interval '7 days') STORED
)
""",
    """
CREATE TABLE rm_sleeps (
    user_id text NOT NULL,
    sleep_id text COLLATE "C" NOT NULL,
    whoop_user_id bigint NOT NULL,
    version timestamptz NOT NULL,
    normalizer_version bigint NOT NULL,
    score_state text NOT NULL,
    cycle_id bigint NOT NULL,
    nap boolean NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    timezone_offset text NOT NULL,
    local_date date NOT NULL,
    in_bed_ms bigint,
    awake_ms bigint,
    light_ms bigint,
    slow_wave_ms bigint,
    rem_ms bigint,
    no_data_ms bigint,
    asleep_ms bigint,
    sleep_needed_ms bigint,
    sleep_cycle_count bigint,
    disturbance_count bigint,
    respiratory_rate_bpm double precision,
    performance_pct double precision,
    consistency_pct double precision,
    efficiency_pct double precision,
    document json NOT NULL,
    long_span boolean GENERATED ALWAYS AS (end_at - start_at > interval '7 days') STORED
)
""",
    """
CREATE TABLE rm_recoveries (
    user_id text NOT NULL,
    cycle_id bigint NOT NULL,
    sleep_id text NOT NULL,
    whoop_user_id bigint NOT NULL,
    version timestamptz NOT NULL,
    normalizer_version bigint NOT NULL,
    score_state text NOT NULL,
    local_date date,
    created_at timestamptz NOT NULL,
    user_calibrating boolean,
    recovery_score_pct double precision,
    resting_heart_rate_bpm double precision,
    hrv_rmssd_ms double precision,
    spo2_pct double precision,
    skin_temp_c double precision,
    document json NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz,
    day date,
    long_span boolean GENERATED ALWAYS AS (end_at IS NULL OR end_at - start_at > interval '7 days') STORED
)
""",
    f"""
CREATE TABLE rm_workouts (
    user_id text NOT NULL,
    workout_id text COLLATE "C" NOT NULL,
    whoop_user_id bigint NOT NULL,
    version timestamptz NOT NULL,
    normalizer_version bigint NOT NULL,
    score_state text NOT NULL,
    sport_name text NOT NULL,
    sport_id bigint,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    timezone_offset text NOT NULL,
    local_date date NOT NULL,
    {_STRAIN_SCORE}
    percent_recorded double precision,
    distance_m double precision,
    altitude_gain_m double precision,
    altitude_change_m double precision,
    zone_ms bigint[],
    document json NOT NULL,
    long_span boolean GENERATED ALWAYS AS (end_at - start_at > interval '7 days') STORED
)
""",
    """
CREATE TABLE rm_tombstones (
    user_id text NOT NULL,
    resource_type text NOT NULL CHECK (resource_type IN ('cycle', 'sleep', 'recovery', 'workout')),
    resource_id text NOT NULL,
    version timestamptz NOT NULL,
    normalizer_version bigint NOT NULL
)
""",
    """
CREATE TABLE rm_daily_summaries (
    user_id text NOT NULL,
    local_date date NOT NULL,
    recovery_cycle_id bigint,
    recovery_score_pct double precision,
    hrv_rmssd_ms double precision,
    resting_heart_rate_bpm double precision,
    spo2_pct double precision,
    skin_temp_c double precision,
    sleep_id text,
    sleep_performance_pct double precision,
    sleep_duration_ms bigint,
    in_bed_ms bigint,
    nap_count bigint NOT NULL DEFAULT 0,
    nap_duration_ms bigint,
    cycle_id bigint,
    day_strain double precision,
    energy_kcal double precision,
    workout_count bigint NOT NULL DEFAULT 0
)
""",
    """
CREATE TABLE rm_sync_status (
    user_id text NOT NULL,
    whoop_user_id bigint,
    last_record_at timestamptz,
    last_whoop_update_at timestamptz,
    records_applied bigint NOT NULL
)
""",
)
KEYS: tuple[str, ...] = (
    "ALTER TABLE rm_cycles ADD PRIMARY KEY (user_id, cycle_id)",
    "ALTER TABLE rm_sleeps ADD PRIMARY KEY (user_id, sleep_id)",
    "ALTER TABLE rm_recoveries ADD PRIMARY KEY (user_id, cycle_id)",
    "ALTER TABLE rm_workouts ADD PRIMARY KEY (user_id, workout_id)",
    "ALTER TABLE rm_tombstones ADD PRIMARY KEY (user_id, resource_type, resource_id)",
    "ALTER TABLE rm_daily_summaries ADD PRIMARY KEY (user_id, local_date)",
    "ALTER TABLE rm_sync_status ADD PRIMARY KEY (user_id)",
)
INDEXES: tuple[str, ...] = (
    "CREATE INDEX rm_cycles_by_start ON rm_cycles (user_id, start_at DESC, cycle_id DESC)",
    "CREATE INDEX rm_cycles_long ON rm_cycles (user_id, start_at DESC, cycle_id DESC) WHERE long_span",
    "CREATE INDEX rm_cycles_by_date ON rm_cycles (user_id, local_date)",
    "CREATE INDEX rm_sleeps_by_start ON rm_sleeps (user_id, start_at DESC, sleep_id DESC)",
    "CREATE INDEX rm_sleeps_long ON rm_sleeps (user_id, start_at DESC, sleep_id DESC) WHERE long_span",
    "CREATE INDEX rm_sleeps_by_date ON rm_sleeps (user_id, local_date)",
    "CREATE INDEX rm_recoveries_by_start ON rm_recoveries (user_id, start_at DESC, cycle_id DESC)",
    "CREATE INDEX rm_recoveries_long ON rm_recoveries (user_id, start_at DESC, cycle_id DESC)"
    " WHERE long_span",
    "CREATE INDEX rm_recoveries_by_sleep ON rm_recoveries (user_id, sleep_id)",
    "CREATE INDEX rm_recoveries_by_day ON rm_recoveries (user_id, day)",
    "CREATE INDEX rm_workouts_by_start ON rm_workouts (user_id, start_at DESC, workout_id DESC)",
    "CREATE INDEX rm_workouts_long ON rm_workouts (user_id, start_at DESC, workout_id DESC) WHERE long_span",
    "CREATE INDEX rm_workouts_by_date ON rm_workouts (user_id, local_date)",
)
