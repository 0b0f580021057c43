-- Our own per-user API tokens: only the sha256 of the token is stored; revocable.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id   text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    user_id    text NOT NULL,
    scopes     text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS api_tokens_user_id ON api_tokens (user_id) WHERE revoked_at IS NULL;
