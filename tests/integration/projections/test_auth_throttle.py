"""The query API on real PostgreSQL: failed authentications throttled per client address, and a cached
``/readyz``.

Without the throttle, 60 bogus tokens cost 60 token lookups (one connection each); with the defaults
(20 failures per 60 s per address) the later ones answer 429 ``too_many_failed_authentications`` with
Retry-After and take no connection. Without the cache, each ``/readyz`` takes a connection for its
``SELECT 1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
import httpx

from infra.vault import ApiTokens
from projections.query.api import QueryServices, create_api
from projections.query.read_connections import PoolConnections
from tests.integration.projections.conftest import api_settings

ATTACKER = ("203.0.113.66", 40000)
NEIGHBOUR = ("198.51.100.9", 40001)


class CountingConnections:
    """The real pool's connections, counting how many were taken."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._source = PoolConnections(pool)
        self.taken = 0

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        self.taken += 1
        return self._source.connection()


@asynccontextmanager
async def query_api(pool: asyncpg.Pool, **own: object) -> AsyncIterator[tuple[object, CountingConnections]]:
    settings = api_settings(**own)
    connections = CountingConnections(pool)
    app = create_api(settings, pool=pool)
    app.state.projections = QueryServices.create(settings.projections, connections)
    yield app, connections


def client(app: object, address: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=address)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


async def test_after_twenty_failed_tokens_an_address_is_refused_without_a_lookup(
    db_pool: asyncpg.Pool,
) -> None:
    valid = (await ApiTokens().issue(db_pool, "member-1")).token
    async with (
        query_api(db_pool, auth_failures_max=20, auth_failure_window_s=60) as (app, connections),
        client(app, ATTACKER) as attacker,
        client(app, NEIGHBOUR) as neighbour,
    ):
        answers = [
            await attacker.get("/v1/data/member-1/sleep", headers={"Authorization": f"Bearer wpt_guess{n}"})
            for n in range(60)
        ]
        assert [a.status_code for a in answers] == [401] * 20 + [429] * 40
        assert connections.taken == 20, "a refused address must not cost a token lookup"
        refused = answers[-1].json()["error"]
        assert refused["code"] == "too_many_failed_authentications" and len(refused["trace_id"]) == 32
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        assert answers[-1].headers["cache-control"] == "no-store"

        mine = await attacker.get("/v1/data/member-1/sleep", headers={"Authorization": f"Bearer {valid}"})
        assert mine.status_code == 429 and connections.taken == 20

        theirs = await neighbour.get("/v1/data/member-1/sleep", headers={"Authorization": f"Bearer {valid}"})
        assert theirs.status_code == 200 and connections.taken > 20  # lookup, then the reads


async def test_rapid_readyz_calls_cause_one_check(db_pool: asyncpg.Pool) -> None:
    async with query_api(db_pool, readyz_cache_s=30) as (app, connections), client(app, ATTACKER) as http:
        concurrent = await asyncio.gather(*(http.get("/readyz") for _ in range(20)))
        sequential = [await http.get("/readyz") for _ in range(30)]
        assert {r.status_code for r in concurrent + sequential} == {200}
        assert sequential[-1].json() == {"status": "ready", "checks": {"postgres": "ok"}}
        assert connections.taken == 1
        assert (await http.get("/healthz")).json() == {"status": "ok"}

    async with query_api(db_pool, readyz_cache_s=0) as (app, connections), client(app, ATTACKER) as http:
        for _ in range(5):
            assert (await http.get("/readyz")).status_code == 200
        assert connections.taken == 5
