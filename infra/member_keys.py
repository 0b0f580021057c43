"""Members' data keys in PostgreSQL (``member_data_keys``), and the sealing of their Kafka values.

:class:`MemberKeys` creates a member's key the first time the fetcher writes one of their documents
(:meth:`MemberKeys.ensure`), finds the keys of the members of a batch in one query
(:meth:`MemberKeys.fetch`), and destroys a key on erasure (:meth:`MemberKeys.destroy`). Keys are
remembered for ``ttl_s`` seconds per process: a destroyed key can still open values in a running
process for at most that long, and the erasure gate (``infra.erasure_gate``) keeps what those
processes write from reaching a table. Keys are stored wrapped by the vault's keyring
(``infra.sealing``); :meth:`MemberKeys.rewrap` moves them to the active wrapping key (rotation).

:func:`open_with` turns a Kafka value into plaintext: a plaintext value
(written before sealing existed) passes as it is, a sealed value opens with its member's key, and a
sealed value whose member has no key any more is ``ERASED``: the member was erased, and there is
nothing left to read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Final

import asyncpg

from infra.errors import PipelineError
from infra.rewrap import RewrapReport, rewrap_rows
from infra.sealing import (
    SealError,
    forget_data_key,
    is_sealed,
    new_data_key,
    open_value,
    seal_value,
    sealed_with,
    unwrap_data_key,
    wrap_data_key,
)
from infra.vault import Executor, Keyring
from schemas.keys import user_of_key

__all__ = ["ERASED", "Erased", "KeysUnavailable", "MemberKeys", "PooledKeys", "has_key", "open_with"]

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 30.0
_MAX_CACHED = 100_000


class Erased:
    """The marker of a sealed value whose member's key was destroyed."""

    def __repr__(self) -> str:
        return "ERASED"


ERASED: Final = Erased()


def open_with(
    keys: Mapping[str, bytes], user_id: str | None, value: bytes | None, unopenable: Set[str] = frozenset()
) -> bytes | Erased | None:
    """``value`` as plaintext: as it is, opened with its member's key, or ERASED (no key any more).

    SealError when it does not open, or when the member's stored key itself does not (``unopenable``).
    """
    if value is None or not is_sealed(value):
        return value
    if user_id is not None and user_id in unopenable:
        raise SealError(f"the data key of user {user_id} does not open (TOKEN_VAULT_KEYS lacks its key?)")
    key = None if user_id is None else keys.get(user_id)
    if key is None or user_id is None or not sealed_with(key, value):
        return ERASED  # no key, or sealed under a key destroyed before the member came back
    return open_value(key, user_id, value)


async def has_key(db: Executor, user_id: str) -> bool:
    """Whether the member holds a data key (they had a document written and were not erased)."""
    found = await db.fetchval("SELECT EXISTS (SELECT 1 FROM member_data_keys WHERE user_id = $1)", user_id)
    return bool(found)


class MemberKeys:
    """Per-member data keys: created, found (cached), destroyed, rewrapped."""

    def __init__(
        self, keyring: Keyring, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keyring = keyring
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, bytes]] = {}
        self.unopenable: set[str] = set()  # members whose stored key does not open (not erased!)

    def _cached(self, user_id: str) -> bytes | None:
        entry = self._cache.get(user_id)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del self._cache[user_id]
            return None
        return entry[1]

    def _remember(self, user_id: str, key: bytes) -> None:
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[user_id] = (self._clock() + self._ttl_s, key)

    def forget(self, user_id: str) -> None:
        """Drop a member's key from this process's memory (and its cached AES-GCM context)."""
        entry = self._cache.pop(user_id, None)
        if entry is not None:
            forget_data_key(entry[1])

    async def fetch(self, db: Executor, user_ids: Iterable[str]) -> dict[str, bytes]:
        """The keys of those of ``user_ids`` that have one (one query for those not remembered)."""
        found: dict[str, bytes] = {}
        missing: list[str] = []
        for user_id in set(user_ids):
            key = self._cached(user_id)
            if key is None:
                missing.append(user_id)
            else:
                found[user_id] = key
        if missing:
            rows = await db.fetch(
                "SELECT user_id, key_id, nonce, wrapped FROM member_data_keys "
                "WHERE user_id = ANY($1::text[])",
                missing,
            )
            for row in rows:
                user_id = row["user_id"]
                try:
                    key = unwrap_data_key(self._keyring, user_id, row["key_id"], row["nonce"], row["wrapped"])
                except SealError:  # wrapped under a key TOKEN_VAULT_KEYS lacks, or tampered
                    logger.warning(
                        "the data key of user %s does not open: their values are dead-lettered", user_id
                    )
                    self.unopenable.add(user_id)
                    continue
                self.unopenable.discard(user_id)
                self._remember(user_id, key)
                found[user_id] = key
        return found

    async def refresh_stale(
        self, db: Executor, keys: dict[str, bytes], items: Iterable[tuple[str | None, bytes | None]]
    ) -> None:
        """Look again for the keys remembered in ``keys`` that did not seal a sealed value of ``items``.

        A member erased and connected again has a new key; a process that still remembers the old one
        would read their new values as erased. Values sealed under a destroyed key cost one query.
        """
        stale = {
            user
            for user, value in items
            if user is not None
            and user in keys
            and is_sealed(value)
            and not sealed_with(keys[user], value or b"")
        }
        for user in stale:
            self.forget(user)
            del keys[user]
        if stale:
            keys.update(await self.fetch(db, stale))

    async def ensure(self, db: Executor, user_id: str) -> bytes:
        """The member's key, created when they have none (call it only for an admitted member).

        Always read from the database (never from memory): a key destroyed by an erasure must not seal
        anything after the member connected again.
        """
        self.forget(user_id)
        key_id, nonce, wrapped = wrap_data_key(self._keyring, user_id, new_data_key())
        await db.execute(
            """
            INSERT INTO member_data_keys (user_id, key_id, nonce, wrapped) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id) DO NOTHING
            """,
            user_id,
            key_id,
            nonce,
            wrapped,
        )
        keys = await self.fetch(db, [user_id])
        if user_id not in keys:
            raise SealError(f"the data key of user {user_id} does not open (TOKEN_VAULT_KEYS lacks its key?)")
        return keys[user_id]

    async def destroy(self, db: Executor, user_id: str) -> bool:
        """Delete the member's key (crypto-shredding); True when there was one."""
        self.forget(user_id)
        status: str = await db.execute("DELETE FROM member_data_keys WHERE user_id = $1", user_id)
        return status.endswith(" 1")

    table = "member_data_keys"

    async def rewrap(self, db: asyncpg.Pool, batch: int = 500) -> RewrapReport:
        """Re-wrap every key not under the keyring's active key (``infra.rewrap.rewrap_rows``)."""

        def reseal(row: asyncpg.Record) -> tuple[str, bytes, bytes]:
            user_id = row["user_id"]
            key = unwrap_data_key(self._keyring, user_id, row["key_id"], row["nonce"], row["wrapped"])
            return wrap_data_key(self._keyring, user_id, key)

        return await rewrap_rows(
            db,
            table=self.table,
            sealed_column="wrapped",
            active=self._keyring.active,
            reseal=reseal,
            unopenable=SealError,
            batch=batch,
        )

    @staticmethod
    def seal(key: bytes, user_id: str, value: bytes) -> bytes:
        """``value`` sealed for ``user_id`` (see ``infra.sealing``)."""
        return seal_value(key, user_id, value)


@dataclass(frozen=True)
class PooledKeys:
    """:class:`MemberKeys` with the pool it reads from: what a Kafka consumer needs to open values."""

    pool: asyncpg.Pool
    keys: MemberKeys

    async def fetch(
        self, user_ids: Iterable[str], items: Iterable[tuple[str | None, bytes | None]] = ()
    ) -> dict[str, bytes]:
        """The keys of those of ``user_ids`` that have one, fresh for the sealed values of ``items``
        (:meth:`MemberKeys.refresh_stale`); KeysUnavailable when PostgreSQL is not there."""
        try:
            keys = await self.keys.fetch(self.pool, user_ids)
            await self.keys.refresh_stale(self.pool, keys, items)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise KeysUnavailable(f"the member keys cannot be read ({type(exc).__name__})") from exc
        return keys

    async def open(self, key: bytes | None, value: bytes | None) -> bytes | Erased | None:
        """One Kafka record's value as plaintext, its member taken from its key (see :func:`open_with`)."""
        if key is None or not is_sealed(value):
            return value
        user_id = user_of_key(key).decode("utf-8", "replace")
        return open_with(await self.fetch([user_id]), user_id, value, self.keys.unopenable)


class KeysUnavailable(PipelineError):
    """PostgreSQL did not answer a key lookup: retry later."""

    retriable = True
