"""Members' WHOOP access tokens: read from the vault, refreshed single-flight across processes.

WHOOP rotates refresh tokens (``whoop-api-v2.md`` §2.6): once a refresh succeeds the old pair is
dead, and two refreshes racing with one refresh token kill the connection. So a refresh happens
only inside a transaction holding the row lock on the member's ``whoop_tokens`` row
(``infra.whoop_tokens.refresh_locked``, the edge's and the fetcher's one row-locked refresh):
whoever gets the lock first refreshes and *stores the new pair before anyone uses it* (the
commit comes before the token is returned); everyone who waited on the lock then finds a
different access token than the one they held and uses it, without calling WHOOP. Inside one process an
``asyncio.Lock`` per member keeps the workers from queueing on PostgreSQL for the same row.

A token is refreshed ``FETCHER_REFRESH_MARGIN_S`` before it expires and after a 401. When WHOOP
refuses the refresh token (``invalid_grant``) or none is stored, the connection is marked
``needs_reauth`` and ``ConnectionRevoked`` is appended to ``whoop.connections.v1`` in the same
transaction (so the mark and the event go together, at least once). Tokens never reach a log line,
an exception message or a topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from infra import connections
from infra.appender import Appender
from infra.vault import Executor, TokenPair, TokenVault
from infra.whoop_tokens import refresh_locked
from processors.clock import Clock
from processors.errors import NeedsReauth
from processors.resources import Member
from processors.whoop_client import WhoopClient
from schemas.events import ConnectionRevoked, new_event_id
from schemas.keys import record_key
from schemas.serde import encode

__all__ = ["TokenManager"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class TokenManager:
    """Access tokens per member, refreshed before expiry and on 401, single-flight across processes."""

    pool: asyncpg.Pool
    vault: TokenVault
    client: WhoopClient
    appender: Appender
    connections_topic: str
    clock: Clock
    refresh_margin_s: float
    refreshes: int = field(default=0, init=False)
    _cache: dict[str, TokenPair] = field(default_factory=dict, init=False)
    _locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock), init=False
    )

    def _fresh(self, pair: TokenPair) -> bool:
        return pair.expires_at - timedelta(seconds=self.refresh_margin_s) > self.clock.now()

    def forget(self, user_id: str) -> None:
        """Drop the cached pair of a member (disconnected)."""
        self._cache.pop(user_id, None)

    async def access_token(self, member: Member) -> str:
        """A usable access token of ``member``, refreshed first when it is about to expire."""
        pair = self._cache.get(member.user_id)
        if pair is None:
            pair = await self.vault.load(self.pool, member.user_id)
            if pair is None:
                raise NeedsReauth("no WHOOP tokens stored for this member", "no_tokens")
            self._cache[member.user_id] = pair
        if self._fresh(pair):
            return pair.access_token
        return (await self._refresh(member, stale=pair.access_token, expired_only=True)).access_token

    async def after_unauthorized(self, member: Member, used: str) -> str:
        """WHOOP refused ``used`` (401): the access token to retry with (refreshed once, single-flight)."""
        return (await self._refresh(member, stale=used, expired_only=False)).access_token

    async def _refresh(self, member: Member, *, stale: str, expired_only: bool) -> TokenPair:
        async with self._locks[member.user_id]:
            cached = self._cache.get(member.user_id)
            if cached is not None and cached.access_token != stale and self._fresh(cached):
                return cached  # another worker of this process refreshed while we waited
            revoked: list[str] = []  # why WHOOP refused the grant, when it did
            refreshed: list[TokenPair] = []  # the new pair, when this call made one

            def keep(current: TokenPair) -> bool:  # another process refreshed while we waited for the lock
                return self._fresh(current) and (expired_only or current.access_token != stale)

            async def refresh(db: Executor, current: TokenPair) -> TokenPair | None:
                if await connections.status(db, member.user_id) == "needs_reauth":
                    raise NeedsReauth("the member must authorize again", "needs_reauth")
                if current.refresh_token is not None:
                    try:
                        refreshed.append(await self.client.refresh(current.refresh_token))
                        return refreshed[0]
                    except NeedsReauth as exc:
                        revoked.append(exc.reason)
                else:
                    revoked.append("no_refresh_token")
                await self._mark_revoked(db, member, revoked[0])
                return None

            pair = await refresh_locked(self.pool, self.vault, member.user_id, keep, refresh)
            if revoked:
                self._cache.pop(member.user_id, None)
                raise NeedsReauth("WHOOP refused the member's refresh token", revoked[0])
            if pair is None:
                raise NeedsReauth("no WHOOP tokens stored for this member", "no_tokens")
            self._cache[member.user_id] = pair
            if not refreshed:
                return pair
            self.refreshes += 1
            logger.info("refreshed the WHOOP tokens of user %s", member.user_id)
            return pair

    async def _mark_revoked(self, db: Executor, member: Member, reason: str) -> None:
        await connections.mark_needs_reauth(db, member.user_id)
        event = ConnectionRevoked(
            event_id=new_event_id(),
            occurred_at=self.clock.now(),
            user_id=member.user_id,
            source="fetcher",
            whoop_user_id=member.whoop_user_id,
            reason=reason,
        )
        await self.appender.append(
            self.connections_topic,
            [(record_key(member.user_id, "connection", member.user_id), encode(event))],
        )
        logger.warning(
            "user %s must authorize again (%s): ConnectionRevoked appended", member.user_id, reason
        )
