-- OAuth `state` values handed to WHOOP: stored as sha256 hashes, single-use (used_at), expiring,
-- and bound to the WHOOP client and the redirect URI of the authorize request.
CREATE TABLE IF NOT EXISTS oauth_states (
    state_hash   text PRIMARY KEY,
    client_id    text NOT NULL,
    redirect_uri text NOT NULL,
    return_to    text,
    client_state text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX IF NOT EXISTS oauth_states_expires_at ON oauth_states (expires_at);
