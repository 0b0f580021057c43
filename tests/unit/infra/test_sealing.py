"""Sealed values: they open only with their member's key, bound to that member; plaintext passes as it is."""

from __future__ import annotations

import pytest

from infra import sealing
from infra.member_keys import ERASED, open_with
from infra.sealing import (
    MAGIC,
    SealError,
    is_sealed,
    key_tag,
    new_data_key,
    open_value,
    seal_value,
    sealed_with,
    unwrap_data_key,
    wrap_data_key,
)
from infra.vault import Keyring

VALUE = b'{"event_type":"SleepRecorded","score":{"sleep_performance_percentage":91}}'


def test_a_sealed_value_holds_no_plaintext_and_opens_with_its_key() -> None:
    key = new_data_key()
    sealed = seal_value(key, "user-a", VALUE)
    assert is_sealed(sealed) and sealed.startswith(MAGIC)
    assert b"score" not in sealed and b"91" not in sealed
    assert open_value(key, "user-a", sealed) == VALUE
    assert seal_value(key, "user-a", VALUE) != sealed  # a fresh nonce every time


def test_it_does_not_open_with_another_key_for_another_member_or_tampered() -> None:
    key = new_data_key()
    sealed = seal_value(key, "user-a", VALUE)
    with pytest.raises(SealError):
        open_value(new_data_key(), "user-a", sealed)
    with pytest.raises(SealError):
        open_value(key, "user-b", sealed)  # copied under another member
    with pytest.raises(SealError):
        open_value(key, "user-a", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(SealError):
        open_value(key, "user-a", VALUE)  # not sealed at all


def test_json_is_never_taken_for_a_sealed_value() -> None:
    for plaintext in (VALUE, b"[]", b'"x"', b"", b"\x00"):
        assert not is_sealed(plaintext)
    assert not is_sealed(None)


def test_open_with_passes_plaintext_opens_sealed_and_says_erased_without_a_key() -> None:
    key = new_data_key()
    sealed = seal_value(key, "user-a", VALUE)
    assert open_with({}, "user-a", VALUE) == VALUE  # written before sealing existed
    assert open_with({}, "user-a", None) is None  # a tombstone
    assert open_with({"user-a": key}, "user-a", sealed) == VALUE
    assert open_with({"user-b": key}, "user-a", sealed) is ERASED  # the member's key was destroyed
    assert open_with({"user-a": key}, None, sealed) is ERASED
    again = new_data_key()  # the member was erased, then connected again: a new key
    assert open_with({"user-a": again}, "user-a", sealed) is ERASED
    with pytest.raises(SealError):  # a stored key that does not open is an error, never an erasure
        open_with({}, "user-a", sealed, unopenable={"user-a"})


def test_data_keys_are_wrapped_by_the_vault_keyring_and_bound_to_their_member() -> None:
    old, new = Keyring.generate_item("k1"), Keyring.generate_item("k2")
    keyring = Keyring.parse(f"{new},{old}")
    key = new_data_key()
    key_id, nonce, wrapped = wrap_data_key(keyring, "user-a", key)
    assert key_id == "k2" and key not in wrapped
    assert unwrap_data_key(keyring, "user-a", key_id, nonce, wrapped) == key
    with pytest.raises(SealError):
        unwrap_data_key(keyring, "user-b", key_id, nonce, wrapped)
    with pytest.raises(SealError):
        unwrap_data_key(Keyring.parse(old), "user-a", key_id, nonce, wrapped)  # the key id is unknown


def test_the_cached_cipher_of_each_key_seals_under_that_key_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing, "MAX_CACHED_CIPHERS", 3)
    monkeypatch.setattr(sealing, "_ciphers", {})
    keys = [new_data_key() for _ in range(5)]
    sealed = [seal_value(key, "u", b'{"n": %d}' % n) for n, key in enumerate(keys)]
    assert len(sealing._ciphers) <= 3  # bounded: emptied when full
    for n, key in enumerate(keys):
        assert sealed_with(key, sealed[n]) and key_tag(key) == sealed[n][len(MAGIC) : len(MAGIC) + 4]
        assert open_value(key, "u", sealed[n]) == b'{"n": %d}' % n
        with pytest.raises(SealError):
            open_value(keys[(n + 1) % 5], "u", sealed[n])
    sealing.forget_data_key(keys[4])
    assert keys[4] not in sealing._ciphers
    assert open_value(keys[4], "u", sealed[4]) == b'{"n": 4}'  # rebuilt on demand
