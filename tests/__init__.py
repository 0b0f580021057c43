"""The test suite: unit, integration (real Kafka and PostgreSQL), e2e, and shared ``support``. May import
every package of the tree; no product package imports it.
"""
