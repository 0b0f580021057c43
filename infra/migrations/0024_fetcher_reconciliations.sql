-- Reconciliation bookkeeping per member (processors/reconcile.py): when the next cheap sweep of WHOOP's
-- collections is due, when the last one started and finished, what it cost and how many documents it
-- found that webhooks had missed. last_finished_at is "checked against WHOOP up to here".
CREATE TABLE IF NOT EXISTS fetcher_reconciliations (
    user_id          text        PRIMARY KEY,
    next_due_at      timestamptz NOT NULL,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_calls       int         NOT NULL DEFAULT 0,
    last_published   int         NOT NULL DEFAULT 0,
    runs             bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fetcher_reconciliations_due ON fetcher_reconciliations (next_due_at);
