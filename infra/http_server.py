"""The one place that turns an ASGI app and :class:`~infra.http_limits.HttpLimits` into a uvicorn config.

Every HTTP server of the pipeline (``python -m ingest``, ``python -m projections api``, the edge of
``deploy/edge.py``, the WHOOP simulator) is configured here, so the limits apply the same way
everywhere:

- header and body read deadlines (``infra/http_deadlines.py``: uvicorn has none for headers);
- ``timeout_keep_alive``: an idle kept-alive connection is closed;
- ``limit_concurrency``: beyond ``max_connections`` connections a request is answered 503 at once;
- ``X-Forwarded-For`` read only from ``trusted_proxies`` (none by default: the peer is the client);
- no ``Server`` header, no access log, no WebSocket (no route uses one; an upgraded connection would
  leave the deadlines behind).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp

from infra.http_deadlines import LIMITS_ATTRIBUTE, DeadlineH11Protocol, DeadlineHttpToolsProtocol
from infra.http_limits import HttpLimits

__all__ = ["PROTOCOLS", "server_config"]

PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "httptools": DeadlineHttpToolsProtocol,
    "h11": DeadlineH11Protocol,
}


def server_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    limits: HttpLimits,
    http: Literal["httptools", "h11"] = "httptools",
    **options: Any,
) -> uvicorn.Config:
    """A uvicorn config serving ``app`` on ``host:port`` under ``limits``; ``options`` are other
    ``uvicorn.Config`` arguments (``lifespan``, ``log_level``...)."""
    settings: dict[str, Any] = {
        "access_log": False,
        "log_config": None,
        "server_header": False,
        "ws": "none",
        **options,
        "http": PROTOCOLS[http],
        "timeout_keep_alive": limits.keep_alive_s,
        "limit_concurrency": limits.max_connections,
        "proxy_headers": bool(limits.trusted_proxies),
        "forwarded_allow_ips": list(limits.trusted_proxies) or None,
    }
    config = uvicorn.Config(app, host=host, port=port, **settings)
    setattr(config, LIMITS_ATTRIBUTE, limits)
    return config
