"""Who is calling the query API, what they may read, and how fast.

``Authorization: Bearer <token>`` is required on every data route. A user token (``api_tokens``,
checked through ``infra.vault.ApiTokens``: only its hash is stored; revoked or past its
``expires_at``, it is unknown) reads its own member only:
another member's data answers 404, exactly as a member that does not exist, so ids do not leak.
Admin tokens are configured as hashes (``PROJECTIONS_ADMIN_TOKENS``) with scopes (``read``: any
member's data and sync status; ``status``: sync status only) and compared in constant time; an admin
token without the needed scope answers 403. Lookups are remembered for ``PROJECTIONS_AUTH_CACHE_S``
seconds (so a revocation or an expiry takes effect within that time). Each token has its own token bucket
(``PROJECTIONS_RATE_PER_S``, ``PROJECTIONS_RATE_BURST``): over it, 429 with Retry-After. A client
address whose tokens failed ``PROJECTIONS_AUTH_FAILURES_MAX`` times within
``PROJECTIONS_AUTH_FAILURE_WINDOW_S`` (unknown or revoked; a missing or malformed header is not
counted) is answered 429 ``too_many_failed_authentications`` before any lookup (``infra.auth_throttle``).
The bearer parser and the :class:`~infra.principal.Principal` are ingest's too (``infra.principal``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from infra.auth_throttle import FailureThrottle, client_key
from infra.principal import Principal, Refusal, admin_principal, bearer_token
from infra.vault import ApiTokens, hash_token

from ..errors import AuthenticationThrottled, Forbidden, NotFound, RateLimited, Unauthenticated
from ..settings import AdminToken
from .http import Call
from .read_connections import ConnectionSource, as_source

__all__ = ["Authenticator", "Principal", "RateLimiter", "authorize", "bearer_of"]

logger = logging.getLogger(__name__)

_MAX_CACHED = 50_000


# For each scope a data route needs, the admin scopes that grant it: ``read`` includes ``status``.
_GRANTING = {"read": ("read",), "status": ("status", "read")}


def authorize(principal: Principal, user_id: str, scope: str) -> None:
    """Allow the member themself, or an admin holding ``scope`` (or ``read`` for ``status``);
    NotFound/Forbidden otherwise."""
    refusal = principal.refusal(user_id, _GRANTING.get(scope, (scope,)))
    if refusal is Refusal.MISSING_SCOPE:
        raise Forbidden(f"this admin token lacks the {scope!r} scope")
    if refusal is Refusal.NOT_FOUND:
        raise NotFound("no such member", "not_found")


def bearer_of(call: Call) -> str:
    """The bearer token of the request; Unauthenticated when absent or malformed."""
    token = bearer_token(call.authorization)
    if token is None:
        if len(call.authorization) != 1:
            raise Unauthenticated("send one Authorization: Bearer <token> header")
        raise Unauthenticated("send Authorization: Bearer <token>")
    return token


class Authenticator:
    """Bearer tokens → principals: admin hashes from the settings, user tokens from ``api_tokens``;
    ``failures`` throttles the addresses that fail too often (None: no throttle)."""

    def __init__(
        self,
        connections: asyncpg.Pool | ConnectionSource,
        admin_tokens: tuple[AdminToken, ...],
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
        failures: FailureThrottle | None = None,
    ) -> None:
        self._failures = failures
        self._connections = as_source(connections)
        self._admins = admin_tokens
        self._cache_s = cache_s
        self._clock = clock
        self._tokens = ApiTokens()
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, call: Call) -> Principal:
        """The caller; Unauthenticated (401), or AuthenticationThrottled (429) before any lookup."""
        client = client_key(call.client)
        if self._failures is not None:
            retry_after = self._failures.retry_after(client)
            if retry_after is not None:
                raise AuthenticationThrottled(retry_after)
        token = bearer_of(call)
        digest = hash_token(token)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._lookup(token, digest)
            if self._cache_s > 0:
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
                self._cache[digest] = (now + self._cache_s, principal)
        if principal is None:
            if self._failures is not None:
                self._failures.failed(client)
                if self._failures.retry_after(client) is not None:
                    logger.warning("client %s refused for a while: too many failed authentications", client)
            raise Unauthenticated("the token is unknown or revoked", "invalid_token")
        return principal

    async def _lookup(self, token: str, digest: str) -> Principal | None:
        admin = admin_principal(self._admins, digest)
        if admin is not None:
            return admin
        async with self._connections.connection() as connection:
            found = await self._tokens.authenticate(connection, token)
        if found is None:
            return None
        return Principal.of_user(found)


class RateLimiter:
    """One token bucket per principal: ``rate`` requests per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, principal: Principal) -> None:
        """Spend one request of the principal's budget; RateLimited when none is left."""
        if self._rate <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.get(principal.key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[principal.key] = (tokens, now)
            raise RateLimited("too many requests for this token; retry later")
        if len(self._buckets) >= _MAX_CACHED:
            self._buckets.clear()
        self._buckets[principal.key] = (tokens - 1.0, now)
