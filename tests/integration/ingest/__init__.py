"""Integration tests of the ingest edge (real Kafka, PostgreSQL and the WHOOP simulator)."""
