"""Tokens: refreshed before expiry and on 401, never lost to a race, re-consent when WHOOP refuses.

The race test is the one that matters most (architecture guarantee 5): five real fetcher
processes find the same member's access token refused at the same instant and all refresh. With
the row lock, exactly one calls WHOOP, stores the rotated pair before using it, and the others
use that pair: the connection survives. Without it (the control run), WHOOP's rotation kills every
refresh but one: that is the failure the lock prevents.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from infra.kafka import make_producer
from infra.settings import KafkaSettings, PostgresSettings
from infra.vault import TokenVault, VaultSettings
from schemas.events import ConnectionRevoked, UserConnected
from schemas.keys import record_key
from schemas.serde import encode
from tests.conftest import TopicFactory
from tests.integration.processors.fetcher_harness import (
    Harness,
    TopicReader,
    eventually,
    harness,
)

PROCESSES = 5


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    topic_factory: TopicFactory,
    group_id: str,
) -> AsyncIterator[Harness]:
    async with harness(kafka_settings, postgres_settings, db_pool, pg_schema, topic_factory, group_id) as w:
        yield w


async def _pair(world: Harness, user_id: str) -> tuple[str, str | None]:
    pair = await TokenVault(VaultSettings().keyring()).load(world.pool, user_id)
    assert pair is not None
    return pair.access_token, pair.refresh_token


async def test_an_access_token_expiring_mid_run_is_refreshed_once_and_work_goes_on(
    world: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    member = (await world.members())[0]
    user_id = await world.connect(member)
    old = await _pair(world, user_id)
    fetcher = await world.start_fetcher()
    async with world.documents_reader() as docs:
        first = (await world.scenario("new-workout", user_id=member))["record"]
        await docs.wait_for(lambda: docs.latest("workout", first["id"]) is not None, "the first workout")
        expired = await world.http.post(f"/_sim/members/{member}/expire-token")
        assert expired.json()["expired"] >= 1
        second = (await world.scenario("new-workout", user_id=member))["record"]
        await docs.wait_for(
            lambda: docs.latest("workout", second["id"]) is not None, "the workout after expiry"
        )
    new = await _pair(world, user_id)
    assert new[0] != old[0] and new[1] != old[1]  # rotated, and the new pair is what the vault holds
    assert fetcher.tokens.refreshes == 1
    assert fetcher.client.statuses[401] == 1  # one refused call, then the refreshed token
    status = await world.pool.fetchval("SELECT status FROM whoop_connections WHERE user_id = $1", user_id)
    assert status == "connected"
    for token in (*old, *new):
        assert token is not None and token not in caplog.text


async def test_a_token_about_to_expire_is_refreshed_before_it_is_used(world: Harness) -> None:
    member = (await world.members())[1]
    user_id = await world.connect(member, expires_at=world.clock.now() + timedelta(seconds=30))
    fetcher = await world.start_fetcher(refresh_margin_s=300)
    async with world.documents_reader() as docs:
        workout = (await world.scenario("new-workout", user_id=member))["record"]
        await docs.wait_for(lambda: docs.latest("workout", workout["id"]) is not None, "the workout")
    assert fetcher.tokens.refreshes == 1
    assert fetcher.client.statuses[401] == 0
    pair = await TokenVault(VaultSettings().keyring()).load(world.pool, user_id)
    assert pair is not None and pair.expires_at > world.clock.now() + timedelta(seconds=3000)


async def test_a_refused_refresh_token_marks_re_auth_parks_the_work_and_a_reconnect_resumes_it(
    world: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    member = (await world.members())[2]
    user_id = await world.connect(member)
    old = await _pair(world, user_id)
    await world.start_fetcher()
    async with (
        world.documents_reader() as docs,
        TopicReader(world.kafka, world.topics.connections) as connections,
    ):
        await world.http.post("/_sim/oauth/fail-refresh", json={"user_id": member, "error": "invalid_grant"})
        await world.http.post(f"/_sim/members/{member}/expire-token")
        workout = (await world.scenario("new-workout", user_id=member))["record"]

        def revoked() -> list[ConnectionRevoked]:
            return [e for e in connections.records if isinstance(e, ConnectionRevoked)]

        await connections.wait_until(lambda: bool(revoked()), "ConnectionRevoked")
        [event] = revoked()
        assert event.user_id == user_id and event.whoop_user_id == member and event.reason == "invalid_grant"
        status = await world.pool.fetchval("SELECT status FROM whoop_connections WHERE user_id = $1", user_id)
        assert status == "needs_reauth"

        async def parked() -> bool:
            return bool(await world.pool.fetchval("SELECT bool_and(parked) FROM fetcher_tasks"))

        await eventually(parked, "the workout's work parked, not dropped")
        assert docs.latest("workout", workout["id"]) is None
        # the member authorizes again (as the edge records it), and the parked work runs
        user_id = await world.connect(member)
        connected = UserConnected(
            event_id="reconnect-1",
            occurred_at=world.clock.now(),
            user_id=user_id,
            source="ingest",
            whoop_user_id=member,
            scopes=("offline",),
            reconnected=True,
        )
        producer = make_producer(world.kafka, "test-ingest")
        await producer.start()
        try:
            await producer.send_and_wait(
                world.topics.connections,
                key=record_key(user_id, "connection", user_id),
                value=encode(connected),
            )
        finally:
            await producer.stop()
        await docs.wait_for(
            lambda: docs.latest("workout", workout["id"]) is not None, "the workout after reconnect"
        )
        raw = b"".join(repr(r).encode() for r in connections.records)
    for token in old:
        assert token is not None and token not in caplog.text and token.encode() not in raw


async def _race(world: Harness, member: int, mode: str) -> list[dict[str, object]]:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.processors.fetcher_refresh_worker",
            world.postgres.database_url,
            world.schema,
            world.base_url,
            str(member),
            mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.strip() == b"ready", line
        for process in processes:  # every process has its stale pair loaded: all refresh at once
            assert process.stdin is not None
            process.stdin.write(b"go\n")
        await asyncio.gather(*(p.stdin.drain() for p in processes if p.stdin is not None))
        results = []
        for process in processes:
            assert process.stdout is not None
            results.append(json.loads(await asyncio.wait_for(process.stdout.readline(), 60)))
            assert await asyncio.wait_for(process.wait(), 30) == 0
        return results
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_five_fetcher_processes_refreshing_one_member_at_once_keep_the_connection(
    world: Harness,
) -> None:
    member = (await world.members())[0]
    user_id = await world.connect(member)
    await world.http.post(f"/_sim/members/{member}/expire-token")  # every process's token is refused
    results = await _race(world, member, "locked")
    assert all(r["ok"] for r in results), results
    assert sum(int(str(r["refreshes"])) for r in results) == 1  # one call to WHOOP's token endpoint
    assert len({r["token"] for r in results}) == 1  # and everyone uses the pair it stored
    status = await world.pool.fetchval("SELECT status FROM whoop_connections WHERE user_id = $1", user_id)
    assert status == "connected"
    # the stored pair is alive: the next refresh (rotation) still works
    _, refresh = await _pair(world, user_id)
    response = await world.http.post(
        "/oauth/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh or "",
            "client_id": "sim-client-id",
            "client_secret": "sim-client-secret-DO-NOT-USE-7f3a9c",
            "scope": "offline",
        },
    )
    assert response.status_code == 200


async def test_control_without_the_lock_the_same_race_kills_all_refreshes_but_one(world: Harness) -> None:
    member = (await world.members())[1]
    await world.connect(member)
    results = await _race(world, member, "naive")
    assert sum(1 for r in results if r["ok"]) == 1, results
    assert all(r["reason"] == "invalid_grant" for r in results if not r["ok"])
