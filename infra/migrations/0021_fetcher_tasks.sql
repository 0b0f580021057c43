-- The fetchers' work queue (processors/task_queue.py): one row per pending piece of work on one resource,
-- so duplicate webhooks for a resource merge into one row (one WHOOP call). kind: workout | sleep (the
-- sleep and/or its recovery, per `wants`) | backfill (one collection of one pull job) | reconcile.
-- priority: 0 live webhook, 1 pending-score re-fetch, 2 reconciliation, 3 backfill. A worker claims the
-- most urgent due row with a lease; a dead worker's lease expires and the row runs again. `generation`
-- grows with every merge, so a worker finishing an older generation leaves the newer work in place.
-- parked: the member must authorize again; the row waits for the reconnect (never dropped).
CREATE TABLE IF NOT EXISTS fetcher_tasks (
    task_id            bigserial PRIMARY KEY,
    user_id            text        NOT NULL,
    whoop_user_id      bigint      NOT NULL CHECK (whoop_user_id >= 0),
    kind               text        NOT NULL,
    resource_id        text        NOT NULL,
    wants              text[]      NOT NULL DEFAULT '{}',
    priority           smallint    NOT NULL CHECK (priority BETWEEN 0 AND 3),
    due_at             timestamptz NOT NULL,
    parked             boolean     NOT NULL DEFAULT false,
    generation         bigint      NOT NULL DEFAULT 0,
    latest_event_at    timestamptz,
    caused_by          text[]      NOT NULL DEFAULT '{}',
    trace_ids          text[]      NOT NULL DEFAULT '{}',
    pending_attempts   int         NOT NULL DEFAULT 0,
    not_found_attempts int         NOT NULL DEFAULT 0,
    error_attempts     int         NOT NULL DEFAULT 0,
    payload            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    origin             jsonb,
    last_error         text,
    lease_owner        text,
    lease_until        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, kind, resource_id)
);
CREATE INDEX IF NOT EXISTS fetcher_tasks_due ON fetcher_tasks (priority, due_at) WHERE NOT parked;
CREATE INDEX IF NOT EXISTS fetcher_tasks_user ON fetcher_tasks (user_id);
