"""What every route reaches through ``request.app.state.services``: settings, ports and metrics.

The ports (publisher, store, WHOOP) are either injected into ``create_app`` (tests, fakes) or
built by the app's lifespan (production); the routes do not know which.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ingest.metrics import Metrics
from ingest.publisher import Publisher
from ingest.settings import AdminToken, Settings
from ingest.store import Store
from ingest.whoop_oauth import WhoopOAuth

__all__ = ["Services", "services_of"]


@dataclass
class Services:
    """The app's dependencies; the ports are None only before the lifespan started."""

    settings: Settings
    metrics: Metrics
    webhook_secrets: tuple[bytes, ...]
    admin_tokens: tuple[AdminToken, ...]
    publisher: Publisher | None = None
    store: Store | None = None
    whoop: WhoopOAuth | None = None

    def require_publisher(self) -> Publisher:
        if self.publisher is None:
            raise RuntimeError("the app's lifespan has not started: no publisher")
        return self.publisher

    def require_store(self) -> Store:
        if self.store is None:
            raise RuntimeError("the app's lifespan has not started: no store")
        return self.store

    def require_whoop(self) -> WhoopOAuth:
        if self.whoop is None:
            raise RuntimeError("the app's lifespan has not started: no WHOOP client")
        return self.whoop


def services_of(request: Request) -> Services:
    """The services of the app serving ``request``."""
    services: Services = request.app.state.services
    return services
