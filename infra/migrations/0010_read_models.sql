-- Read models of the projections (projections/store.py), materialized from wear.records.v1.
-- Base tables hold the latest version of each live resource: a row changes only when a record with a
-- greater (version, normalizer_version) arrives, where version is WHOOP's updated_at. Deletions live in
-- rm_tombstones (their version is the deletion record's occurred_at): an upsert not newer than the
-- tombstone of its key is ignored, so a stale upsert never resurrects a deleted row. Nothing here reads
-- the clock: replaying the log from offset 0 rebuilds identical tables.

CREATE TABLE IF NOT EXISTS rm_cycles (
    user_id                text        NOT NULL,
    cycle_id               bigint      NOT NULL,
    whoop_user_id          bigint      NOT NULL,
    version                timestamptz NOT NULL,
    normalizer_version     bigint      NOT NULL,
    score_state            text        NOT NULL,
    start_at               timestamptz NOT NULL,
    end_at                 timestamptz,
    timezone_offset        text        NOT NULL,
    local_date             date        NOT NULL,
    strain                 double precision,
    energy_kcal            double precision,
    average_heart_rate_bpm bigint,
    max_heart_rate_bpm     bigint,
    document               jsonb       NOT NULL,
    -- open or longer than 7 days: found by a second, small index when a window is filtered by start
    long_span              boolean GENERATED ALWAYS AS (end_at IS NULL OR end_at - start_at > interval '7 days') STORED,
    PRIMARY KEY (user_id, cycle_id)
);
CREATE INDEX IF NOT EXISTS rm_cycles_by_start ON rm_cycles (user_id, start_at DESC, cycle_id DESC);
CREATE INDEX IF NOT EXISTS rm_cycles_long ON rm_cycles (user_id, start_at DESC, cycle_id DESC) WHERE long_span;
CREATE INDEX IF NOT EXISTS rm_cycles_by_date ON rm_cycles (user_id, local_date);

CREATE TABLE IF NOT EXISTS rm_sleeps (
    user_id              text        NOT NULL,
    sleep_id             text COLLATE "C" NOT NULL,
    whoop_user_id        bigint      NOT NULL,
    version              timestamptz NOT NULL,
    normalizer_version   bigint      NOT NULL,
    score_state          text        NOT NULL,
    cycle_id             bigint      NOT NULL,
    nap                  boolean     NOT NULL,
    start_at             timestamptz NOT NULL,
    end_at               timestamptz NOT NULL,
    timezone_offset      text        NOT NULL,
    local_date           date        NOT NULL,
    in_bed_ms            bigint,
    awake_ms             bigint,
    light_ms             bigint,
    slow_wave_ms         bigint,
    rem_ms               bigint,
    no_data_ms           bigint,
    asleep_ms            bigint,
    sleep_needed_ms      bigint,
    sleep_cycle_count    bigint,
    disturbance_count    bigint,
    respiratory_rate_bpm double precision,
    performance_pct      double precision,
    consistency_pct      double precision,
    efficiency_pct       double precision,
    document             jsonb       NOT NULL,
    long_span            boolean GENERATED ALWAYS AS (end_at - start_at > interval '7 days') STORED,
    PRIMARY KEY (user_id, sleep_id)
);
CREATE INDEX IF NOT EXISTS rm_sleeps_by_start ON rm_sleeps (user_id, start_at DESC, sleep_id DESC);
CREATE INDEX IF NOT EXISTS rm_sleeps_long ON rm_sleeps (user_id, start_at DESC, sleep_id DESC) WHERE long_span;
CREATE INDEX IF NOT EXISTS rm_sleeps_by_date ON rm_sleeps (user_id, local_date);

-- A recovery is keyed by its cycle; start_at, end_at and day are derived (recomputed by every batch that
-- touches the recovery, its sleep or its cycle): the related sleep's bounds (WHOOP orders and windows
-- recoveries by them), else the cycle's start, else WHOOP's created_at; day is the recorded local date,
-- else the sleep's, else the cycle's.
CREATE TABLE IF NOT EXISTS rm_recoveries (
    user_id                text        NOT NULL,
    cycle_id               bigint      NOT NULL,
    sleep_id               text        NOT NULL,
    whoop_user_id          bigint      NOT NULL,
    version                timestamptz NOT NULL,
    normalizer_version     bigint      NOT NULL,
    score_state            text        NOT NULL,
    local_date             date,
    created_at             timestamptz NOT NULL,
    user_calibrating       boolean,
    recovery_score_pct     double precision,
    resting_heart_rate_bpm double precision,
    hrv_rmssd_ms           double precision,
    spo2_pct               double precision,
    skin_temp_c            double precision,
    document               jsonb       NOT NULL,
    start_at               timestamptz NOT NULL,
    end_at                 timestamptz,
    day                    date,
    long_span              boolean GENERATED ALWAYS AS (end_at IS NULL OR end_at - start_at > interval '7 days') STORED,
    PRIMARY KEY (user_id, cycle_id)
);
CREATE INDEX IF NOT EXISTS rm_recoveries_by_start ON rm_recoveries (user_id, start_at DESC, cycle_id DESC);
CREATE INDEX IF NOT EXISTS rm_recoveries_long ON rm_recoveries (user_id, start_at DESC, cycle_id DESC) WHERE long_span;
CREATE INDEX IF NOT EXISTS rm_recoveries_by_sleep ON rm_recoveries (user_id, sleep_id);
CREATE INDEX IF NOT EXISTS rm_recoveries_by_day ON rm_recoveries (user_id, day);

CREATE TABLE IF NOT EXISTS rm_workouts (
    user_id                text        NOT NULL,
    workout_id             text COLLATE "C" NOT NULL,
    whoop_user_id          bigint      NOT NULL,
    version                timestamptz NOT NULL,
    normalizer_version     bigint      NOT NULL,
    score_state            text        NOT NULL,
    sport_name             text        NOT NULL,
    sport_id               bigint,
    start_at               timestamptz NOT NULL,
    end_at                 timestamptz NOT NULL,
    timezone_offset        text        NOT NULL,
    local_date             date        NOT NULL,
    strain                 double precision,
    energy_kcal            double precision,
    average_heart_rate_bpm bigint,
    max_heart_rate_bpm     bigint,
    percent_recorded       double precision,
    distance_m             double precision,
    altitude_gain_m        double precision,
    altitude_change_m      double precision,
    zone_ms                bigint[],
    document               jsonb       NOT NULL,
    long_span              boolean GENERATED ALWAYS AS (end_at - start_at > interval '7 days') STORED,
    PRIMARY KEY (user_id, workout_id)
);
CREATE INDEX IF NOT EXISTS rm_workouts_by_start ON rm_workouts (user_id, start_at DESC, workout_id DESC);
CREATE INDEX IF NOT EXISTS rm_workouts_long ON rm_workouts (user_id, start_at DESC, workout_id DESC) WHERE long_span;
CREATE INDEX IF NOT EXISTS rm_workouts_by_date ON rm_workouts (user_id, local_date);

-- The greatest deletion seen per resource (resource_id: cycle id or recovery's cycle id as text, sleep or
-- workout uuid). Kept after the row is gone, so that an older upsert replayed later stays ignored.
CREATE TABLE IF NOT EXISTS rm_tombstones (
    user_id            text        NOT NULL,
    resource_type      text        NOT NULL CHECK (resource_type IN ('cycle', 'sleep', 'recovery', 'workout')),
    resource_id        text        NOT NULL,
    version            timestamptz NOT NULL,
    normalizer_version bigint      NOT NULL,
    PRIMARY KEY (user_id, resource_type, resource_id)
);

-- One row per member and local date with anything recorded; recomputed from the base tables for every
-- (member, date) a batch touches. Recovery: of that day (latest sleep start if several); sleep: the main
-- (non-nap) sleep that ended that day (latest start if several), naps summed apart; strain and calories:
-- the cycle of that day.
CREATE TABLE IF NOT EXISTS rm_daily_summaries (
    user_id                text   NOT NULL,
    local_date             date   NOT NULL,
    recovery_cycle_id      bigint,
    recovery_score_pct     double precision,
    hrv_rmssd_ms           double precision,
    resting_heart_rate_bpm double precision,
    spo2_pct               double precision,
    skin_temp_c            double precision,
    sleep_id               text,
    sleep_performance_pct  double precision,
    sleep_duration_ms      bigint,
    in_bed_ms              bigint,
    nap_count              bigint NOT NULL DEFAULT 0,
    nap_duration_ms        bigint,
    cycle_id               bigint,
    day_strain             double precision,
    energy_kcal            double precision,
    workout_count          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, local_date)
);

-- What the projection applied per member: the newest record (by its occurred_at) and WHOOP version, and a
-- counter of applied records (each applied exactly once, so it is also the member's data version: the
-- query API derives its ETags from it).
CREATE TABLE IF NOT EXISTS rm_sync_status (
    user_id              text        PRIMARY KEY,
    whoop_user_id        bigint,
    last_record_at       timestamptz,
    last_whoop_update_at timestamptz,
    records_applied      bigint      NOT NULL
);

-- Fed by the sync-activity projection (whoop.webhooks.v1 and whoop.documents.v1, its own consumer group).
CREATE TABLE IF NOT EXISTS rm_sync_activity (
    user_id         text PRIMARY KEY,
    last_webhook_at timestamptz,
    last_fetch_at   timestamptz,
    webhooks_seen   bigint NOT NULL DEFAULT 0,
    documents_seen  bigint NOT NULL DEFAULT 0
);
