"""schemathesis against the served OpenAPI document: no 5xx, and no answer the document does not describe.

The query API runs as its own process (``python -m projections api``) on a free port, on a fresh
schema holding a member's 40 days. Every operation of ``/openapi.json`` is exercised with generated
parameters, valid ones (positive) and invalid ones (negative), each case sent three ways: as
generated with the member's token (mostly another member's id: 404, or malformed values: 400); on
the member's own id with their token; and aimed at existing data (a real record id, a window over
the member's days) with an admin token, so that full answers are checked too. Each answer must
pass schemathesis' response checks: not a server error, a documented status code, content type,
headers and body schema.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from infra.db import create_pool
from infra.settings import PostgresSettings
from infra.vault import ApiTokens, hash_token
from projections.query.openapi import build_spec
from tests.integration.projections.conftest import ADMIN_READ, with_search_path
from tests.integration.projections.helpers import apply_batches
from tests.unit.projections.factory import Member, history

MEMBER = Member(482913)
DAYS = history(MEMBER, 40)
_WITH_WORKOUT = next(day for day in DAYS if day.workout is not None)
KNOWN_IDS = {
    "cycles": str(DAYS[9].cycle.cycle_id),
    "sleep": DAYS[9].sleep.sleep_id,
    "recovery": DAYS[9].recovery.sleep_id,
    "workouts": _WITH_WORKOUT.workout.workout_id if _WITH_WORKOUT.workout else "",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _prepare(database_url: str, schema: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await connection.close()
    pool = await create_pool(PostgresSettings(database_url=database_url), schema=schema)
    try:
        await apply_batches(pool, [[r for day in DAYS for r in day.records()]])
        return (await ApiTokens().issue(pool, MEMBER.user_id)).token
    finally:
        await pool.close()


async def _drop(database_url: str, schema: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


class Server:
    def __init__(self, base_url: str, token: str, log: Path) -> None:
        self.base_url = base_url
        self.token = token
        self.log = log


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    token = asyncio.run(_prepare(database_url, schema))
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": with_search_path(database_url, schema),
            "PROJECTIONS_API_PORT": str(port),
            "PROJECTIONS_ADMIN_TOKENS": f"ops:{hash_token(ADMIN_READ)}:read",
            "PROJECTIONS_RATE_PER_S": "0",
            "PROJECTIONS_LOG_LEVEL": "INFO",
        }
    )
    log = tmp_path_factory.mktemp("api") / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "projections", "api"], env=env, stdout=out, stderr=out
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base_url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not answer within 30 s"
            time.sleep(0.1)
        yield Server(base_url, token, log)
    finally:
        process.terminate()
        process.wait(30)
        asyncio.run(_drop(database_url, schema))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_spec_and_none_is_a_server_error(
    server: Server, mode: GenerationMode
) -> None:
    api_schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    owner = {"Authorization": f"Bearer {server.token}"}
    admin = {"Authorization": f"Bearer {ADMIN_READ}"}
    results = list(api_schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the document has operations schemathesis cannot read"
    documented = {f"GET {path}" for path in build_spec()["paths"] if path != "/openapi.json"}
    assert documented <= {op.label for op in operations}  # every data route (schemathesis may skip the spec)
    calls = 0

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: schemathesis.Case[Any]) -> None:
            nonlocal calls
            case.call_and_validate(base_url=server.base_url, headers=owner, checks=CHECKS)
            if case.path_parameters and "user_id" in case.path_parameters:
                case.path_parameters["user_id"] = MEMBER.user_id
            case.call_and_validate(base_url=server.base_url, headers=owner, checks=CHECKS)
            _aim_at_data(case)
            case.call_and_validate(base_url=server.base_url, headers=admin, checks=CHECKS)
            calls += 3

        exercise()
    assert calls >= 3 * len(operations)


def _aim_at_data(case: schemathesis.Case[Any]) -> None:
    """Point the case at records that exist (an id of the right kind, a window over the member's days)."""
    if case.path_parameters and "record_id" in case.path_parameters:
        kind = case.operation.path.split("/")[-2]
        case.path_parameters["record_id"] = KNOWN_IDS[kind]
    if case.query is not None:
        if "start" in case.query:
            case.query["start"] = "2025-10-05T00:00:00Z"
        if "end" in case.query:
            case.query["end"] = "2025-10-20T00:00:00"
        case.query.pop("next_token", None)
        case.query.pop("cursor", None)
        if "start_date" in case.query:
            case.query["start_date"] = "2025-10-05"


def test_the_server_logged_no_unexpected_failure(server: Server) -> None:
    log = server.log.read_text()
    assert "unexpected failure" not in log
    assert "Traceback" not in log
