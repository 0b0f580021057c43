"""The token vault: WHOOP token pairs encrypted at rest, and our own API tokens stored as hashes.

WHOOP tokens (``whoop_tokens``): each member's access + refresh token pair is sealed with AES-GCM
(``cryptography``) under the *active* key of a keyring read from ``TOKEN_VAULT_KEYS``
(``kid:base64url-32-bytes`` items, comma-separated, the first one active). Each row stores the
key id, so older keys keep decrypting after a rotation and :meth:`TokenVault.rewrap` moves rows to
the active key. The associated data binds a ciphertext to its user: a row copied onto another
user fails to open. Plaintext tokens never leave this module except as a :class:`TokenPair`,
whose ``repr`` hides them. ``load(..., for_update=True)`` takes the row lock that makes a token
refresh single-flight across processes.

API tokens (``api_tokens``): random (256 bits), returned once by :meth:`ApiTokens.issue`,
stored only as their sha256 (sufficient for high-entropy tokens), expiring (``expires_at``, set when
issued), revocable one by one, per device or per user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from infra.errors import PipelineError
from infra.rewrap import RewrapReport, rewrap_rows

__all__ = [
    "API_TOKEN_PREFIX",
    "DEFAULT_API_TOKEN_TTL",
    "DEV_VAULT_KEYS",
    "ApiPrincipal",
    "ApiTokens",
    "Executor",
    "IssuedToken",
    "Keyring",
    "TokenPair",
    "TokenVault",
    "VaultError",
    "VaultSettings",
    "hash_token",
    "new_api_token",
    "open_pair",
    "seal_pair",
]

Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
API_TOKEN_PREFIX = "wpt_"  # noqa: S105 - a public prefix, not a secret
DEFAULT_API_TOKEN_TTL = timedelta(days=90)
DEV_VAULT_KEYS = "dev-1:MuK-FE2A8IVnP2OHMeB6X2j986Atjw4B3pCFVYkdw08="  # public dev key: never in production
_NONCE_BYTES = 12
_LOAD = "SELECT key_id, nonce, ciphertext, scopes, access_expires_at FROM whoop_tokens WHERE user_id = $1"
_LOAD_FOR_UPDATE = _LOAD + " FOR UPDATE"
_AAD_PREFIX = b"whoop-pipeline/whoop-token-pair/v1\x00"
_DEV_KEY = base64.urlsafe_b64decode(DEV_VAULT_KEYS.partition(":")[2])


class VaultError(PipelineError):
    """A key is missing or malformed, or a sealed row does not open (tampered or wrong user)."""


class VaultSettings(BaseSettings):
    """The vault's keyring, shared by every process that reads or writes WHOOP tokens."""

    # hide_input_in_errors: a malformed TOKEN_VAULT_KEYS is named, its value is never printed
    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=None, hide_input_in_errors=True)

    token_vault_keys: Annotated[SecretStr, NoDecode] = Field(
        default=SecretStr(DEV_VAULT_KEYS),
        description="Comma-separated 'key_id:base64url(32 random bytes)' AES-256-GCM keys; the first "
        "encrypts, all decrypt (rotation). The default is a public development key.",
    )

    @field_validator("token_vault_keys")
    @classmethod
    def _parse_check(cls, value: SecretStr) -> SecretStr:
        try:
            Keyring.parse(value.get_secret_value())
        except VaultError as exc:
            raise ValueError(str(exc)) from exc  # pydantic then names the variable
        return value

    def keyring(self) -> Keyring:
        """The parsed keyring."""
        return Keyring.parse(self.token_vault_keys.get_secret_value())

    @property
    def uses_dev_key(self) -> bool:
        """True when the public development key is configured (under any key id)."""
        return bool(self.keyring().dev_key_ids)


@dataclass(frozen=True)
class Keyring:
    """AES-256 keys by id; ``active`` seals, every key opens."""

    active: str
    keys: Mapping[str, bytes] = field(repr=False)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    @property
    def dev_key_ids(self) -> tuple[str, ...]:
        """Ids of the keys that are the public development key (``DEV_VAULT_KEYS``), whatever their id."""
        return tuple(key_id for key_id, key in self.keys.items() if key == _DEV_KEY)

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Parse ``kid:base64url,kid:base64url``; raise :class:`VaultError` naming the bad item."""
        keys: dict[str, bytes] = {}
        for position, item in enumerate(part.strip() for part in spec.split(",")):
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep or not key_id or len(key_id) > 32 or not key_id.replace("-", "").isalnum():
                raise VaultError(f"TOKEN_VAULT_KEYS item {position}: expected 'key_id:base64url-key'")
            try:
                key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError) as exc:
                raise VaultError(f"TOKEN_VAULT_KEYS key {key_id!r}: not base64url") from exc
            if len(key) != 32:
                raise VaultError(f"TOKEN_VAULT_KEYS key {key_id!r}: must be 32 bytes, got {len(key)}")
            if key_id in keys:
                raise VaultError(f"TOKEN_VAULT_KEYS: key id {key_id!r} appears twice")
            keys[key_id] = key
        if not keys:
            raise VaultError("TOKEN_VAULT_KEYS holds no key")
        return cls(active=next(iter(keys)), keys=keys)

    @staticmethod
    def generate_item(key_id: str) -> str:
        """A new ``key_id:base64url`` item for ``TOKEN_VAULT_KEYS``."""
        return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


@dataclass(frozen=True)
class TokenPair:
    """A member's WHOOP tokens; ``repr`` never shows them."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scopes: tuple[str, ...] = ()


def _aad(user_id: str, key_id: str) -> bytes:
    return _AAD_PREFIX + user_id.encode() + b"\x00" + key_id.encode()


def seal_pair(keyring: Keyring, user_id: str, pair: TokenPair) -> tuple[str, bytes, bytes]:
    """``(key_id, nonce, ciphertext)`` of ``pair`` under the active key, bound to ``user_id``."""
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = orjson.dumps({"a": pair.access_token, "r": pair.refresh_token})
    key_id = keyring.active
    return key_id, nonce, AESGCM(keyring.keys[key_id]).encrypt(nonce, plaintext, _aad(user_id, key_id))


def open_pair(
    keyring: Keyring,
    user_id: str,
    key_id: str,
    nonce: bytes,
    ciphertext: bytes,
    expires_at: datetime,
    scopes: Sequence[str] = (),
) -> TokenPair:
    """The pair sealed by :func:`seal_pair`; VaultError when the key is unknown or it was tampered."""
    key = keyring.keys.get(key_id)
    if key is None:
        raise VaultError(f"token row of user {user_id} is sealed with unknown key id {key_id!r}")
    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, _aad(user_id, key_id))
    except InvalidTag as exc:
        raise VaultError(f"token row of user {user_id} does not open (tampered or moved)") from exc
    data = orjson.loads(plaintext)
    return TokenPair(data["a"], data["r"], expires_at, tuple(scopes))


def _open_row(keyring: Keyring, user_id: str, row: asyncpg.Record, scopes: Sequence[str] = ()) -> TokenPair:
    """:func:`open_pair` of a ``whoop_tokens`` row."""
    return open_pair(
        keyring,
        user_id,
        row["key_id"],
        row["nonce"],
        row["ciphertext"],
        row["access_expires_at"],
        scopes,
    )


class TokenVault:
    """Store, load and delete WHOOP token pairs in ``whoop_tokens`` (encrypted); rewrappable."""

    table = "whoop_tokens"

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    async def store(self, db: Executor, user_id: str, pair: TokenPair) -> None:
        """Insert or replace the pair of ``user_id``."""
        key_id, nonce, ciphertext = seal_pair(self._keyring, user_id, pair)
        await db.execute(
            """
            INSERT INTO whoop_tokens (user_id, key_id, nonce, ciphertext, scopes, access_expires_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (user_id) DO UPDATE SET key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce,
                ciphertext = EXCLUDED.ciphertext, scopes = EXCLUDED.scopes,
                access_expires_at = EXCLUDED.access_expires_at, updated_at = now()
            """,
            user_id,
            key_id,
            nonce,
            ciphertext,
            list(pair.scopes),
            pair.expires_at,
        )

    async def load(self, db: Executor, user_id: str, *, for_update: bool = False) -> TokenPair | None:
        """The pair of ``user_id`` or None; ``for_update`` locks the row (inside a transaction)."""
        row = await db.fetchrow(_LOAD_FOR_UPDATE if for_update else _LOAD, user_id)
        if row is None:
            return None
        return _open_row(self._keyring, user_id, row, row["scopes"])

    async def delete(self, db: Executor, user_id: str) -> bool:
        """Delete the pair of ``user_id``; True when there was one."""
        status: str = await db.execute("DELETE FROM whoop_tokens WHERE user_id = $1", user_id)
        return status.endswith(" 1")

    async def rewrap(self, db: asyncpg.Pool, batch: int = 100) -> RewrapReport:
        """Re-seal every row not under the active key (key rotation), one transaction per batch.

        Rows are visited once, in ``user_id`` order; a row another transaction holds (a token refresh)
        is skipped and counted as pending, a row that does not open is counted and left as it is
        (``infra.rewrap``). Interrupted, it loses only the batch in flight; run again, it moves the rest.
        """

        def reseal(row: asyncpg.Record) -> tuple[str, bytes, bytes]:
            user_id = row["user_id"]
            pair = _open_row(self._keyring, user_id, row)
            return seal_pair(self._keyring, user_id, pair)

        return await rewrap_rows(
            db,
            table=self.table,
            sealed_column="ciphertext",
            extra_columns=", access_expires_at",
            active=self._keyring.active,
            reseal=reseal,
            unopenable=VaultError,
            batch=batch,
        )


def new_api_token() -> str:
    """A fresh API token: a recognisable prefix and 256 random bits."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a high-entropy token: hex sha256."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A token as issued: the plaintext exists only here, once."""

    token_id: str
    token: str = field(repr=False)
    user_id: str
    scopes: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True)
class ApiPrincipal:
    """Who an API token speaks for."""

    token_id: str
    user_id: str
    scopes: tuple[str, ...]


class ApiTokens:
    """Our per-user API tokens in ``api_tokens`` (hash only, expiring, one live token per device)."""

    async def issue(
        self,
        db: Executor,
        user_id: str,
        scopes: Sequence[str] = ("user",),
        *,
        ttl: timedelta = DEFAULT_API_TOKEN_TTL,
        device_id: str | None = None,
    ) -> IssuedToken:
        """Mint and store a token for ``user_id`` expiring ``ttl`` from now (database clock).

        With a ``device_id``, the live tokens of that (user, device) are revoked first: run it in a
        transaction. The returned plaintext is never stored.
        """
        if device_id is not None:
            await db.execute(
                "UPDATE api_tokens SET revoked_at = now() "
                "WHERE user_id = $1 AND device_id = $2 AND revoked_at IS NULL",
                user_id,
                device_id,
            )
        token = new_api_token()
        token_id = str(uuid.uuid4())
        expires_at: datetime = await db.fetchval(
            """
            INSERT INTO api_tokens (token_id, token_hash, user_id, scopes, device_id, expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
            RETURNING expires_at
            """,
            token_id,
            hash_token(token),
            user_id,
            list(scopes),
            device_id,
            ttl.total_seconds(),
        )
        return IssuedToken(token_id, token, user_id, tuple(scopes), expires_at)

    async def authenticate(self, db: Executor, token: str) -> ApiPrincipal | None:
        """The principal of a live (not revoked, not expired) token, or None."""
        if not token.startswith(API_TOKEN_PREFIX) or len(token) > 128:
            return None
        row = await db.fetchrow(
            """
            SELECT token_id, user_id, scopes FROM api_tokens
            WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()
            """,
            hash_token(token),
        )
        if row is None:
            return None
        return ApiPrincipal(row["token_id"], row["user_id"], tuple(row["scopes"]))

    async def revoke(self, db: Executor, token_id: str) -> bool:
        """Revoke one token; True when it was live."""
        status: str = await db.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL", token_id
        )
        return not status.endswith(" 0")

    async def revoke_user(self, db: Executor, user_id: str) -> int:
        """Revoke every live token of ``user_id``; returns how many."""
        status: str = await db.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id
        )
        return int(status.rsplit(" ", 1)[1])
