-- Progress of each backfill (pull) job per resource type, written by the fetcher page by page
-- (processors/backfill.py). The job as a whole stays in pull_jobs (0007), whose status and progress the
-- fetcher keeps in step; this table is the detail a sync-status view reads.
CREATE TABLE IF NOT EXISTS fetcher_backfill_progress (
    job_id        text        NOT NULL,
    user_id       text        NOT NULL,
    resource_type text        NOT NULL CHECK (resource_type IN ('cycle', 'sleep', 'recovery', 'workout')),
    range_start   timestamptz NOT NULL,
    range_end     timestamptz NOT NULL,
    status        text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    pages         int         NOT NULL DEFAULT 0,
    records       int         NOT NULL DEFAULT 0,
    calls         int         NOT NULL DEFAULT 0,
    error         text,
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, resource_type)
);
CREATE INDEX IF NOT EXISTS fetcher_backfill_progress_user ON fetcher_backfill_progress (user_id, updated_at DESC);
