-- The fetchers' one WHOOP quota (processors/quota.py): a bucket per WHOOP app holding the number of the
-- next grant, and the recent grants by number. A request may go when the grant made `allowed` grants
-- earlier is older than the window (exact sliding minute and day windows, shared by every process).
-- paused_until: nobody sends before it (WHOOP answered 429 and said when its window resets).
CREATE TABLE IF NOT EXISTS fetcher_quota (
    bucket          text PRIMARY KEY,
    next_seq        bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0),
    last_granted_at timestamptz,
    paused_until    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS fetcher_quota_grants (
    bucket     text        NOT NULL,
    seq        bigint      NOT NULL CHECK (seq >= 0),
    granted_at timestamptz NOT NULL,
    priority   smallint    NOT NULL,
    PRIMARY KEY (bucket, seq)
);
