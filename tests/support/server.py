"""Serve an ASGI app (the simulator, mostly) in-process on a real socket: uvicorn in a background thread.

For tests of other packages that need a real URL::

    with serve_in_thread(create_app(settings, app_settings)) as base_url:
        httpx.get(f"{base_url}/_sim/health")
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from infra.http_limits import HttpLimits
from infra.http_server import server_config

__all__ = ["free_port", "serve_in_thread"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(
    app: ASGIApp, host: str = "127.0.0.1", port: int | None = None, limits: HttpLimits | None = None
) -> Iterator[str]:
    """Serve ``app`` until the block exits; yields the base URL once the server accepts connections.
    ``limits``: the HTTP limits (the defaults of ``SIMULATOR_*`` when None)."""
    config = server_config(
        app, host=host, port=port or free_port(host), limits=limits or HttpLimits(), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="whoop-simulator", daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.01):
        if server.started:
            started.set()
        elif not thread.is_alive():
            raise RuntimeError("the simulator server did not start")
    try:
        yield f"http://{host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
