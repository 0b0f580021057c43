-- One row per WHOOP member who ever connected: our user id (uuid5 of the member id), the member id,
-- the connection status and the scopes WHOOP granted. A reconnect updates the row in place.
CREATE TABLE IF NOT EXISTS whoop_connections (
    user_id         text PRIMARY KEY,
    whoop_user_id   bigint NOT NULL UNIQUE CHECK (whoop_user_id >= 0),
    status          text NOT NULL CHECK (status IN ('connected', 'needs_reauth', 'disconnected')),
    scopes          text[] NOT NULL DEFAULT '{}',
    connected_at    timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    disconnected_at timestamptz
);
