-- Targeted reconciliation (processors/reconcile.py, processors/reconcile_plan.py): when a member's
-- gaps are next looked for (no WHOOP call: the fetcher's own tables), the targeted reads already
-- enqueued (check key -> when, so a read that found nothing is not repeated before its retry time),
-- and since when the fetcher watches the member (on the fetcher's clock). next_due_at is now the
-- slow full sweep's due time.
ALTER TABLE fetcher_reconciliations ADD COLUMN IF NOT EXISTS next_check_at timestamptz;
ALTER TABLE fetcher_reconciliations ADD COLUMN IF NOT EXISTS watched_since timestamptz;
ALTER TABLE fetcher_reconciliations ADD COLUMN IF NOT EXISTS checks jsonb NOT NULL DEFAULT '{}';
ALTER TABLE fetcher_reconciliations ADD COLUMN IF NOT EXISTS targeted_reads bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS fetcher_reconciliations_check ON fetcher_reconciliations (next_check_at);
