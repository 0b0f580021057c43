"""`DELETE /v1/me` and `GET /v1/erasures/{job_id}` on the real engines; `python -m ingest erase` refusals."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from infra import erasure_gate
from infra.vault import hash_token
from ingest import erase_command
from ingest.app import create_app
from ingest.erasure_jobs import ErasureJobs
from projections import versions
from schemas.events import UserErased
from tests.integration.ingest.conftest import Edge

ADMIN = "wpa_" + "c" * 40


@pytest.fixture
async def running(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    """The edge with its lifespan running (the erasure worker), and an admin token for connections."""
    settings = replace(
        edge.settings,
        ingest=edge.settings.ingest.model_copy(
            update={"admin_tokens": (f"ops:{hash_token(ADMIN)}:connections",)}
        ),
    )
    services = edge.app.state.services
    app = create_app(settings, services.publisher, edge.store, services.whoop)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest.test") as http,
    ):
        yield http


async def _done(http: httpx.AsyncClient, status_url: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        answer = await http.get(status_url)
        assert answer.status_code == 200, answer.text
        body: dict[str, object] = answer.json()
        if body["status"] == "done":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def test_a_member_erases_themself_and_may_connect_again(edge: Edge, running: httpx.AsyncClient) -> None:
    connected = await edge.connect_sdk(member=40_404)
    user_id, token = connected["user_id"], connected["api_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await running.delete("/v1/me")).status_code == 401
    admin = await running.delete("/v1/me", headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 403 and admin.json()["error"]["code"] == "members_only"

    # a second read-model version (a rebuild's) holds the member's rows too
    async with edge.pool.acquire() as db, db.transaction():
        version = await versions.create(db, records_topic=None, bulk=False)
        await db.execute(
            f'INSERT INTO "{version.schema}".rm_sync_status (user_id, records_applied) VALUES ($1, 3)',  # noqa: S608
            user_id,
        )

    accepted = await running.delete("/v1/me", headers=bearer)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert set(body) == {"job_id", "status", "progress", "status_url"} and user_id not in accepted.text
    assert accepted.headers["cache-control"] == "no-store"
    done = await _done(running, body["status_url"])
    assert user_id not in str(done)

    assert (await running.get(f"/v1/pull/{user_id}/jobs/{uuid.uuid4()}", headers=bearer)).status_code == 401
    assert await edge.pool.fetchval("SELECT count(*) FROM whoop_connections WHERE user_id = $1", user_id) == 0
    assert await edge.pool.fetchval("SELECT count(*) FROM whoop_tokens WHERE user_id = $1", user_id) == 0
    assert await erasure_gate.is_closed(edge.pool, user_id)
    left = f'SELECT count(*) FROM "{version.schema}".rm_sync_status WHERE user_id = $1'  # noqa: S608
    assert await edge.pool.fetchval(left, user_id) == 0
    erased = [e for e in await edge.events() if isinstance(e, UserErased)]
    assert [(e.user_id, e.requested_by) for e in erased] == [(user_id, "member")]

    # the member comes back: a new connection, let in again
    again = await edge.connect_sdk(member=40_404)
    assert again["user_id"] == user_id
    assert not await erasure_gate.is_closed(edge.pool, user_id)


async def test_status_of_an_unknown_or_malformed_job_is_404(running: httpx.AsyncClient) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-uuid", "1" * 300):
        answer = await running.get(f"/v1/erasures/{job_id}")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


async def test_asking_twice_gives_the_pending_job(edge: Edge) -> None:
    jobs = ErasureJobs(edge.pool)
    first = await jobs.request("a-user", "member")
    second = await jobs.request("a-user", "admin")
    other = await jobs.request("another-user", "member")
    assert first.job_id == second.job_id != other.job_id
    assert await edge.pool.fetchval("SELECT count(*) FROM erasures") == 2


def _run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = erase_command.command(args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "usage: python -m ingest erase USER [--yes]"),
        (["--yes"], "usage: python -m ingest erase USER [--yes]"),
        (["a", "b", "--yes"], "usage: python -m ingest erase USER [--yes]"),
        (["robert'); DROP TABLE", "--yes"], "is neither a user id (uuid) nor a WHOOP member id"),
        (["10129"], "refusing without --yes when stdin is not a terminal; nothing erased"),
    ],
)
def test_the_command_refuses_bad_usage_with_exit_2_and_one_line(args: list[str], expected: str) -> None:
    code, out, err = _run(args)
    assert code == 2 and expected in err and out == ""
    assert "Traceback" not in err


def test_the_command_says_postgresql_is_unreachable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://whoop:secret-password@127.0.0.1:9/whoop")
    code, _, err = _run(["10129", "--yes"])
    assert code == 1 and err.count("\n") == 1 and "PostgreSQL (DATABASE_URL) unreachable" in err
    assert "secret-password" not in err
