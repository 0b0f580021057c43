-- OAuth hardening (docs/ingest.md, "Connecting a WHOOP account").
-- oauth_states: the PKCE code_verifier we send to WHOOP (kept only until the state is consumed), the
-- sha256 of the browser's binding cookie, and the app's own S256 code_challenge (SDK flow).
ALTER TABLE oauth_states ADD COLUMN IF NOT EXISTS code_verifier text;
ALTER TABLE oauth_states ADD COLUMN IF NOT EXISTS binding_hash text;
ALTER TABLE oauth_states ADD COLUMN IF NOT EXISTS app_code_challenge text;

-- oauth_exchange_codes: the app's challenge carries over from the state (the exchange then needs the
-- verifier); the user_id index lets a disconnect or an erasure delete a member's pending codes.
ALTER TABLE oauth_exchange_codes ADD COLUMN IF NOT EXISTS app_code_challenge text;
CREATE INDEX IF NOT EXISTS oauth_exchange_codes_user_id ON oauth_exchange_codes (user_id);

-- api_tokens: every token expires (computed when issued); tokens issued before this migration get
-- 90 days from now, so no phone is logged out by the deployment. device_id: issuing a token for
-- (user, device) revokes that pair's live tokens (NULL: tokens issued outside the OAuth routes).
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS expires_at timestamptz NOT NULL
    DEFAULT (now() + interval '90 days');
ALTER TABLE api_tokens ALTER COLUMN expires_at DROP DEFAULT;
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS device_id text;
CREATE INDEX IF NOT EXISTS api_tokens_user_device ON api_tokens (user_id, device_id) WHERE revoked_at IS NULL;
