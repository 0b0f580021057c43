"""The one place that turns an ASGI app and :class:`~infra.http_limits.HttpLimits` into a uvicorn config.

Every HTTP server of the pipeline (``python -m ingest``, ``python -m projections api``, the edge of
``deploy/edge.py``, the WHOOP simulator) is configured here, so the limits apply the same way
everywhere:

- header and body read deadlines (``infra/http_deadlines.py``: uvicorn has none for headers);
- ``timeout_keep_alive``: an idle kept-alive connection is closed;
- ``limit_concurrency``: beyond ``max_connections`` connections a request is answered 503 at once;
- ``X-Forwarded-For`` read only from ``trusted_proxies`` (none by default: the peer is the client);
- no ``Server`` header, no access log, no WebSocket (no route uses one; an upgraded connection would
  leave the deadlines behind);
- a bounded stop (``infra/shutdown.py``): requests in flight get ``REQUESTS_DRAIN_S`` to finish, and
  :func:`serve` runs a :class:`GracefulServer`: SIGTERM/SIGINT stop it, arm the ``STOP_GRACE_S``
  deadline, and the process exits 0 (uvicorn itself re-raises the signal once stopped, so the
  process would end "killed by SIGTERM" after a clean stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp

from infra.http_deadlines import LIMITS_ATTRIBUTE, DeadlineH11Protocol, DeadlineHttpToolsProtocol
from infra.http_limits import HttpLimits
from infra.shutdown import REQUESTS_DRAIN_S, STOP_SIGNALS, StopDeadline

__all__ = ["PROTOCOLS", "GracefulServer", "serve", "server_config"]

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
        "timeout_graceful_shutdown": REQUESTS_DRAIN_S,
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


class GracefulServer(uvicorn.Server):
    """A uvicorn server whose stop signal arms ``deadline`` and is not raised again once it stopped."""

    def __init__(self, config: uvicorn.Config, deadline: StopDeadline | None = None) -> None:
        super().__init__(config)
        self.deadline = deadline or StopDeadline()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.deadline.arm()
        super().handle_exit(sig, frame)


def serve(config: uvicorn.Config) -> int:
    """Serve ``config`` until SIGTERM or SIGINT; 0 once it stopped (``STOP_GRACE_S`` at most)."""
    GracefulServer(config).run()
    return 0
