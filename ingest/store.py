"""The edge's PostgreSQL port (:class:`Store`) and its asyncpg adapter (:class:`PgStore`).

Tables (``infra/migrations/0002`` to ``0007``): ``whoop_connections``, ``oauth_states`` (hashed,
single-use, expiring, bound to client and redirect URI), ``oauth_exchange_codes`` (hashed,
single-use), ``whoop_tokens`` (through :class:`infra.vault.TokenVault`, encrypted), ``api_tokens``
(through :class:`infra.vault.ApiTokens`, hashed) and ``pull_jobs``. Expiry is judged by the
database clock (``now()``), so every process agrees on it. Nothing here logs a token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import asyncpg

from infra.vault import ApiPrincipal, ApiTokens, IssuedToken, TokenPair, TokenVault, hash_token
from ingest.errors import ExchangeCodeRejected, StateRejected
from schemas.identity import user_id_for_whoop_member

__all__ = ["Connection", "OAuthState", "PgStore", "PullJob", "Store"]


@dataclass(frozen=True)
class OAuthState:
    """What an OAuth state is bound to (the state itself is stored only as a hash)."""

    client_id: str
    redirect_uri: str
    return_to: str | None = None
    client_state: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Connection:
    """A member's connection as stored."""

    user_id: str
    whoop_user_id: int
    status: str
    scopes: tuple[str, ...]
    reconnected: bool = False


@dataclass(frozen=True)
class PullJob:
    """A pull (backfill) job and its progress."""

    job_id: str
    user_id: str
    resource_types: tuple[str, ...]
    start: datetime
    end: datetime
    requested_by: str
    status: str = "requested"
    progress: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


Refresher = Callable[[TokenPair], Awaitable[TokenPair]]


class Store(Protocol):
    """Everything the edge keeps in PostgreSQL."""

    async def ready(self) -> bool: ...
    async def create_state(self, state: str, bound: OAuthState, ttl_s: int) -> None: ...
    async def consume_state(self, state: str) -> OAuthState: ...
    async def save_connection(self, whoop_user_id: int, pair: TokenPair, backfill: PullJob) -> Connection: ...
    async def connection(self, user_id: str) -> Connection | None: ...
    async def issue_api_token(self, user_id: str) -> IssuedToken: ...
    async def authenticate(self, token: str) -> ApiPrincipal | None: ...
    async def create_exchange_code(self, code: str, user_id: str, ttl_s: int) -> None: ...
    async def consume_exchange_code(self, code: str) -> str: ...
    async def load_tokens(self, user_id: str) -> TokenPair | None: ...
    async def refresh_tokens(self, user_id: str, stale: TokenPair, refresher: Refresher) -> TokenPair: ...
    async def disconnect(self, user_id: str) -> int: ...
    async def create_pull_job(self, job: PullJob) -> None: ...
    async def fail_pull_job(self, job_id: str, error: str) -> None: ...
    async def pull_job(self, user_id: str, job_id: str) -> PullJob | None: ...


# Each insert first removes up to 100 rows that expired over an hour ago (kept that long so a late
# callback still hears "expired" rather than "unknown"): the tables stay as small as their traffic.
_PURGE = """
    DELETE FROM {table} WHERE {key} IN (
        SELECT {key} FROM {table} WHERE expires_at < now() - interval '1 hour' LIMIT 100
    )
"""
_INSERT_JOB = """
    INSERT INTO pull_jobs (job_id, user_id, resource_types, range_start, range_end, requested_by)
    VALUES ($1, $2, $3, $4, $5, $6)
"""


class PgStore:
    """:class:`Store` on an asyncpg pool (its search_path decides the schema)."""

    def __init__(self, pool: asyncpg.Pool, vault: TokenVault, api_tokens: ApiTokens | None = None) -> None:
        self._pool = pool
        self._vault = vault
        self._api_tokens = api_tokens or ApiTokens()

    async def ready(self) -> bool:
        try:
            return bool(await self._pool.fetchval("SELECT 1", timeout=2.0) == 1)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False

    async def create_state(self, state: str, bound: OAuthState, ttl_s: int) -> None:
        await self._pool.execute(_PURGE.format(table="oauth_states", key="state_hash"))
        await self._pool.execute(
            """
            INSERT INTO oauth_states
                (state_hash, client_id, redirect_uri, return_to, client_state, expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
            """,
            hash_token(state),
            bound.client_id,
            bound.redirect_uri,
            bound.return_to,
            bound.client_state,
            float(ttl_s),
        )

    async def consume_state(self, state: str) -> OAuthState:
        state_hash = hash_token(state)
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """
                SELECT client_id, redirect_uri, return_to, client_state, used_at IS NOT NULL AS used,
                       expires_at <= now() AS expired
                FROM oauth_states WHERE state_hash = $1 FOR UPDATE
                """,
                state_hash,
            )
            if row is None:
                raise StateRejected("state_unknown", "the OAuth state is unknown")
            if row["used"]:
                raise StateRejected("state_used", "the OAuth state was already used")
            if row["expired"]:
                raise StateRejected("state_expired", "the OAuth state expired; start again")
            await connection.execute(
                "UPDATE oauth_states SET used_at = now() WHERE state_hash = $1", state_hash
            )
        return OAuthState(row["client_id"], row["redirect_uri"], row["return_to"], row["client_state"])

    async def save_connection(self, whoop_user_id: int, pair: TokenPair, backfill: PullJob) -> Connection:
        user_id = user_id_for_whoop_member(whoop_user_id)
        async with self._pool.acquire() as connection, connection.transaction():
            existed = await connection.fetchval(
                "SELECT true FROM whoop_connections WHERE user_id = $1 FOR UPDATE", user_id
            )
            await connection.execute(
                """
                INSERT INTO whoop_connections (user_id, whoop_user_id, status, scopes)
                VALUES ($1, $2, 'connected', $3)
                ON CONFLICT (user_id) DO UPDATE SET status = 'connected', scopes = EXCLUDED.scopes,
                    connected_at = now(), updated_at = now(), disconnected_at = NULL
                """,
                user_id,
                whoop_user_id,
                list(pair.scopes),
            )
            await self._vault.store(connection, user_id, pair)
            await connection.execute(
                _INSERT_JOB,
                backfill.job_id,
                user_id,
                list(backfill.resource_types),
                backfill.start,
                backfill.end,
                backfill.requested_by,
            )
        return Connection(user_id, whoop_user_id, "connected", pair.scopes, reconnected=bool(existed))

    async def connection(self, user_id: str) -> Connection | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, whoop_user_id, status, scopes FROM whoop_connections WHERE user_id = $1", user_id
        )
        if row is None:
            return None
        return Connection(row["user_id"], row["whoop_user_id"], row["status"], tuple(row["scopes"]))

    async def issue_api_token(self, user_id: str) -> IssuedToken:
        return await self._api_tokens.issue(self._pool, user_id)

    async def authenticate(self, token: str) -> ApiPrincipal | None:
        return await self._api_tokens.authenticate(self._pool, token)

    async def create_exchange_code(self, code: str, user_id: str, ttl_s: int) -> None:
        await self._pool.execute(_PURGE.format(table="oauth_exchange_codes", key="code_hash"))
        await self._pool.execute(
            """
            INSERT INTO oauth_exchange_codes (code_hash, user_id, expires_at)
            VALUES ($1, $2, now() + make_interval(secs => $3))
            """,
            hash_token(code),
            user_id,
            float(ttl_s),
        )

    async def consume_exchange_code(self, code: str) -> str:
        code_hash = hash_token(code)
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """
                SELECT user_id, used_at IS NOT NULL AS used, expires_at <= now() AS expired
                FROM oauth_exchange_codes WHERE code_hash = $1 FOR UPDATE
                """,
                code_hash,
            )
            if row is None:
                raise ExchangeCodeRejected("code_unknown", "the exchange code is unknown")
            if row["used"]:
                raise ExchangeCodeRejected("code_used", "the exchange code was already used")
            if row["expired"]:
                raise ExchangeCodeRejected("code_expired", "the exchange code expired")
            await connection.execute(
                "UPDATE oauth_exchange_codes SET used_at = now() WHERE code_hash = $1", code_hash
            )
        user_id: str = row["user_id"]
        return user_id

    async def load_tokens(self, user_id: str) -> TokenPair | None:
        return await self._vault.load(self._pool, user_id)

    async def refresh_tokens(self, user_id: str, stale: TokenPair, refresher: Refresher) -> TokenPair:
        """Single-flight refresh: under the row lock, refresh only if nobody else already did."""
        async with self._pool.acquire() as connection, connection.transaction():
            current = await self._vault.load(connection, user_id, for_update=True)
            if current is None:
                return stale
            if current.access_token != stale.access_token:
                return current  # another process refreshed while we waited for the lock
            fresh = await refresher(current)
            await self._vault.store(connection, user_id, fresh)
            return fresh

    async def disconnect(self, user_id: str) -> int:
        async with self._pool.acquire() as connection, connection.transaction():
            await self._vault.delete(connection, user_id)
            revoked = await self._api_tokens.revoke_user(connection, user_id)
            await connection.execute(
                """
                UPDATE whoop_connections
                SET status = 'disconnected', disconnected_at = now(), updated_at = now()
                WHERE user_id = $1
                """,
                user_id,
            )
        return revoked

    async def create_pull_job(self, job: PullJob) -> None:
        await self._pool.execute(
            _INSERT_JOB,
            job.job_id,
            job.user_id,
            list(job.resource_types),
            job.start,
            job.end,
            job.requested_by,
        )

    async def fail_pull_job(self, job_id: str, error: str) -> None:
        await self._pool.execute(
            "UPDATE pull_jobs SET status = 'failed', error = $2, updated_at = now() WHERE job_id = $1",
            job_id,
            error,
        )

    async def pull_job(self, user_id: str, job_id: str) -> PullJob | None:
        row = await self._pool.fetchrow(
            """
            SELECT job_id, user_id, resource_types, range_start, range_end, requested_by, status,
                   progress::text AS progress, error, created_at, updated_at
            FROM pull_jobs WHERE user_id = $1 AND job_id = $2
            """,
            user_id,
            job_id,
        )
        if row is None:
            return None
        return PullJob(
            row["job_id"],
            row["user_id"],
            tuple(row["resource_types"]),
            row["range_start"],
            row["range_end"],
            row["requested_by"],
            row["status"],
            json.loads(row["progress"]),
            row["error"],
            row["created_at"],
            row["updated_at"],
        )
