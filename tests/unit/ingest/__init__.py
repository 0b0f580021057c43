"""Unit tests of the ingest edge."""
