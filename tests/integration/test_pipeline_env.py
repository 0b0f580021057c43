"""Every pipeline process refuses the public development secrets unless PIPELINE_ENV=dev, before it connects.

Each process runs as a real subprocess, its Kafka and PostgreSQL pointed at one TCP listener of this
test that only counts connections: a refused process exits 2 with one line naming the variables (and
no value) and has connected to nothing; an accepted one gets past the check and connects (then is
killed). No real service is needed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import pytest

from deploy.paths import REPO_ROOT
from infra.settings import DEV_WHOOP_CLIENT_SECRET
from infra.vault import DEV_VAULT_KEYS, Keyring

OWN_KEYS = Keyring.generate_item("prod-1")
OWN_SECRET = "our-own-whoop-client-secret"
VAULT, WHOOP = "TOKEN_VAULT_KEYS", "WHOOP_CLIENT_SECRET"
DEV_SECRETS = {VAULT: DEV_VAULT_KEYS, WHOOP: DEV_WHOOP_CLIENT_SECRET}
OWN_SECRETS = {VAULT: OWN_KEYS, WHOOP: OWN_SECRET}
SHOWN_NEVER = (
    DEV_VAULT_KEYS.partition(":")[2],
    DEV_WHOOP_CLIENT_SECRET,
    OWN_KEYS.partition(":")[2],
    OWN_SECRET,
)

INGEST = ("ingest",)
PROCESSORS = ("processors",)
PROJECTIONS = ("projections",)
API = ("projections", "api")
REBUILD = ("projections", "rebuild", "--yes")
EDGE = ("deploy", "edge")
ROTATE = ("ingest", "vault", "rotate")


@dataclass
class Listener:
    """A TCP port that accepts connections and answers nothing: stands for Kafka and PostgreSQL."""

    port: int
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener(0)

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.writers.append(writer)
        found.accepted.set()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        for writer in found.writers:
            writer.close()
        server.close()
        await server.wait_closed()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(listener: Listener, pipeline_env: str | None, secrets: Mapping[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ("PIPELINE_ENV", VAULT, WHOOP)}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{listener.port}",
        "DATABASE_URL": f"postgresql://whoop@127.0.0.1:{listener.port}/whoop",
        "INGEST_PORT": str(_free_port()),
        "PROJECTIONS_API_PORT": str(_free_port()),
        **secrets,
    }
    if pipeline_env is not None:
        env["PIPELINE_ENV"] = pipeline_env
    return env


async def _start(argv: tuple[str, ...], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


REFUSALS: list[tuple[tuple[str, ...], dict[str, str], tuple[str, ...]]] = [
    # unset: the defaults are the public values (the projections use the vault, not WHOOP's secret)
    (INGEST, {}, (VAULT, WHOOP)),
    (PROCESSORS, {}, (VAULT, WHOOP)),
    (EDGE, {}, (VAULT, WHOOP)),
    (PROJECTIONS, {}, (VAULT,)),
    (REBUILD, {}, (VAULT,)),
    (ROTATE, {}, (VAULT,)),
    # set to the public value
    *(
        (argv, {**OWN_SECRETS, VAULT: DEV_VAULT_KEYS}, (VAULT,))
        for argv in (INGEST, PROCESSORS, EDGE, PROJECTIONS, API, REBUILD)
    ),
    *(
        (argv, {**OWN_SECRETS, WHOOP: DEV_WHOOP_CLIENT_SECRET}, (WHOOP,))
        for argv in (INGEST, PROCESSORS, PROJECTIONS, API)
    ),
]


@pytest.mark.parametrize(
    ("argv", "secrets", "named"),
    REFUSALS,
    ids=[
        f"{' '.join(argv)}: {'+'.join(named)} {'set' if secrets else 'default'}"
        for argv, secrets, named in REFUSALS
    ],
)
async def test_a_public_secret_without_pipeline_env_refuses_to_start_before_connecting(
    listener: Listener, argv: tuple[str, ...], secrets: dict[str, str], named: tuple[str, ...]
) -> None:
    process = await _start(argv, _env(listener, None, secrets))
    out, err = await asyncio.wait_for(process.communicate(), 60)
    lines = err.decode().splitlines()
    assert process.returncode == 2, err.decode()[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"python -m {argv[0]}")
    assert "refusing to start" in lines[0] and "PIPELINE_ENV=dev" in lines[0]
    assert [name for name in (VAULT, WHOOP) if name in lines[0]] == list(named)
    assert not [value for value in SHOWN_NEVER if value in lines[0] or value in out.decode()]
    assert not listener.accepted.is_set(), "it connected before checking"


async def _connects(argv: tuple[str, ...], env: dict[str, str], listener: Listener) -> None:
    process = await _start(argv, env)
    try:
        exited = asyncio.create_task(process.wait())
        connected = asyncio.create_task(listener.accepted.wait())
        done, _ = await asyncio.wait({exited, connected}, timeout=90, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        connected.cancel()
        assert connected in done, f"exit {process.returncode}" if exited in done else "no connection in 90 s"
    finally:
        if process.returncode is None:
            process.kill()
        _, err = await process.communicate()
    assert "refusing to start" not in err.decode()


@pytest.mark.parametrize("argv", [INGEST, PROCESSORS, PROJECTIONS, API, EDGE], ids=" ".join)
async def test_with_pipeline_env_dev_the_public_secrets_are_accepted(
    listener: Listener, argv: tuple[str, ...]
) -> None:
    await _connects(argv, _env(listener, "dev", DEV_SECRETS), listener)


@pytest.mark.parametrize("argv", [INGEST, PROCESSORS, PROJECTIONS, API, EDGE], ids=" ".join)
async def test_in_production_own_secrets_are_accepted(listener: Listener, argv: tuple[str, ...]) -> None:
    await _connects(argv, _env(listener, "production", OWN_SECRETS), listener)


async def test_the_query_api_alone_needs_no_secret_in_production(listener: Listener) -> None:
    await _connects(API, _env(listener, None, {}), listener)
