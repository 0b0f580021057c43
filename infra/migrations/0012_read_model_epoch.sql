-- The epoch of the read models: `python -m projections rebuild` adds one to it in the transaction that
-- empties them. The query API derives its ETags from (epoch, the member's records_applied), so a tag
-- taken before a rebuild never matches after it, even when the rebuilt member has applied as many
-- records as before (the rows may still differ, e.g. after a projection fix).
CREATE TABLE IF NOT EXISTS read_model_epoch (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0)
);
INSERT INTO read_model_epoch (one, epoch) VALUES (true, 0) ON CONFLICT (one) DO NOTHING;
