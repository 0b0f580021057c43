"""The ingest edge: verified WHOOP webhooks into Kafka, the OAuth connection, pulls, per-user API tokens.

``python -m ingest`` serves :func:`ingest.app.create_app` with uvicorn; see ``docs/ingest.md``.
Imports ``schemas`` and ``infra`` only, never another stage.
"""

from ingest.app import create_app
from ingest.settings import IngestSettings, Settings

__all__ = ["IngestSettings", "Settings", "create_app"]
