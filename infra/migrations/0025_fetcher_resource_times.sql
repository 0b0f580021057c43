-- When each fetched record happened (its own start and end, from the document), so a reconciliation
-- sweep can tell which records it should have seen in its window: one it did not see was deleted at
-- WHOOP while the deletion webhook was lost (processors/reconcile.py).
ALTER TABLE fetcher_resources ADD COLUMN IF NOT EXISTS record_start timestamptz;
ALTER TABLE fetcher_resources ADD COLUMN IF NOT EXISTS record_end timestamptz;
CREATE INDEX IF NOT EXISTS fetcher_resources_window
    ON fetcher_resources (user_id, resource_type, record_start) WHERE deleted_at IS NULL;
