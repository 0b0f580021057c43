"""What every route reaches through ``request.app.state.services``: settings, ports and metrics.

The ports (publisher, store, WHOOP) are either injected into ``create_app`` (tests, fakes) or
built by the app's lifespan (production); the routes do not know which. The throttle of failed
authentications and the cached readiness check live here too: one of each per app.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from infra.auth_throttle import FailureThrottle
from infra.cached_check import CachedCheck
from ingest.metrics import Metrics
from ingest.publisher import Publisher
from ingest.settings import AdminToken, Settings
from ingest.store import Store
from ingest.whoop_oauth import WhoopOAuth

__all__ = ["ErasureRunner", "ErasureStatus", "Services", "services_of"]


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
    erasures: ErasureRunner | None = None
    auth_failures: FailureThrottle = field(init=False)
    readiness: CachedCheck[tuple[bool, bool]] = field(init=False)

    @classmethod
    def of(
        cls,
        settings: Settings,
        publisher: Publisher | None = None,
        store: Store | None = None,
        whoop: WhoopOAuth | None = None,
    ) -> Services:
        """The services of ``settings`` (metrics, webhook secrets and admin tokens derived from them)."""
        return cls(
            settings=settings,
            metrics=Metrics.create(),
            webhook_secrets=settings.webhook_secrets(),
            admin_tokens=settings.ingest.admin(),
            publisher=publisher,
            store=store,
            whoop=whoop,
        )

    def __post_init__(self) -> None:
        own = self.settings.ingest
        self.auth_failures = FailureThrottle(own.auth_failures_max, own.auth_failure_window_s)
        self.readiness = CachedCheck(self._dependencies_ready, own.readyz_cache_s)

    async def _dependencies_ready(self) -> tuple[bool, bool]:
        """Whether Kafka and PostgreSQL answer (``/readyz`` reads it through ``readiness``)."""
        kafka, postgres = await asyncio.gather(self.require_publisher().ready(), self.require_store().ready())
        return kafka, postgres

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


class ErasureRunner(Protocol):
    """Where ``DELETE /v1/me`` hands a member's erasure (``ingest.erasure.ErasureWorker``)."""

    async def request(self, user_id: str) -> ErasureStatus: ...
    async def status(self, job_id: str) -> ErasureStatus | None: ...


class ErasureStatus(Protocol):
    """An erasure job as its status route shows it (no user id)."""

    @property
    def job_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def progress(self) -> dict[str, object]: ...


def services_of(request: Request) -> Services:
    """The services of the app serving ``request``."""
    services: Services = request.app.state.services
    return services
