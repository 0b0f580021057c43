"""Fixtures of the projection integration tests: records topic and dead-letter twin, schemas, the API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.db import create_pool
from infra.settings import KafkaSettings, PostgresSettings
from infra.topic_admin import ensure_topics
from infra.vault import ApiTokens, hash_token
from projections.query.api import QueryServices, create_api
from projections.settings import ProjectionsSettings, Settings
from schemas.topics import topic
from tests.conftest import TopicFactory

PoolFactory = Callable[[], Awaitable[tuple[asyncpg.Pool, str]]]


def with_search_path(database_url: str, schema: str) -> str:
    """``database_url`` whose connections use ``schema`` (asyncpg reads it as a server setting)."""
    return f"{database_url}{'&' if '?' in database_url else '?'}search_path={schema}"


@pytest.fixture
async def records_topic(kafka_settings: KafkaSettings, topic_factory: TopicFactory) -> AsyncIterator[str]:
    """A 3-partition topic shaped like wear.records.v1, and its ``.dlq`` twin."""
    name = await topic_factory("wear.records.v1", partitions=3)
    dlq = replace(topic("wear.records.v1"), name=name, partitions=3).dlq()
    await ensure_topics(kafka_settings, [dlq])
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([dlq.name])
    finally:
        await admin.close()


@pytest.fixture
async def extra_pool(database_url: str) -> AsyncIterator[PoolFactory]:
    """Make more migrated pools, each on a fresh schema; all dropped after the test."""
    made: list[tuple[asyncpg.Pool, str]] = []

    async def make() -> tuple[asyncpg.Pool, str]:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await connection.close()
        pool = await create_pool(PostgresSettings(database_url=database_url), schema=schema)
        made.append((pool, schema))
        return pool, schema

    yield make
    connection = await asyncpg.connect(database_url)
    try:
        for pool, schema in made:
            await pool.close()
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def projection_settings(
    kafka_settings: KafkaSettings, database_url: str, schema: str, **own: object
) -> Settings:
    """Settings of a projection process on ``schema``; ``own`` sets PROJECTIONS_* fields."""
    return Settings(
        ProjectionsSettings(**own),  # type: ignore[arg-type]
        kafka_settings,
        PostgresSettings(database_url=with_search_path(database_url, schema)),
    )


ADMIN_READ = "wpa_test-admin-read-token-0123456789abcdef"
ADMIN_STATUS = "wpa_test-admin-status-token-0123456789abcdef"


@dataclass
class ApiHarness:
    """The query API in-process on the test's schema, and the tokens it knows."""

    client: httpx.AsyncClient
    pool: asyncpg.Pool
    services: QueryServices
    tokens: dict[str, str] = field(default_factory=dict)  # user_id -> plaintext token

    async def token_for(self, user_id: str) -> str:
        if user_id not in self.tokens:
            self.tokens[user_id] = (await ApiTokens().issue(self.pool, user_id)).token
        return self.tokens[user_id]

    async def get(
        self, path: str, user_id: str | None = None, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        bearer = token if token is not None else (await self.token_for(user_id) if user_id else None)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return await self.client.get(path, headers=headers, **kwargs)


def api_settings(**own: object) -> Settings:
    defaults: dict[str, object] = {
        "admin_tokens": (f"ops:{hash_token(ADMIN_READ)}:read", f"support:{hash_token(ADMIN_STATUS)}:status"),
        "auth_cache_s": 0,
        "rate_per_s": 0,
        "auth_failures_max": 0,  # the sweeps send many bad tokens from one address
        "readyz_cache_s": 0,
    }
    defaults.update(own)
    return Settings(ProjectionsSettings(**defaults), KafkaSettings(), PostgresSettings())  # type: ignore[arg-type]


@pytest.fixture
async def api(db_pool: asyncpg.Pool) -> AsyncIterator[ApiHarness]:
    """The query API on ``db_pool`` through httpx's ASGI transport (services built as the lifespan would)."""
    settings = api_settings()
    app = create_api(settings, pool=db_pool)
    services = QueryServices.create(settings.projections, db_pool)
    app.state.projections = services
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as client:
        yield ApiHarness(client, db_pool, services)
