"""Sealed Kafka values: a member's health payloads encrypted under that member's own data key.

Crypto-shredding (ADR 0004): every value the pipeline writes to ``whoop.documents.v1`` and
``wear.records.v1`` is sealed with AES-256-GCM under a random 256-bit key that belongs to one
member. Destroying that key (erasure) makes every copy of those values unreadable at once: in the
compacted topics, in their dead-letter twins, in backups and in any consumer's lag.

A sealed value is ``MAGIC + key tag (4 bytes) + nonce (12 bytes) + ciphertext``. The magic starts
with a NUL byte, which no JSON text can start with, so a reader tells a sealed value from a plaintext
one (written before sealing existed) by its first bytes. The key tag names the data key that sealed
it: a value sealed under a destroyed key is recognised as such (:func:`sealed_with`) even after the
member connected again and got a new key. The associated data binds a ciphertext to its member: a
value copied under another member's key does not open.

Data keys are stored wrapped (encrypted) by the token vault's keyring (``infra.vault.Keyring``),
so a database dump alone opens nothing. Pure functions apart from one bounded cache of the AES-GCM
context and key tag per data key (building them costs ~3 us, a third of sealing a 1.2 kB value);
:func:`forget_data_key` drops a key's entry when the key is forgotten or destroyed. The PostgreSQL side
is ``infra.member_keys``.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.errors import PipelineError
from infra.vault import Keyring

__all__ = [
    "DATA_KEY_BYTES",
    "MAGIC",
    "MAX_CACHED_CIPHERS",
    "SealError",
    "forget_data_key",
    "is_sealed",
    "key_tag",
    "new_data_key",
    "open_value",
    "seal_value",
    "sealed_with",
    "unwrap_data_key",
    "wrap_data_key",
]

MAGIC = b"\x00wps1"
DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 4
_TAG_PREFIX = b"whoop-pipeline/member-data-key-tag/v1\x00"
_VALUE_AAD = b"whoop-pipeline/sealed-value/v1\x00"
_WRAP_AAD = b"whoop-pipeline/member-data-key/v1\x00"
MAX_CACHED_CIPHERS = 10_000  # data keys whose AES-GCM context is kept; all are dropped when full
_ciphers: dict[bytes, tuple[AESGCM, bytes]] = {}


class SealError(PipelineError):
    """A sealed value or a wrapped key does not open: wrong member, wrong key, or tampered."""


def new_data_key() -> bytes:
    """A fresh random member data key."""
    return os.urandom(DATA_KEY_BYTES)


def is_sealed(value: bytes | None) -> bool:
    """True for a value written by :func:`seal_value`."""
    return value is not None and value[: len(MAGIC)] == MAGIC


def key_tag(data_key: bytes) -> bytes:
    """The 4 bytes that name a data key in the values it seals (not secret: a hash of the key)."""
    return hashlib.sha256(_TAG_PREFIX + data_key).digest()[:_TAG_BYTES]


def _cipher(data_key: bytes) -> tuple[AESGCM, bytes]:
    """The AES-GCM context and the key tag of ``data_key``, built once per key."""
    found = _ciphers.get(data_key)
    if found is None:
        if len(_ciphers) >= MAX_CACHED_CIPHERS:
            _ciphers.clear()
        found = _ciphers[data_key] = (AESGCM(data_key), key_tag(data_key))
    return found


def forget_data_key(data_key: bytes) -> None:
    """Drop ``data_key``'s cached AES-GCM context (the key was forgotten or destroyed)."""
    _ciphers.pop(data_key, None)


def sealed_with(data_key: bytes, sealed: bytes) -> bool:
    """True when ``sealed`` names ``data_key`` as the key that sealed it."""
    start = len(MAGIC)
    return hmac.compare_digest(sealed[start : start + _TAG_BYTES], key_tag(data_key))


def seal_value(data_key: bytes, user_id: str, plaintext: bytes) -> bytes:
    """``plaintext`` sealed under ``data_key``, bound to ``user_id``."""
    cipher, tag = _cipher(data_key)
    nonce = os.urandom(_NONCE_BYTES)
    return MAGIC + tag + nonce + cipher.encrypt(nonce, plaintext, _VALUE_AAD + user_id.encode())


def open_value(data_key: bytes, user_id: str, sealed: bytes) -> bytes:
    """The plaintext of a value sealed by :func:`seal_value`; SealError when it does not open."""
    if not is_sealed(sealed):
        raise SealError("the value is not sealed")
    start = len(MAGIC) + _TAG_BYTES
    nonce, ciphertext = sealed[start : start + _NONCE_BYTES], sealed[start + _NONCE_BYTES :]
    try:
        return _cipher(data_key)[0].decrypt(nonce, ciphertext, _VALUE_AAD + user_id.encode())
    except InvalidTag as exc:
        raise SealError("the sealed value does not open (another member's key, or tampered)") from exc


def wrap_data_key(keyring: Keyring, user_id: str, data_key: bytes) -> tuple[str, bytes, bytes]:
    """``(key_id, nonce, wrapped)`` of ``data_key`` under the keyring's active key."""
    key_id = keyring.active
    nonce = os.urandom(_NONCE_BYTES)
    aad = _WRAP_AAD + user_id.encode() + b"\x00" + key_id.encode()
    return key_id, nonce, AESGCM(keyring.keys[key_id]).encrypt(nonce, data_key, aad)


def unwrap_data_key(keyring: Keyring, user_id: str, key_id: str, nonce: bytes, wrapped: bytes) -> bytes:
    """The data key wrapped by :func:`wrap_data_key`; SealError when its key is unknown or it was tampered."""
    kek = keyring.keys.get(key_id)
    if kek is None:
        raise SealError(f"the data key of user {user_id} is wrapped with unknown key id {key_id!r}")
    aad = _WRAP_AAD + user_id.encode() + b"\x00" + key_id.encode()
    try:
        return AESGCM(kek).decrypt(nonce, wrapped, aad)
    except InvalidTag as exc:
        raise SealError(f"the data key of user {user_id} does not open (tampered or moved)") from exc
