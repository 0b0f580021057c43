-- What the fetchers published per WHOOP resource (processors/resources.py): the WHOOP updated_at and
-- score_state of the last document appended to whoop.documents.v1, when the fetch behind it started
-- (an event received before that is already covered), when a deletion was appended, and the WHOOP
-- trace ids already handled (duplicate webhooks). A recovery's resource id is its cycle id.
CREATE TABLE IF NOT EXISTS fetcher_resources (
    user_id          text        NOT NULL,
    resource_type    text        NOT NULL CHECK (resource_type IN ('cycle', 'sleep', 'recovery', 'workout')),
    resource_id      text        NOT NULL,
    whoop_updated_at timestamptz,
    score_state      text,
    fetched_at       timestamptz,
    published_at     timestamptz,
    deleted_at       timestamptz,
    trace_ids        text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (user_id, resource_type, resource_id)
);
-- The sleep -> cycle link (from every sleep and recovery document seen): recovery.updated costs one call
-- when the sleep is known, and recovery.deleted (which names only the sleep) finds its cycle here.
CREATE TABLE IF NOT EXISTS fetcher_sleep_cycles (
    user_id         text        NOT NULL,
    sleep_id        text        NOT NULL,
    cycle_id        bigint      NOT NULL,
    nap             boolean,
    sleep_start     timestamptz,
    sleep_end       timestamptz,
    timezone_offset text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, sleep_id)
);
CREATE INDEX IF NOT EXISTS fetcher_sleep_cycles_cycle ON fetcher_sleep_cycles (user_id, cycle_id);
