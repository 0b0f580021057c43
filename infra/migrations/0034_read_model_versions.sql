-- Versions of the read models (projections/versions.py). A version is a set of the seven read-model
-- tables (rm_cycles, rm_sleeps, rm_recoveries, rm_workouts, rm_tombstones, rm_daily_summaries,
-- rm_sync_status) in a PostgreSQL schema of its own, projected from one records topic (a generation)
-- with its own stored offsets. Exactly one version is served; a rebuild writes a new one beside it and
-- the switch is one transaction on read_model_serving (which also advances read_model_epoch).
-- Version 1 is the tables migration 0010 made in this schema, projected from the configured records
-- topic with the configured consumer group (records_topic and offsets_group NULL).
CREATE SEQUENCE IF NOT EXISTS read_model_version_numbers START WITH 2;

CREATE TABLE IF NOT EXISTS read_model_versions (
    version       integer     PRIMARY KEY CHECK (version >= 1),
    schema_name   text        NOT NULL UNIQUE,
    records_topic text,                       -- NULL: PROJECTIONS_RECORDS_TOPIC
    offsets_group text        UNIQUE,         -- its key in consumer_offsets; NULL: PROJECTIONS_GROUP_ID
    state         text        NOT NULL CHECK (state IN ('building', 'verified', 'serving', 'retired')),
    bulk          boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    caught_up_at  timestamptz,
    verified_at   timestamptz,
    switched_at   timestamptz,
    verification  jsonb                       -- row counts and checksums per table, when verified
);
INSERT INTO read_model_versions (version, schema_name, state, switched_at)
VALUES (1, current_schema(), 'serving', now())
ON CONFLICT (version) DO NOTHING;

CREATE TABLE IF NOT EXISTS read_model_serving (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  integer NOT NULL REFERENCES read_model_versions (version),
    previous integer REFERENCES read_model_versions (version) ON DELETE SET NULL
);
INSERT INTO read_model_serving (one, version) VALUES (true, 1) ON CONFLICT (one) DO NOTHING;
