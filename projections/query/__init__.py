"""projections.query: the query API of the phone contract (Starlette), served from the read models the
projection writes. May import ``schemas``, ``infra`` and ``projections``' errors and settings; the
projection core never imports it.

- ``api``: the app (``create_api``) and its routes (``query_routes``); ``handlers``: the data routes;
  ``services``: what they share (``QueryServices``).
- ``auth``: who is calling, what they may read, how fast; ``http``: the ASGI plumbing and error shape.
- ``params`` and ``cursor`` (pure): query parameters and page cursors; ``wear_metrics``: the ``WearMetrics``
  shape, in Python and SQL.
- ``reads`` and ``read_connections``: the reads of the served read-model version, on fair connections.
- ``openapi`` (+ ``openapi_schemas.json``): the OpenAPI 3.1 document written to ``openapi.json``.

The HTTP edge mounts the API with ``query_routes()`` and ``QueryServices.open(settings)``. Nothing is
imported here: import the modules themselves.
"""
