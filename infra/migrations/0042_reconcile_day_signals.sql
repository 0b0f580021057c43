-- What targeted reconciliation reads from a fetched document beyond its times
-- (processors/reconcile_plan.py): a cycle's and a workout's strain (a cycle its known workouts do not
-- explain had a workout whose webhook was lost) and a main sleep's need_from_recent_nap_milli (a nap
-- lowered it that we never heard of). Erased with the member's other fetcher rows (ingest/erasure.py).
ALTER TABLE fetcher_resources ADD COLUMN IF NOT EXISTS strain double precision;
ALTER TABLE fetcher_resources ADD COLUMN IF NOT EXISTS nap_need_ms bigint;
