"""Fixtures of the projection integration tests: a records topic with its dead-letter twin, extra schemas."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.db import create_pool
from infra.settings import KafkaSettings, PostgresSettings
from infra.topic_admin import ensure_topics
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
