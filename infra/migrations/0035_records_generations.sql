-- Records generations (processors/generations.py). A generation is a records topic: what one
-- normalizer made of whoop.documents.v1. Generation 1 is the configured records topic
-- (PROCESSORS_RECORDS_TOPIC, topic NULL); `python -m processors renormalize` registers generation N
-- (<records topic>.g<N>) and fills it from the documents. The live normalizer writes each batch's
-- records to the configured topic and to every generation not dropped.
CREATE SEQUENCE IF NOT EXISTS records_generation_numbers START WITH 2;

CREATE TABLE IF NOT EXISTS records_generations (
    generation          integer     PRIMARY KEY CHECK (generation >= 1),
    topic               text        UNIQUE,      -- NULL: the configured PROCESSORS_RECORDS_TOPIC
    normalizer_version  integer     CHECK (normalizer_version >= 1),  -- NULL: whatever made generation 1
    state               text        NOT NULL CHECK (state IN ('filling', 'complete', 'dropped')),
    since               timestamptz,             -- re-normalized only documents stored at or after it
    documents_topic     text,
    documents_offsets   jsonb,                   -- {"<partition>": end offset} the renormalizer filled it to
    copied_from         text,                    -- with since: the generation topic copied first
    copied_offsets      jsonb,                   -- {"<partition>": end offset} copied from it
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    dropped_at          timestamptz,
    CHECK ((generation = 1) = (topic IS NULL))
);
INSERT INTO records_generations (generation, state, completed_at)
VALUES (1, 'complete', now())
ON CONFLICT (generation) DO NOTHING;
