"""The README's run command works: it starts the infrastructure and the stages, and data flows."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from deploy.demo import CONNECTED
from deploy.paths import REPO_ROOT
from deploy.run import STAGES


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


async def test_run_command_starts_what_exists_and_stops_cleanly(fresh_database: str) -> None:
    # own ports, so a developer's running pipeline cannot answer in our place
    edge, simulator = _free_port(), _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database,
        "INGEST_PORT": str(edge),
        "SIMULATOR_PORT": str(simulator),
        "WHOOP_API_BASE_URL": f"http://127.0.0.1:{simulator}",
        "WHOOP_WEBHOOK_URL": f"http://127.0.0.1:{edge}/v1/webhooks/whoop",
    }
    del env[
        "PIPELINE_ENV"
    ]  # as on a fresh machine: the launcher itself runs the stages with PIPELINE_ENV=dev
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy",
        "run",
        "--seconds",
        "20",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 110)
    text = output.decode()
    assert process.returncode == 0, text
    assert "Kafka ready" in text and "using the PostgreSQL named by DATABASE_URL" in text
    for stage in STAGES:
        said = f"starting {stage.name}" if stage.exists() else f"not built yet {stage.name}"
        assert said in text, text
    started = sum(stage.exists() for stage in STAGES)
    assert f"stopping {started} stage(s)" in text
    built = {stage.name for stage in STAGES if stage.exists()}
    if {"simulator", "edge"} <= built:
        # simulated members connect through the edge and their webhooks reach Kafka
        assert text.count(CONNECTED) >= 3, text
        assert re.search(r"whoop\.webhooks\.v1: [1-9]", text), text
        assert re.search(r"whoop\.connections\.v1: [1-9]", text), text
    if {"simulator", "edge", "processors", "projections"} <= built:
        # ... the fetcher turns them into documents, the normalizer into records, and the
        # projections make them readable through the query API with the member's own token
        assert re.search(r"whoop\.documents\.v1: [1-9]", text), text
        assert re.search(r"wear\.records\.v1: [1-9]", text), text
        assert re.search(r"[1-9]\d* workout\(s\) readable through the query API", text), text
