"""What the query API's routes use: its settings, the reader, the authenticator, the rate limiter and
the cached readiness check, opened together (``QueryServices.open``) and shared by every request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from infra.auth_throttle import FailureThrottle
from infra.cached_check import CachedCheck

from ..settings import ProjectionsSettings, Settings
from .auth import Authenticator, RateLimiter
from .http import Answer, Call
from .read_connections import ConnectionSource
from .reads import ReadModelReader, open_read_connections

__all__ = ["Handler", "QueryServices"]


@dataclass
class QueryServices:
    """What the routes use: the settings, the reader, the authenticator, the rate limiter and the
    cached readiness check."""

    settings: ProjectionsSettings
    reader: ReadModelReader
    auth: Authenticator
    limiter: RateLimiter
    readiness: CachedCheck[bool]

    @classmethod
    def create(
        cls, settings: ProjectionsSettings, connections: asyncpg.Pool | ConnectionSource
    ) -> QueryServices:
        timeout = settings.statement_timeout_s
        reader = ReadModelReader(connections, timeout=timeout)
        failures = FailureThrottle(settings.auth_failures_max, settings.auth_failure_window_s)
        return cls(
            settings=settings,
            reader=reader,
            auth=Authenticator(connections, settings.admin(), settings.auth_cache_s, failures=failures),
            limiter=RateLimiter(settings.rate_per_s, settings.rate_burst),
            readiness=CachedCheck(reader.ready, settings.readyz_cache_s),
        )

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, pool: asyncpg.Pool | None = None) -> AsyncIterator[QueryServices]:
        """Services on ``pool``, or on connections of their own (migrated), closed with the context."""
        if pool is not None:
            yield cls.create(settings.projections, pool)
            return
        own = await open_read_connections(settings.postgres, settings.projections.db_pool_size)
        try:
            yield cls.create(settings.projections, own)
        finally:
            await own.close()


Handler = Callable[[Call, QueryServices], Awaitable[Answer]]
"""A data route: what it reads of the request and the services in, its answer out."""
