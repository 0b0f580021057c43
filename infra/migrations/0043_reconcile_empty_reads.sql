-- Targeted reconciliation's collection reads (a page of workouts over a cycle, of sleeps before a main
-- sleep, of both for a silent member; processors/reconcile.py) that found nothing: the false reads of
-- the checks in processors/reconcile_plan.py, counted per member next to targeted_reads (0041).
ALTER TABLE fetcher_reconciliations ADD COLUMN IF NOT EXISTS targeted_empty bigint NOT NULL DEFAULT 0;
