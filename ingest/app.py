"""The ingest edge's Starlette app: ``create_app(settings, publisher, store, whoop_oauth)``.

Ports passed in are used as they are (tests, fakes); the ones left ``None`` are built by the
lifespan and closed with it: one Kafka producer, one asyncpg pool (migrations applied), one
httpx client per process. Known failures of a dependency map to 503 with Retry-After, never 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.db import create_pool
from infra.http_metrics import RequestMetrics, measured
from infra.vault import TokenVault
from ingest.auth import AuthenticationThrottled, throttled_response
from ingest.erasure import erasure_worker
from ingest.erasure_routes import erasure_routes
from ingest.health import healthz, metrics, readyz
from ingest.http import error_response
from ingest.oauth_routes import oauth_routes
from ingest.publisher import KafkaPublisher, Publisher
from ingest.pulls import pull_routes
from ingest.services import Services
from ingest.settings import Settings
from ingest.store import PgStore, Store
from ingest.token_routes import token_routes
from ingest.webhooks import WEBHOOK_PATH, WebhookEndpoint, WebhookFastPath
from ingest.whoop_oauth import HttpWhoopOAuth, WhoopOAuth

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _lifespan(services: Services) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The lifespan that builds the ports left None (and closes them), and runs the erasure worker."""
    settings = services.settings

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if services.publisher is None:
                kafka = await KafkaPublisher.start(
                    settings.kafka,
                    timeout_s=settings.ingest.append_timeout_s,
                    linger_ms=settings.ingest.producer_linger_ms,
                )
                stack.push_async_callback(kafka.stop)
                services.publisher = kafka
                stack.callback(setattr, services, "publisher", None)
            if services.store is None:
                pool = await create_pool(
                    settings.postgres, migrate=True, max_size=settings.ingest.db_pool_size
                )
                stack.push_async_callback(pool.close)
                services.store = PgStore(pool, TokenVault(settings.vault.keyring()))
                stack.callback(setattr, services, "store", None)
            if services.whoop is None:
                whoop = HttpWhoopOAuth.create(settings.whoop, settings.ingest.whoop_timeout_s)
                stack.push_async_callback(whoop.aclose)
                services.whoop = whoop
                stack.callback(setattr, services, "whoop", None)
            if services.erasures is None and isinstance(services.store, PgStore):
                worker = erasure_worker(services, services.store.pool)
                await stack.enter_async_context(worker.running())
                services.erasures = worker
                stack.callback(setattr, services, "erasures", None)
            if settings.vault.uses_dev_key:
                logger.warning(
                    "TOKEN_VAULT_KEYS holds the public development key: never use it in production"
                )
            yield

    return lifespan


def create_app(
    settings: Settings,
    publisher: Publisher | None = None,
    store: Store | None = None,
    whoop_oauth: WhoopOAuth | None = None,
) -> Starlette:
    """The app; ports left None are built in the lifespan from ``settings``."""
    services = Services.of(settings, publisher, store, whoop_oauth)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("PostgreSQL unavailable: %s", type(exc).__name__)
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; retry later",
            {"Retry-After": str(settings.ingest.retry_after_s)},
        )

    webhook = WebhookEndpoint(services)
    routes = [
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        *oauth_routes(),
        *pull_routes(),
        *erasure_routes(),
        *token_routes(),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        # webhooks take the fast path ahead of the request metrics (they have their own counters)
        middleware=[
            Middleware(WebhookFastPath, endpoint=webhook),
            measured(RequestMetrics(services.metrics.registry, "ingest")),
        ],
        lifespan=_lifespan(services),
        exception_handlers={
            asyncpg.PostgresConnectionError: database_unavailable,
            asyncpg.InterfaceError: database_unavailable,
            ConnectionError: database_unavailable,
            TimeoutError: database_unavailable,
            AuthenticationThrottled: throttled_response,
        },
    )
    app.state.services = services
    return app
