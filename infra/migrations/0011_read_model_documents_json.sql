-- The WHOOP documents of the read models as json (the text as the record carries it) instead of jsonb.
-- Nothing reads them with jsonb operators: the query API serves them as text (document::text), and
-- jsonb's input (parsing into its binary form) was the largest single cost of a rebuild; see
-- docs/adr/0003-read-model-documents-as-json.md. Rewrites the four tables once.
ALTER TABLE rm_cycles ALTER COLUMN document TYPE json USING document::json;
ALTER TABLE rm_sleeps ALTER COLUMN document TYPE json USING document::json;
ALTER TABLE rm_recoveries ALTER COLUMN document TYPE json USING document::json;
ALTER TABLE rm_workouts ALTER COLUMN document TYPE json USING document::json;
