"""Fixtures of the end-to-end tests of ``python -m deploy run``: a fresh database, its environment."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from deploy.paths import REPO_ROOT
from tests.support.server import free_port

RunStarter = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server: earlier runs' members and webhooks are not in it."""
    name = f"quick_start_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(database_url)
        yield urlunsplit(parts._replace(path=f"/{name}"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def run_env(fresh_database: str) -> dict[str, str]:
    """The environment of one ``python -m deploy run``: a fresh database and ports of its own, so a
    developer's running pipeline (or another test's) cannot answer in its place."""
    edge, simulator = free_port(), free_port()
    return {
        **os.environ,
        "DATABASE_URL": fresh_database,
        "INGEST_PORT": str(edge),
        "SIMULATOR_PORT": str(simulator),
        "WHOOP_API_BASE_URL": f"http://127.0.0.1:{simulator}",
        "WHOOP_WEBHOOK_URL": f"http://127.0.0.1:{edge}/v1/webhooks/whoop",
        "PROCESSORS_METRICS_PORT": str(free_port()),
        "PROJECTIONS_METRICS_PORT": str(free_port()),
    }


@pytest.fixture
def start_run(run_env: dict[str, str]) -> RunStarter:
    """Start ``python -m deploy run --seconds N`` (in ``run_env`` unless given another), its output piped."""

    async def start(seconds: float, env: Mapping[str, str] | None = None) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "deploy",
            "run",
            "--seconds",
            str(seconds),
            cwd=REPO_ROOT,
            env=dict(run_env if env is None else env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    return start
