"""The vault's pure parts: keyring parsing, AES-GCM sealing bound to the user, rotation, token hashing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from infra.vault import (
    DEV_VAULT_KEYS,
    Keyring,
    TokenPair,
    VaultError,
    VaultSettings,
    hash_token,
    new_api_token,
    open_pair,
    seal_pair,
)

EXPIRES = datetime(2025, 10, 14, 12, tzinfo=UTC)
PAIR = TokenPair("access-AAAA.BBBB", "refresh-CCCC.DDDD", EXPIRES, ("offline", "read:sleep"))
K1 = Keyring.generate_item("k1")
K2 = Keyring.generate_item("k2")


def test_a_sealed_pair_opens_only_for_its_user_and_hides_the_tokens() -> None:
    ring = Keyring.parse(K1)
    key_id, nonce, ciphertext = seal_pair(ring, "user-a", PAIR)
    assert key_id == "k1" and len(nonce) == 12
    assert b"access-AAAA" not in ciphertext and b"refresh-CCCC" not in ciphertext
    assert open_pair(ring, "user-a", key_id, nonce, ciphertext, EXPIRES, PAIR.scopes) == PAIR
    with pytest.raises(VaultError, match="does not open"):
        open_pair(ring, "user-b", key_id, nonce, ciphertext, EXPIRES)
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(VaultError, match="does not open"):
        open_pair(ring, "user-a", key_id, nonce, tampered, EXPIRES)
    assert "access-AAAA" not in repr(PAIR) and "refresh" not in repr(PAIR)
    assert "k1:" not in repr(ring)


def test_two_seals_of_the_same_pair_differ() -> None:
    ring = Keyring.parse(K1)
    assert seal_pair(ring, "u", PAIR)[2] != seal_pair(ring, "u", PAIR)[2]


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old = Keyring.parse(K1)
    sealed = seal_pair(old, "u", PAIR)
    rotated = Keyring.parse(f"{K2},{K1}")
    assert rotated.active == "k2" and rotated.key_ids == ("k2", "k1")
    assert open_pair(rotated, "u", *sealed, EXPIRES, PAIR.scopes) == PAIR
    assert seal_pair(rotated, "u", PAIR)[0] == "k2"
    with pytest.raises(VaultError, match="unknown key id 'k1'"):
        open_pair(Keyring.parse(K2), "u", *sealed, EXPIRES)
    # the key id is bound too: a row relabelled to another key does not open
    relabelled = Keyring.parse(f"k2:{K1.split(':')[1]},{K1}")
    with pytest.raises(VaultError):
        open_pair(relabelled, "u", "k2", sealed[1], sealed[2], EXPIRES)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no key"),
        ("k1", "expected"),
        (":" + K1.split(":")[1], "expected"),
        ("k1:not base64!!", "base64url"),
        ("k1:" + base64.urlsafe_b64encode(b"short").decode(), "32 bytes"),
        (f"{K1},{K1}", "twice"),
        ("bad id:" + K1.split(":")[1], "expected"),
    ],
)
def test_bad_keyrings_fail_naming_the_problem(spec: str, message: str) -> None:
    with pytest.raises(VaultError, match=message):
        Keyring.parse(spec)


def test_settings_read_the_keyring_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert VaultSettings().uses_dev_key and VaultSettings().keyring().key_ids == ("dev-1",)
    monkeypatch.setenv("TOKEN_VAULT_KEYS", f"{K2},{K1}")
    settings = VaultSettings()
    assert settings.keyring().active == "k2" and not settings.uses_dev_key
    assert K2.split(":")[1] not in repr(settings)
    monkeypatch.setenv("TOKEN_VAULT_KEYS", "k1:short")
    with pytest.raises(ValueError, match="TOKEN_VAULT_KEYS"):
        VaultSettings()
    assert DEV_VAULT_KEYS.startswith("dev-1:")


def test_api_tokens_are_random_and_stored_as_sha256() -> None:
    tokens = {new_api_token() for _ in range(100)}
    assert len(tokens) == 100 and all(t.startswith("wpt_") and len(t) == 47 for t in tokens)
    token = next(iter(tokens))
    assert len(hash_token(token)) == 64 and hash_token(token) != token and token not in hash_token(token)
