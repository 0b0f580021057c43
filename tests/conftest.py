"""Test harness: real Kafka and PostgreSQL, found in a fixed order, isolated per test.

Services are found in this order:
1. the ones named by ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL``;
2. else session-scoped testcontainers, when a Docker engine answers;
3. else the project's own launchers in ``deploy/`` (Kafka from Maven jars, a local PostgreSQL
   cluster), which is what CI and the project's machines use.

Per test, factory fixtures give uuid-named topics, consumer groups and a fresh database schema.
Tests are marked ``unit`` / ``integration`` / ``e2e`` by their folder. With ``CI`` set, a skipped
test fails the run: integration tests are never skipped in CI.

The tests run on the public development secrets: ``PIPELINE_ENV=dev`` is set here, before any test
module is imported, so every process a test starts inherits it (``infra/pipeline_env.py``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from infra.db import create_pool
from infra.settings import KafkaSettings, PostgresSettings
from infra.topic_admin import ensure_topics
from schemas.topics import TopicSpec, topic

os.environ["PIPELINE_ENV"] = "dev"
TopicFactory = Callable[..., Awaitable[str]]
_TESTS = Path(__file__).resolve().parent
_SKIPPED_IN_CI: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its tier folder: tests/unit, tests/integration, tests/e2e."""
    for item in items:
        tier = Path(str(item.fspath)).resolve().relative_to(_TESTS).parts[0]
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and os.environ.get("CI"):
        _SKIPPED_IN_CI.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED_IN_CI:
        print(f"\nCI forbids skipped tests; skipped: {', '.join(_SKIPPED_IN_CI)}")  # noqa: T201
        session.exitstatus = 1


def _docker_answers() -> bool:
    """True when a Docker engine answers a ping (never on the project's own machines)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    import docker

    try:
        client = docker.from_env(timeout=3)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except docker.errors.DockerException:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker."""
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.3.1").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        from deploy import kafka_local

        kafka_local.start_nodes([kafka_local.single_node()])
        yield kafka_local.SINGLE_BOOTSTRAP


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a real PostgreSQL database."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as container:
            yield container.get_connection_url()
    else:
        from deploy.postgres_local import LocalPostgres

        yield LocalPostgres.default().up()


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_client_id_prefix="test")


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A name made unique for this test: ``unique("group")`` → ``group-<hex>``."""
    suffix = uuid.uuid4().hex[:12]
    return lambda prefix: f"{prefix}-{suffix}"


@pytest.fixture
def group_id(unique: Callable[[str], str]) -> str:
    return unique("test-group")


@pytest.fixture
async def topic_factory(kafka_settings: KafkaSettings) -> AsyncIterator[TopicFactory]:
    """Create uuid-named topics shaped like a registry topic (``with_dlq``: and its ``.dlq`` twin); they
    are deleted after the test."""
    created: list[str] = []

    async def make(
        like: str = "whoop.webhooks.v1", partitions: int | None = None, with_dlq: bool = False
    ) -> str:
        base = topic(like)
        spec: TopicSpec = replace(
            base,
            name=f"test.{base.name}.{uuid.uuid4().hex[:12]}",
            partitions=partitions or base.partitions,
        )
        specs = [spec, spec.dlq()] if with_dlq else [spec]
        report = await ensure_topics(kafka_settings, specs)
        assert report.created == tuple(made.name for made in specs), report
        created.extend(made.name for made in specs)
        return spec.name

    yield make
    if created:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics(created)
        finally:
            await admin.close()


@pytest.fixture
async def pg_schema(database_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        yield schema
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        # and the schemas of the read-model versions a test made (projections.versions: <schema>_rm<N>)
        for (version_schema,) in await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{schema}\\_rm%"
        ):
            await connection.execute(f'DROP SCHEMA IF EXISTS "{version_schema}" CASCADE')
        await connection.close()


@pytest.fixture
def postgres_settings(database_url: str) -> PostgresSettings:
    return PostgresSettings(database_url=database_url)


@pytest.fixture
async def db_pool(postgres_settings: PostgresSettings, pg_schema: str) -> AsyncIterator[asyncpg.Pool]:
    """A migrated pool whose search_path is this test's fresh schema."""
    pool = await create_pool(postgres_settings, schema=pg_schema)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), timeout=10)
