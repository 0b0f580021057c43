"""The edge's PostgreSQL port (:class:`Store`) and its asyncpg adapter (:class:`PgStore`).

Tables (``infra/migrations/0002`` to ``0007``): ``whoop_connections``, ``oauth_states`` (hashed,
single-use, expiring, bound to client and redirect URI), ``oauth_exchange_codes`` (hashed,
single-use), ``whoop_tokens`` (through :class:`infra.vault.TokenVault`, encrypted), ``api_tokens``
(through :class:`infra.vault.ApiTokens`, hashed, expiring) and ``pull_jobs``; ``whoop_connections`` and
``pull_jobs`` through their owners, ``infra.connections`` and ``infra.pull_jobs``. Expiry is judged by
the database clock (``now()``), so every process agrees on it. Nothing here logs a token.

A member's ``whoop_connections`` row is the lock of their credentials: issuing an API token, redeeming
an exchange code, refreshing a token and revoking them all (disconnect, erasure) lock it first, so no
token is issued for a member who is not ``connected``, and none survives a disconnect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import asyncpg

from infra import connections, erasure_gate, pull_jobs
from infra.connections import Connection
from infra.pull_jobs import PullJob
from infra.vault import ApiPrincipal, ApiTokens, Executor, IssuedToken, TokenPair, TokenVault, hash_token
from infra.whoop_tokens import refresh_locked
from ingest.errors import ExchangeCodeRejected, IngestError, NotConnected, StateRejected
from ingest.pkce import verifies
from ingest.pull_jobs import PullLimits, insert_pull, replace_active_pull
from schemas.identity import user_id_for_whoop_member

__all__ = ["Connection", "OAuthState", "PgStore", "PullJob", "Store"]


@dataclass(frozen=True)
class OAuthState:
    """What an OAuth state is bound to (the state itself is stored only as a hash)."""

    client_id: str
    redirect_uri: str
    return_to: str | None = None
    client_state: str | None = field(default=None, repr=False)
    code_verifier: str | None = field(default=None, repr=False)  # ours, towards WHOOP
    binding_hash: str | None = field(default=None, repr=False)  # sha256 of the browser's cookie
    app_code_challenge: str | None = None  # the app's S256 challenge, if it sent one


Refresher = Callable[[TokenPair], Awaitable[TokenPair]]


class Store(Protocol):
    """Everything the edge keeps in PostgreSQL."""

    async def ready(self) -> bool: ...
    async def create_state(self, state: str, bound: OAuthState, ttl_s: int) -> None: ...
    async def consume_state(self, state: str) -> OAuthState: ...
    async def save_connection(self, whoop_user_id: int, pair: TokenPair, backfill: PullJob) -> Connection: ...
    async def connection(self, user_id: str) -> Connection | None: ...
    async def issue_api_token(self, user_id: str, *, device_id: str, ttl: timedelta) -> IssuedToken: ...
    async def authenticate(self, token: str) -> ApiPrincipal | None: ...
    async def refresh_api_token(self, token_id: str, *, ttl: timedelta) -> IssuedToken | None: ...
    async def create_exchange_code(
        self, code: str, user_id: str, ttl_s: int, app_code_challenge: str | None = None
    ) -> None: ...
    async def redeem_exchange_code(
        self, code: str, code_verifier: str | None, *, device_id: str, ttl: timedelta
    ) -> IssuedToken: ...
    async def revoke_member_credentials(self, user_id: str) -> int: ...
    async def load_tokens(self, user_id: str) -> TokenPair | None: ...
    async def refresh_tokens(self, user_id: str, stale: TokenPair, refresher: Refresher) -> TokenPair: ...
    async def disconnect(self, user_id: str) -> int: ...
    async def create_pull_job(self, job: PullJob, limits: PullLimits) -> None: ...
    async def fail_pull_job(self, job_id: str, error: str) -> None: ...
    async def pull_job(self, user_id: str, job_id: str) -> PullJob | None: ...


# Each insert first removes up to 100 rows that expired over an hour ago (kept that long so a late
# callback still hears "expired" rather than "unknown"): the tables stay as small as their traffic.
_PURGE = """
    DELETE FROM {table} WHERE {key} IN (
        SELECT {key} FROM {table} WHERE expires_at < now() - interval '1 hour' LIMIT 100
    )
"""


class PgStore:
    """:class:`Store` on an asyncpg pool (its search_path decides the schema)."""

    def __init__(self, pool: asyncpg.Pool, vault: TokenVault, api_tokens: ApiTokens | None = None) -> None:
        self._pool = pool
        self._vault = vault
        self._api_tokens = api_tokens or ApiTokens()

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (the erasure jobs share it)."""
        return self._pool

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
                (state_hash, client_id, redirect_uri, return_to, client_state, expires_at,
                 code_verifier, binding_hash, app_code_challenge)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7, $8, $9)
            """,
            hash_token(state),
            bound.client_id,
            bound.redirect_uri,
            bound.return_to,
            bound.client_state,
            float(ttl_s),
            bound.code_verifier,
            bound.binding_hash,
            bound.app_code_challenge,
        )

    async def consume_state(self, state: str) -> OAuthState:
        state_hash = hash_token(state)
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """
                SELECT client_id, redirect_uri, return_to, client_state, used_at IS NOT NULL AS used,
                       expires_at <= now() AS expired, code_verifier, binding_hash, app_code_challenge
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
            await connection.execute(  # the verifier is needed once, now: it does not stay at rest
                "UPDATE oauth_states SET used_at = now(), code_verifier = NULL WHERE state_hash = $1",
                state_hash,
            )
        return OAuthState(
            row["client_id"],
            row["redirect_uri"],
            row["return_to"],
            row["client_state"],
            row["code_verifier"],
            row["binding_hash"],
            row["app_code_challenge"],
        )

    async def save_connection(self, whoop_user_id: int, pair: TokenPair, backfill: PullJob) -> Connection:
        user_id = user_id_for_whoop_member(whoop_user_id)
        async with self._pool.acquire() as connection, connection.transaction():
            existed = await connections.lock(connection, user_id) is not None
            await erasure_gate.reopen(connection, user_id)  # a member erased before may come back
            await connections.record_connected(connection, user_id, whoop_user_id, pair.scopes)
            await self._vault.store(connection, user_id, pair)
            await replace_active_pull(connection, user_id, backfill)  # supersedes an active pull
        return Connection(user_id, whoop_user_id, "connected", pair.scopes, reconnected=existed)

    async def connection(self, user_id: str) -> Connection | None:
        return await connections.connection(self._pool, user_id)

    async def issue_api_token(self, user_id: str, *, device_id: str, ttl: timedelta) -> IssuedToken:
        """A token for a connected member's device (else NotConnected); the device's old one is revoked."""
        async with self._pool.acquire() as connection, connection.transaction():
            if await connections.lock(connection, user_id) != "connected":
                raise NotConnected("not_connected", "the member is not connected; connect again")
            return await self._api_tokens.issue(connection, user_id, ttl=ttl, device_id=device_id)

    async def authenticate(self, token: str) -> ApiPrincipal | None:
        return await self._api_tokens.authenticate(self._pool, token)

    async def refresh_api_token(self, token_id: str, *, ttl: timedelta) -> IssuedToken | None:
        """A new token for the same member, scopes and device; the old one is revoked.

        None when the old token is no longer live (revoked, expired, or refreshed concurrently).
        """
        async with self._pool.acquire() as connection, connection.transaction():
            user_id = await connection.fetchval(
                "SELECT user_id FROM api_tokens WHERE token_id = $1", token_id
            )
            if user_id is None:
                return None
            status = await connections.lock(connection, user_id)
            old = await connection.fetchrow(
                """
                SELECT scopes, device_id FROM api_tokens
                WHERE token_id = $1 AND revoked_at IS NULL AND expires_at > now() FOR UPDATE
                """,
                token_id,
            )
            if old is None:
                return None
            if status != "connected":
                raise NotConnected("not_connected", "the member is not connected; connect again")
            await self._api_tokens.revoke(connection, token_id)
            return await self._api_tokens.issue(
                connection, user_id, tuple(old["scopes"]), ttl=ttl, device_id=old["device_id"]
            )

    async def create_exchange_code(
        self, code: str, user_id: str, ttl_s: int, app_code_challenge: str | None = None
    ) -> None:
        await self._pool.execute(_PURGE.format(table="oauth_exchange_codes", key="code_hash"))
        await self._pool.execute(
            """
            INSERT INTO oauth_exchange_codes (code_hash, user_id, expires_at, app_code_challenge)
            VALUES ($1, $2, now() + make_interval(secs => $3), $4)
            """,
            hash_token(code),
            user_id,
            float(ttl_s),
            app_code_challenge,
        )

    async def redeem_exchange_code(
        self, code: str, code_verifier: str | None, *, device_id: str, ttl: timedelta
    ) -> IssuedToken:
        """Spend the one-time code and issue its member's token.

        Unknown, used or expired codes are refused untouched; a wrong app verifier or a member who is
        no longer connected spends the code and issues nothing.
        """
        code_hash = hash_token(code)
        async with self._pool.acquire() as connection:
            async with connection.transaction():
                user_id = await connection.fetchval(
                    "SELECT user_id FROM oauth_exchange_codes WHERE code_hash = $1", code_hash
                )
                status = None if user_id is None else await connections.lock(connection, user_id)
                row = await connection.fetchrow(
                    """
                    SELECT used_at IS NOT NULL AS used, expires_at <= now() AS expired, app_code_challenge
                    FROM oauth_exchange_codes WHERE code_hash = $1 FOR UPDATE
                    """,
                    code_hash,
                )
                if user_id is None or row is None:  # never issued, or deleted by a disconnect
                    raise ExchangeCodeRejected("code_unknown", "the exchange code is unknown")
                if row["used"]:
                    raise ExchangeCodeRejected("code_used", "the exchange code was already used")
                if row["expired"]:
                    raise ExchangeCodeRejected("code_expired", "the exchange code expired")
                await connection.execute(
                    "UPDATE oauth_exchange_codes SET used_at = now() WHERE code_hash = $1", code_hash
                )
                refusal: IngestError
                if not verifies(row["app_code_challenge"], code_verifier):
                    refusal = ExchangeCodeRejected(
                        "invalid_code_verifier", "code_verifier does not match the code_challenge"
                    )
                elif status != "connected":
                    refusal = NotConnected("not_connected", "the member is not connected; connect again")
                else:
                    return await self._api_tokens.issue(connection, user_id, ttl=ttl, device_id=device_id)
            raise refusal  # after the commit: the code stays spent

    async def load_tokens(self, user_id: str) -> TokenPair | None:
        return await self._vault.load(self._pool, user_id)

    async def refresh_tokens(self, user_id: str, stale: TokenPair, refresher: Refresher) -> TokenPair:
        """Single-flight refresh (``infra.whoop_tokens.refresh_locked``): only if nobody else already did."""

        def keep(current: TokenPair) -> bool:  # another process refreshed while we waited for the lock
            return current.access_token != stale.access_token

        async def refresh(_db: Executor, current: TokenPair) -> TokenPair:
            return await refresher(current)

        fresh = await refresh_locked(self._pool, self._vault, user_id, keep, refresh)
        return stale if fresh is None else fresh

    async def revoke_member_credentials(self, user_id: str, db: Executor | None = None) -> int:
        """Revoke every API token of the member and delete their pending exchange codes.

        For a disconnect and an erasure: pass ``db`` to run inside the caller's transaction. Returns
        how many tokens were revoked.
        """
        if db is not None:
            return await self._revoke_credentials(db, user_id)
        async with self._pool.acquire() as connection, connection.transaction():
            return await self._revoke_credentials(connection, user_id)

    async def _revoke_credentials(self, db: Executor, user_id: str) -> int:
        await connections.lock(db, user_id)
        await db.execute("DELETE FROM oauth_exchange_codes WHERE user_id = $1", user_id)
        return await self._api_tokens.revoke_user(db, user_id)

    async def disconnect(self, user_id: str) -> int:
        async with self._pool.acquire() as connection, connection.transaction():
            revoked = await self._revoke_credentials(connection, user_id)
            await self._vault.delete(connection, user_id)
            await connections.mark_disconnected(connection, user_id)
        return revoked

    async def create_pull_job(self, job: PullJob, limits: PullLimits) -> None:
        """Record a pull (raises PullInProgress or PullRateLimited: ``ingest.pull_jobs``)."""
        async with self._pool.acquire() as connection, connection.transaction():
            await insert_pull(connection, job, limits)

    async def fail_pull_job(self, job_id: str, error: str) -> None:
        await pull_jobs.fail(self._pool, job_id, error)

    async def pull_job(self, user_id: str, job_id: str) -> PullJob | None:
        return await pull_jobs.job(self._pool, user_id, job_id)
