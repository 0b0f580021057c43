"""Running ``wear`` as the data team does, a process of its own, against a test's world.

The world is the fetcher harness (``tests/integration/processors/fetcher_harness.py``): the WHOOP
simulator on a socket, the test's topics and PostgreSQL schema. :func:`world_env` points a ``wear``
process at them (the edge's topic variables, ``DATABASE_URL`` with the test's search_path, the
simulator as WHOOP); a closed port stands for Kafka or PostgreSQL being down.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

import orjson

from tests.integration.processors.fetcher_harness import Harness

CLOSED_KAFKA = "127.0.0.1:1"
CLOSED_POSTGRES = "postgresql://whoop:s3cret-pw@127.0.0.1:1/whoop"


@dataclass(frozen=True)
class Finished:
    """A finished ``wear`` process."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return orjson.loads(self.stdout)

    def error_line(self) -> str:
        """The one line a refusal or a failure ends with (asserted to be the whole of stderr)."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, self.stderr
        assert "Traceback" not in self.stderr
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


def world_env(world: Harness, **overrides: str) -> dict[str, str]:
    """The environment of a ``wear`` process in ``world`` (``overrides`` last)."""
    env = {
        k: v for k, v in os.environ.items() if not k.endswith("ADMIN_TOKENS") and not k.startswith("INGEST_")
    }
    env.update(
        PIPELINE_ENV="dev",
        KAFKA_BOOTSTRAP_SERVERS=world.kafka.kafka_bootstrap_servers,
        KAFKA_CLIENT_ID_PREFIX="test-wear",
        DATABASE_URL=f"{world.postgres.database_url}?search_path={world.schema}",
        WHOOP_API_BASE_URL=world.base_url,
        INGEST_WEBHOOK_TOPIC=world.topics.webhooks,
        INGEST_CONNECTIONS_TOPIC=world.topics.connections,
        INGEST_DOCUMENTS_TOPIC=world.topics.documents,
        COLUMNS="200",
    )
    env.update(overrides)
    return env


async def wear(*args: str, env: dict[str, str], timeout_s: float = 120.0) -> Finished:
    """Run ``python -m wear ARGS`` (stdin not a terminal) to its end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wear",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())
