"""Failed bearer authentications are throttled per client address, on real PostgreSQL.

Without the throttle, 60 bogus tokens cost 60 token lookups; with the defaults (20 failures per
60 s per address) the 21st and later requests answer 429 ``too_many_failed_authentications`` with
Retry-After, and the store is not asked again.
"""

from __future__ import annotations

import asyncpg
import httpx

from infra.settings import KafkaSettings, PostgresSettings
from infra.vault import ApiPrincipal, ApiTokens, TokenVault
from ingest.app import create_app
from ingest.store import PgStore
from tests.integration.ingest.conftest import edge_settings

ATTACKER = ("203.0.113.66", 40000)
NEIGHBOUR = ("198.51.100.9", 40001)


class CountingStore(PgStore):
    """The real store, counting its token lookups."""

    lookups = 0

    async def authenticate(self, token: str) -> ApiPrincipal | None:
        self.lookups += 1
        return await super().authenticate(token)


def client(app: object, address: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=address)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def test_after_twenty_failed_tokens_an_address_is_refused_without_a_lookup(
    db_pool: asyncpg.Pool, postgres_settings: PostgresSettings, kafka_settings: KafkaSettings
) -> None:
    settings = edge_settings(postgres_settings, kafka_settings)  # the defaults: 20 per 60 s
    assert (settings.ingest.auth_failures_max, settings.ingest.auth_failure_window_s) == (20, 60)
    store = CountingStore(db_pool, TokenVault(settings.vault.keyring()))
    app = create_app(settings, None, store)
    valid = (await ApiTokens().issue(db_pool, "member-1")).token

    async with client(app, ATTACKER) as attacker, client(app, NEIGHBOUR) as neighbour:
        answers = [
            await attacker.post("/v1/pull/member-1", headers={"Authorization": f"Bearer wpt_guess{n}"})
            for n in range(60)
        ]
        assert [a.status_code for a in answers] == [401] * 20 + [429] * 40
        assert store.lookups == 20, "a refused address must not cost a token lookup"
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "too_many_failed_authentications"
        assert set(refused.json()["error"]) == {"code", "message", "trace_id"}
        assert 1 <= int(refused.headers["retry-after"]) <= 60

        # even a valid token waits: telling it apart would need the lookup
        mine = await attacker.post("/v1/pull/member-1", headers={"Authorization": f"Bearer {valid}"})
        assert mine.status_code == 429 and store.lookups == 20
        # a missing header is not counted, but the address is refused all the same
        assert (await attacker.post("/v1/pull/member-1")).status_code == 429

        # another address is not concerned
        other = await neighbour.post("/v1/pull/member-1", headers={"Authorization": "Bearer wpt_typo"})
        assert other.status_code == 401 and other.json()["error"]["code"] == "invalid_token"
        assert store.lookups == 21
        theirs = await neighbour.get("/v1/pull/member-1/jobs/0", headers={"Authorization": f"Bearer {valid}"})
        assert theirs.status_code == 404 and store.lookups == 22  # authenticated: no such job


async def test_missing_or_malformed_headers_are_not_counted(
    db_pool: asyncpg.Pool, postgres_settings: PostgresSettings, kafka_settings: KafkaSettings
) -> None:
    settings = edge_settings(postgres_settings, kafka_settings, auth_failures_max=3)
    store = CountingStore(db_pool, TokenVault(settings.vault.keyring()))
    app = create_app(settings, None, store)
    async with client(app, ATTACKER) as attacker:
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer " + "a" * 300}) * 10:
            response = await attacker.post("/v1/pull/member-1", headers=headers)
            assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
        assert store.lookups == 0
