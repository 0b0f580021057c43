"""PostgreSQL connection pool factory (asyncpg): one pool per process, migrations at start."""

from __future__ import annotations

import asyncio

import asyncpg

from infra.migrations import apply_migrations
from infra.settings import PostgresSettings

__all__ = ["create_pool", "pool_answers"]


async def create_pool(
    settings: PostgresSettings, *, schema: str | None = None, migrate: bool = True, max_size: int = 10
) -> asyncpg.Pool:
    """A pool on ``DATABASE_URL`` (search_path set to ``schema`` when given), migrated when asked."""
    server_settings = {"application_name": "whoop-pipeline"}
    if schema is not None:
        server_settings["search_path"] = schema
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=max_size,
        server_settings=server_settings,
        command_timeout=30,
    )
    if migrate:
        async with pool.acquire() as connection:
            await apply_migrations(connection)
    return pool


async def pool_answers(pool: asyncpg.Pool, timeout_s: float = 2.0) -> bool:
    """True when PostgreSQL answers ``SELECT 1`` through ``pool`` within ``timeout_s`` (readiness)."""
    try:
        async with asyncio.timeout(timeout_s):
            await pool.fetchval("SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True
