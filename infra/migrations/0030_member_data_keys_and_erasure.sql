-- Crypto-shredding and erasure (ADR 0004).
-- member_data_keys: one random AES-256 data key per member, wrapped by the token vault's keyring
-- (key_id names the wrapping key, the associated data binds it to user_id). Every health payload on
-- whoop.documents.v1 and wear.records.v1 is sealed with it; deleting the row erases them all.
CREATE TABLE IF NOT EXISTS member_data_keys (
    user_id     text PRIMARY KEY,
    key_id      text        NOT NULL,
    nonce       bytea       NOT NULL,
    wrapped     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- erased_members: the members being or having been erased, by the sha256 (hex) of their user id
-- only. Every stage that writes a member's rows checks it under the member's advisory lock
-- (infra/erasure_gate.py), so nothing of an erased member is written back after the erasure.
-- A member who connects again is removed from it.
CREATE TABLE IF NOT EXISTS erased_members (
    user_hash  text PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);

-- erasures: erasure jobs (DELETE /v1/me, python -m ingest erase), tracked like pulls. user_id is
-- kept only while the job is pending (a crashed job resumes with it) and cleared when it is done:
-- afterwards only the hash remains, and no row names the member.
CREATE TABLE IF NOT EXISTS erasures (
    job_id        uuid PRIMARY KEY,
    user_id       text,
    user_hash     text        NOT NULL,
    requested_by  text        NOT NULL,
    status        text        NOT NULL DEFAULT 'requested'
                  CHECK (status IN ('requested', 'running', 'done')),
    progress      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error         text,
    attempts      integer     NOT NULL DEFAULT 0,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'done' OR user_id IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS erasures_active_per_member
    ON erasures (user_hash) WHERE status IN ('requested', 'running');
CREATE INDEX IF NOT EXISTS erasures_pending ON erasures (status, lease_until)
    WHERE status IN ('requested', 'running');
