-- The token vault: each member's WHOOP access + refresh token pair, AES-GCM encrypted (infra/vault.py).
-- key_id names the key that sealed the row (rotation); the associated data binds it to user_id.
CREATE TABLE IF NOT EXISTS whoop_tokens (
    user_id           text PRIMARY KEY,
    key_id            text NOT NULL,
    nonce             bytea NOT NULL CHECK (length(nonce) = 12),
    ciphertext        bytea NOT NULL,
    scopes            text[] NOT NULL DEFAULT '{}',
    access_expires_at timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS whoop_tokens_key_id ON whoop_tokens (key_id);
