"""Shared infrastructure, written once for every stage: settings, the Kafka adapter (durable appender,
dead letters, exactly-once consumer), PostgreSQL and migrations, the token vault and WHOOP token client,
member keys, the owners of shared tables, HTTP limits. Imports ``schemas`` and libraries, never a stage
or a tool (``docs/architecture.md``, "Dependency rules").
"""
