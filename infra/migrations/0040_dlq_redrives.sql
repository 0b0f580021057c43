-- Dead-letter redrives (wear/dlq_redrive.py, `wear dlq redrive`): one row per dead letter redriven, so a
-- dead letter is redriven at most once. The row is written in the transaction that carries out the
-- redrive (a projection's read-model change commits with it; a normalizer's records are acknowledged by
-- Kafka before it commits), and a second redrive of the same id finds it and does nothing.
CREATE TABLE IF NOT EXISTS dlq_redrives (
    dlq_topic       text        NOT NULL,
    dlq_partition   integer     NOT NULL,
    dlq_offset      bigint      NOT NULL,
    stage           text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('landed', 'dead_lettered', 'erased')),
    landed          integer     NOT NULL DEFAULT 0,   -- records produced or read-model rows changed
    requeued_as     text,                             -- outcome dead_lettered: the new dead letter, <partition>:<offset>
    redriven_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);
