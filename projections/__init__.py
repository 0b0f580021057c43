"""projections: exactly-once read models from ``wear.records.v1`` and the query API that serves them.

- ``apply`` (pure): canonical records → the reduced row changes of a batch (versions, deletions).
- ``store``/``sql``: writes a batch's changes with version checks, in the offsets' transaction.
- ``runner``: the projection workers on ``exactly_once.ExactlyOnceConsumer`` (dead letters, retries).
- ``api`` (Starlette), ``reads``, ``read_connections``, ``auth``, ``query``, ``cursor``, ``wear_metrics``,
  ``http``, ``openapi``: the query API of the phone contract, documented in ``openapi.json``.
- ``python -m projections``: the workers (``--serve-api``), ``api``, ``openapi``, ``admin-token``.

The HTTP edge mounts the API with ``query_routes()`` and ``QueryServices.open(settings)``.
"""

from __future__ import annotations

from projections.api import QueryServices, create_api, query_routes
from projections.runner import ActivityWorker, ProjectionWorker
from projections.settings import ProjectionsSettings, Settings
from projections.store import ReadModelStore

__all__ = [
    "ActivityWorker",
    "ProjectionWorker",
    "ProjectionsSettings",
    "QueryServices",
    "ReadModelStore",
    "Settings",
    "create_api",
    "query_routes",
]
