"""projections: exactly-once read models from ``wear.records.v1``, and (in ``projections.query``) the query
API that serves them. May import ``schemas`` and ``infra``; no other stage.

- ``rows`` (pure): the read models' columns and the row of one canonical record.
- ``fold`` (pure): a batch of canonical records → its reduced row changes (versions, deletions).
- ``activity`` (pure): the member-activity projection of a batch.
- ``store``/``sql``: writes a batch's changes with version checks, in the offsets' transaction.
- ``runner``: the projection workers on ``infra.exactly_once.ExactlyOnceConsumer`` (dead letters, retries).
- ``rebuild`` (steps) and ``rebuild_console`` (prompts, progress, signals): ``python -m projections rebuild``.
- ``query``: the query API of the phone contract (Starlette), documented in ``query/openapi.json``.
- ``python -m projections``: the workers (``--serve-api``), ``api``, ``openapi``, ``admin-token``.

Nothing is imported here: importing the projection core (``projections.fold``, ``projections.runner``)
does not load Starlette or the query API. Import the modules themselves.
"""
