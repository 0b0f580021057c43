"""Migrations and topic administration against the real PostgreSQL server and Kafka broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.migrations import MigrationError, apply_migrations, load_migrations
from infra.settings import KafkaSettings
from infra.topic_admin import ensure_topics
from schemas.topics import topic


async def _connect(database_url: str, schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(database_url, server_settings={"search_path": schema})


async def test_migrations_apply_once_even_when_started_concurrently(
    database_url: str, pg_schema: str
) -> None:
    connections = [await _connect(database_url, pg_schema) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in connections))
        assert sorted(len(r) for r in results) == [0, 0, 0, len(load_migrations())]
        assert await apply_migrations(connections[0]) == []
        rows = await connections[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in load_migrations()]
        assert await connections[0].fetchval("SELECT to_regclass('consumer_offsets') IS NOT NULL")
    finally:
        for connection in connections:
            await connection.close()


async def test_a_migration_edited_after_it_was_applied_is_an_error(
    database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_thing.sql").write_text("CREATE TABLE thing (id int);")
    connection = await _connect(database_url, pg_schema)
    try:
        assert await apply_migrations(connection, load_migrations(tmp_path)) == [1]
        (tmp_path / "0001_thing.sql").write_text("CREATE TABLE thing (id bigint);")
        with pytest.raises(MigrationError, match="0001_thing was changed"):
            await apply_migrations(connection, load_migrations(tmp_path))
    finally:
        await connection.close()


async def test_a_failing_migration_leaves_nothing_behind(
    database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE broken (id int); SELECT nope;")
    connection = await _connect(database_url, pg_schema)
    try:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await apply_migrations(connection, load_migrations(tmp_path))
        assert await connection.fetchval("SELECT to_regclass('ok')") is None
        assert await connection.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await connection.close()


async def test_topics_are_created_then_reported_unchanged(
    kafka_settings: KafkaSettings, unique: Callable[[str], str]
) -> None:
    spec = replace(topic("wear.records.v1"), name=unique("test.registry"), partitions=2)
    first = await ensure_topics(kafka_settings, [spec])
    second = await ensure_topics(kafka_settings, [spec])
    assert first.created == (spec.name,) and first.ok
    assert second.created == () and second.unchanged == (spec.name,) and second.ok


async def test_a_topic_that_differs_from_the_registry_is_reported(
    kafka_settings: KafkaSettings, unique: Callable[[str], str]
) -> None:
    spec = replace(topic("wear.records.v1"), name=unique("test.drift"), partitions=3)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name=spec.name,
                    num_partitions=2,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "delete"},
                )
            ]
        )
    finally:
        await admin.close()
    report = await ensure_topics(kafka_settings, [spec])
    drifted = {(d.setting, d.expected, d.actual) for d in report.drifts}
    assert not report.ok
    assert ("partitions", "3", "2") in drifted
    assert ("cleanup.policy", "compact", "delete") in drifted
