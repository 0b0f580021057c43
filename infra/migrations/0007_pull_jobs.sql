-- Pull (backfill) jobs: requested at the edge (connect, POST /v1/pull/{user_id}); the fetcher
-- moves them to running/done/failed and reports progress (a JSON object, e.g. pages and records per type).
CREATE TABLE IF NOT EXISTS pull_jobs (
    job_id         text PRIMARY KEY,
    user_id        text NOT NULL,
    resource_types text[] NOT NULL,
    range_start    timestamptz NOT NULL,
    range_end      timestamptz NOT NULL CHECK (range_end > range_start),
    status         text NOT NULL DEFAULT 'requested'
                   CHECK (status IN ('requested', 'running', 'done', 'failed')),
    requested_by   text NOT NULL,
    progress       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS pull_jobs_user_id ON pull_jobs (user_id, created_at DESC);
