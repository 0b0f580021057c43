-- Offsets of Kafka consumers that keep them beside their effects (exactly-once projections):
-- the row for (group, topic, partition) is written in the same transaction as the effects.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer_group text   NOT NULL,
    topic          text   NOT NULL,
    partition      int    NOT NULL CHECK (partition >= 0),
    next_offset    bigint NOT NULL CHECK (next_offset >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
