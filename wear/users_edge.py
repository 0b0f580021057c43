"""What ``wear pull`` and ``wear users`` share: the ingest edge's settings and ports, and who USER is.

The commands act as the edge does (``ingest/``), through the edge's own code: its settings
(``INGEST_*`` plus the shared Kafka, PostgreSQL, WHOOP-app and vault settings), its store
(``ingest.store.PgStore``), its Kafka publisher and, when a command tells WHOOP something, its WHOOP
client. :func:`edge` opens only the ports a command needs, each with a bounded wait, and closes them.

``USER`` is our user id (a uuid) or the member's WHOOP id (digits), as ``python -m ingest erase``
reads it; a user the edge never connected is bad input (exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from pydantic import ValidationError

from infra.appender import DurableAppender
from infra.db import create_pool
from infra.kafka import make_producer
from infra.pipeline_env import PipelineEnvSettings, dev_secret_problems
from infra.vault import TokenVault
from ingest.erase_command import parse_user
from ingest.publisher import KafkaPublisher
from ingest.services import Services
from ingest.settings import Settings
from ingest.store import Connection, PgStore
from ingest.whoop_oauth import HttpWhoopOAuth
from projections.commands import configure_logging
from wear.common import usage

__all__ = ["Edge", "edge", "edge_settings", "known_user", "user_id_of"]

CONNECT_TIMEOUT_S = 15.0


def edge_settings(*, uses_secrets: bool = False) -> Settings:
    """The edge's settings from the environment; a bad one is bad usage (exit 2), named, never its value.

    ``uses_secrets``: the command opens the token vault or talks to WHOOP, so, like the edge, it refuses
    the public development secrets unless ``PIPELINE_ENV=dev``.
    """
    try:
        settings = Settings.from_env()
    except ValidationError as exc:
        usage(
            "bad setting: "
            + "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        )
    if uses_secrets:
        problems = dev_secret_problems(
            PipelineEnvSettings(),
            token_vault_keys=settings.vault.token_vault_keys,
            whoop_client_secret=settings.whoop.whoop_client_secret,
        )
        if problems:
            usage(
                f"refusing: {'; '.join(problems)}; set your own, or PIPELINE_ENV=dev on a development machine"
            )
    return settings


def user_id_of(text: str) -> str:
    """Our user id for USER (a uuid or a WHOOP member id); exit 2 otherwise."""
    try:
        return parse_user(text.strip())
    except ValueError as exc:
        usage(str(exc))


@dataclass
class Edge:
    """The ports a command opened: the pool and store first; Kafka and WHOOP when it asks for them,
    after it checked its input (so bad input exits 2 whatever Kafka's state)."""

    settings: Settings
    pool: asyncpg.Pool
    store: PgStore
    services: Services
    _stack: contextlib.AsyncExitStack

    async def open_kafka(self) -> None:
        """Start the edge's durable producer (a producer that cannot start is stopped, then raised)."""
        own = self.settings.ingest
        producer = make_producer(self.settings.kafka, "wear", linger_ms=own.producer_linger_ms)
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
        except BaseException:
            await producer.stop()
            raise
        publisher = KafkaPublisher(DurableAppender(producer, timeout_s=10.0))
        self._stack.push_async_callback(publisher.stop)
        self.services.publisher = publisher

    def open_whoop(self) -> None:
        """The edge's WHOOP client (closed with the edge)."""
        client = HttpWhoopOAuth.create(self.settings.whoop, self.settings.ingest.whoop_timeout_s)
        self._stack.push_async_callback(client.aclose)
        self.services.whoop = client


@contextlib.asynccontextmanager
async def edge(settings: Settings) -> AsyncIterator[Edge]:
    """Open PostgreSQL (migrated, as the edge does at start); Kafka and WHOOP open on demand."""
    configure_logging()
    pool = await asyncio.wait_for(create_pool(settings.postgres, migrate=True, max_size=4), CONNECT_TIMEOUT_S)
    try:
        async with contextlib.AsyncExitStack() as stack:
            store = PgStore(pool, TokenVault(settings.vault.keyring()))
            yield Edge(settings, pool, store, Services.of(settings, None, store, None), stack)
    finally:
        await pool.close()


async def known_user(world: Edge, user: str) -> Connection:
    """The connection of USER; exit 2 when the edge never connected them (or they were erased)."""
    user_id = user_id_of(user)
    connection = await world.store.connection(user_id)
    if connection is None:
        usage(f"unknown user {user.strip()[:64]!r}: never connected, or erased")
    return connection
