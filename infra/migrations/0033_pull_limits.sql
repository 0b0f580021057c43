-- Pull limits (ingest/pull_jobs.py) and fair backfill (processors/backfill.py, processors/task_queue.py).

-- At most one active (requested or running) pull job per member. Members who already hold several
-- keep their newest; the older ones are marked failed, as a new pull would supersede them.
UPDATE pull_jobs AS p SET status = 'failed', error = 'superseded', updated_at = now()
WHERE p.status IN ('requested', 'running')
  AND EXISTS (
      SELECT 1 FROM pull_jobs AS q
      WHERE q.user_id = p.user_id AND q.status IN ('requested', 'running')
        AND (q.created_at, q.job_id) > (p.created_at, p.job_id)
  );
CREATE UNIQUE INDEX IF NOT EXISTS pull_jobs_one_active ON pull_jobs (user_id)
    WHERE status IN ('requested', 'running');

-- When a member's backfill last fetched a page: workers take backfill work from the member served
-- least recently (round-robin by member), so one member's long pull cannot hold back another's.
CREATE TABLE IF NOT EXISTS fetcher_backfill_turns (
    user_id    text PRIMARY KEY,
    served_at  timestamptz NOT NULL
);
