-- One-time codes that a browser callback hands to the app (in a deep link or on a page) instead of
-- a long-lived token; the app exchanges one for its API token. Hashed, single-use, short-lived.
CREATE TABLE IF NOT EXISTS oauth_exchange_codes (
    code_hash  text PRIMARY KEY,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX IF NOT EXISTS oauth_exchange_codes_expires_at ON oauth_exchange_codes (expires_at);
