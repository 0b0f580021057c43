"""The fetcher and the normalizer: WHOOP webhooks and connection events into raw documents on
``whoop.documents.v1`` (faust-streaming, quota-aware), and documents into canonical records on
``wear.records.v1``; also backfill, reconciliation and re-normalization (``docs/processors.md``).
Imports ``schemas`` and ``infra`` only, never another stage.
"""
