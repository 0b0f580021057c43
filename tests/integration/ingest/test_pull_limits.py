"""Pull limits on real PostgreSQL and Kafka: one active pull per member, a daily allowance, and a
reconnect that supersedes the active pull instead of failing (``ingest/pull_jobs.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from infra.db import create_pool
from infra.migrations import apply_migrations, load_migrations
from infra.settings import PostgresSettings
from ingest.app import create_app
from schemas.events import BackfillRequested
from tests.integration.ingest.conftest import Edge


@asynccontextmanager
async def _edge_with(edge: Edge, **ingest: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second edge app on the same database and topics, with other ingest settings."""
    settings = replace(edge.settings, ingest=edge.settings.ingest.model_copy(update=ingest))
    services = edge.app.state.services
    app = create_app(settings, services.publisher, edge.store, services.whoop)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
    ) as http:
        yield http


async def _finish(edge: Edge, job_id: str) -> None:
    """What the fetcher does when a job's last page is in."""
    await edge.pool.execute("UPDATE pull_jobs SET status = 'done' WHERE job_id = $1", job_id)


async def _status(edge: Edge, job_id: str) -> tuple[str, str | None]:
    row = await edge.pool.fetchrow("SELECT status, error FROM pull_jobs WHERE job_id = $1", job_id)
    assert row is not None
    return row["status"], row["error"]


async def test_one_active_pull_per_member_and_the_409_names_it(edge: Edge) -> None:
    body = await edge.connect_sdk()
    user_id, auth = body["user_id"], {"Authorization": f"Bearer {body['api_token']}"}
    # the connect-time backfill is a pull too: while it runs, no other
    during_connect = await edge.http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
    assert during_connect.status_code == 409, during_connect.text
    error = during_connect.json()["error"]
    assert error["code"] == "pull_in_progress" and error["job_id"] == body["backfill_job_id"]
    assert body["backfill_job_id"] in error["message"]
    assert error["status_url"] == f"/v1/pull/{user_id}/jobs/{body['backfill_job_id']}"
    await _finish(edge, body["backfill_job_id"])
    # many requests at once: one wins, every other one names the winner
    answers = await asyncio.gather(
        *(edge.http.post(f"/v1/pull/{user_id}", json={"types": ["sleep"]}, headers=auth) for _ in range(8))
    )
    accepted = [a for a in answers if a.status_code == 202]
    assert len(accepted) == 1, [a.text for a in answers]
    winner = accepted[0].json()["job_id"]
    assert all(
        a.json()["error"]["code"] == "pull_in_progress" and a.json()["error"]["job_id"] == winner
        for a in answers
        if a.status_code != 202
    )
    assert await edge.pool.fetchval("SELECT count(*) FROM pull_jobs WHERE user_id = $1", user_id) == 2
    announced = [e.job_id for e in await edge.events() if isinstance(e, BackfillRequested)]
    assert announced == [body["backfill_job_id"], winner]  # refused pulls announce nothing
    # the database itself refuses a second active job, whoever writes it
    with pytest.raises(asyncpg.UniqueViolationError):
        await edge.pool.execute(
            "INSERT INTO pull_jobs (job_id, user_id, resource_types, range_start, range_end, requested_by) "
            "VALUES ('sneaky', $1, '{sleep}', now() - interval '1 day', now(), 'user')",
            user_id,
        )
    await _finish(edge, winner)
    again = await edge.http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
    assert again.status_code == 202, again.text


async def test_pulls_beyond_the_daily_allowance_get_429_with_retry_after(edge: Edge) -> None:
    body = await edge.connect_sdk()
    user_id, auth = body["user_id"], {"Authorization": f"Bearer {body['api_token']}"}
    await _finish(edge, body["backfill_job_id"])  # connect-time backfills do not count
    async with _edge_with(edge, pulls_per_day=2) as http:
        first = await http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
        assert first.status_code == 202, first.text
        await _finish(edge, first.json()["job_id"])
        second = await http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
        assert second.status_code == 202, second.text
        await _finish(edge, second.json()["job_id"])
        third = await http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
        assert third.status_code == 429 and third.json()["error"]["code"] == "pull_rate_limited"
        assert 86_300 < int(third.headers["retry-after"]) <= 86_400  # when the first leaves the day
        # the first pull was (almost) a day ago: the wait is what is left of that day
        await edge.pool.execute(
            "UPDATE pull_jobs SET created_at = now() - interval '1 day' + interval '30 seconds' "
            "WHERE job_id = $1",
            first.json()["job_id"],
        )
        soon = await http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
        assert soon.status_code == 429 and 1 <= int(soon.headers["retry-after"]) <= 30
        # a pull the edge could not announce (Kafka down, 503) does not count
        await edge.pool.execute(
            "UPDATE pull_jobs SET status = 'failed', error = 'kafka_unavailable' WHERE job_id = $1",
            second.json()["job_id"],
        )
        fourth = await http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
        assert fourth.status_code == 202, fourth.text
    assert await edge.pool.fetchval("SELECT count(*) FROM pull_jobs WHERE user_id = $1", user_id) == 4


async def test_a_reconnect_supersedes_the_active_pull_instead_of_failing(edge: Edge) -> None:
    member = int((await edge.sim_http.get("/_sim/members")).json()["members"][0]["user_id"])
    body = await edge.connect_sdk(member)
    user_id, auth = body["user_id"], {"Authorization": f"Bearer {body['api_token']}"}
    await _finish(edge, body["backfill_job_id"])
    pull = await edge.http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
    assert pull.status_code == 202
    again = await edge.connect_sdk(member)  # the member connects again while the pull is active
    assert again["reconnected"] is True and again["backfill_job_id"] != pull.json()["job_id"]
    assert await _status(edge, pull.json()["job_id"]) == (
        "failed",
        f"superseded by {again['backfill_job_id']}",
    )
    assert await _status(edge, again["backfill_job_id"]) == ("requested", None)
    auth = {"Authorization": f"Bearer {again['api_token']}"}
    shown = await edge.http.get(pull.json()["status_url"], headers=auth)
    assert shown.json()["status"] == "failed" and "superseded" in shown.json()["error"]


async def test_a_job_never_started_stops_blocking_after_the_stale_limit(edge: Edge) -> None:
    body = await edge.connect_sdk()
    user_id, auth = body["user_id"], {"Authorization": f"Bearer {body['api_token']}"}
    lost = body["backfill_job_id"]  # say the edge died before announcing it: it stays requested
    async with _edge_with(edge, pull_stale_s=600) as http:
        blocked = await http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
        assert blocked.status_code == 409
        await edge.pool.execute(
            "UPDATE pull_jobs SET created_at = now() - interval '11 minutes' WHERE job_id = $1", lost
        )
        accepted = await http.post(f"/v1/pull/{user_id}", json={}, headers=auth)
        assert accepted.status_code == 202, accepted.text
    assert await _status(edge, lost) == ("failed", "stale")


async def test_the_migration_keeps_the_newest_active_job_of_a_member(
    postgres_settings: PostgresSettings, pg_schema: str
) -> None:
    pool = await create_pool(postgres_settings, schema=pg_schema, migrate=False)
    try:
        async with pool.acquire() as connection:
            await apply_migrations(connection, [m for m in load_migrations() if m.version < 33])
            now = datetime.now(UTC)
            await connection.executemany(
                "INSERT INTO pull_jobs (job_id, user_id, resource_types, range_start, range_end, "
                "requested_by, status, created_at) VALUES ($1, $2, '{sleep}', $3, $4, 'user', $5, $6)",
                [
                    ("a-old", "a", now - timedelta(days=9), now, "running", now - timedelta(hours=3)),
                    ("a-new", "a", now - timedelta(days=9), now, "requested", now - timedelta(hours=1)),
                    ("a-done", "a", now - timedelta(days=9), now, "done", now),
                    ("b-only", "b", now - timedelta(days=9), now, "running", now - timedelta(hours=2)),
                ],
            )
            assert 33 in await apply_migrations(connection)
            rows = await connection.fetch("SELECT job_id, status, error FROM pull_jobs ORDER BY job_id")
    finally:
        await pool.close()
    assert [tuple(r) for r in rows] == [
        ("a-done", "done", None),
        ("a-new", "requested", None),
        ("a-old", "failed", "superseded"),
        ("b-only", "running", None),
    ]
