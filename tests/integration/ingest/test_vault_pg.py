"""The token vault and API tokens on real PostgreSQL: ciphertext rows, single-flight refresh, rotation."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from infra.rewrap import RewrapReport
from infra.vault import ApiTokens, Keyring, TokenPair, TokenVault, VaultError, hash_token
from ingest.store import PgStore
from ingest.vault_rotation import PROGRAM

EXPIRES = datetime(2025, 10, 14, 12, tzinfo=UTC)
K1 = Keyring.generate_item("k1")
K2 = Keyring.generate_item("k2")


def pair(n: int) -> TokenPair:
    return TokenPair(f"access-{n}.xyz", f"refresh-{n}.xyz", EXPIRES + timedelta(hours=n), ("offline",))


async def test_store_load_delete_and_the_rows_are_ciphertext(db_pool: asyncpg.Pool) -> None:
    vault = TokenVault(Keyring.parse(K1))
    await vault.store(db_pool, "u1", pair(1))
    await vault.store(db_pool, "u1", pair(2))  # replace
    assert await vault.load(db_pool, "u1") == pair(2)
    assert await vault.load(db_pool, "nobody") is None
    row = await db_pool.fetchrow("SELECT * FROM whoop_tokens WHERE user_id = 'u1'")
    assert row is not None and row["key_id"] == "k1"
    assert b"access-2" not in row["ciphertext"] and b"refresh-2" not in row["ciphertext"]
    assert all("access-2" not in str(value) for value in row.values())
    assert await vault.delete(db_pool, "u1") is True
    assert await vault.delete(db_pool, "u1") is False
    assert await vault.load(db_pool, "u1") is None


async def test_a_row_moved_to_another_user_does_not_open(db_pool: asyncpg.Pool) -> None:
    vault = TokenVault(Keyring.parse(K1))
    await vault.store(db_pool, "victim", pair(1))
    await vault.store(db_pool, "attacker", pair(2))
    await db_pool.execute(
        """UPDATE whoop_tokens SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM whoop_tokens
           WHERE user_id = 'victim') WHERE user_id = 'attacker'"""
    )
    with pytest.raises(VaultError, match="attacker"):
        await vault.load(db_pool, "attacker")


async def test_rotation_rewraps_every_row_under_the_new_key(db_pool: asyncpg.Pool) -> None:
    old = TokenVault(Keyring.parse(K1))
    for n in range(5):
        await old.store(db_pool, f"u{n}", pair(n))
    rotated = TokenVault(Keyring.parse(f"{K2},{K1}"))
    assert await rotated.load(db_pool, "u3") == pair(3)  # old rows still open
    assert await rotated.rewrap(db_pool, batch=2) == RewrapReport(moved=5, current=0)
    assert await db_pool.fetchval("SELECT array_agg(DISTINCT key_id) FROM whoop_tokens") == ["k2"]
    only_new = TokenVault(Keyring.parse(K2))
    assert [await only_new.load(db_pool, f"u{n}") for n in range(5)] == [pair(n) for n in range(5)]
    assert await rotated.rewrap(db_pool) == RewrapReport(moved=0, current=5)


async def test_rotation_leaves_rows_that_do_not_open_and_skips_rows_held_elsewhere(
    db_pool: asyncpg.Pool,
) -> None:
    old = TokenVault(Keyring.parse(K1))
    for n in range(5):
        await old.store(db_pool, f"u{n}", pair(n))
    await TokenVault(Keyring.parse(Keyring.generate_item("k3"))).store(
        db_pool, "lost", pair(9)
    )  # key not configured
    await db_pool.execute("UPDATE whoop_tokens SET ciphertext = ciphertext || '\\x00' WHERE user_id = 'u4'")
    rotated = TokenVault(Keyring.parse(f"{K2},{K1}"))
    async with db_pool.acquire() as holder, holder.transaction():
        await holder.execute(
            "SELECT 1 FROM whoop_tokens WHERE user_id = 'u2' FOR UPDATE"
        )  # a refresh in flight
        report = await rotated.rewrap(db_pool, batch=2)
    assert report == RewrapReport(moved=3, current=0, unopenable=2, pending=1)
    assert not report.complete
    assert await rotated.rewrap(db_pool, batch=2) == RewrapReport(moved=1, current=3, unopenable=2, pending=0)
    keys = {
        row["user_id"]: row["key_id"]
        for row in await db_pool.fetch("SELECT user_id, key_id FROM whoop_tokens")
    }
    assert keys == {
        "u0": "k2",
        "u1": "k2",
        "u2": "k2",
        "u3": "k2",
        "u4": "k1",
        "lost": "k3",
    }  # left as they were


async def test_python_m_ingest_vault_rotate_moves_every_row_then_has_nothing_to_do(
    database_url: str, pg_schema: str, db_pool: asyncpg.Pool
) -> None:
    old = TokenVault(Keyring.parse(K1))
    for n in range(5):
        await old.store(db_pool, f"u{n}", pair(n))
    await TokenVault(Keyring.parse(K2)).store(db_pool, "already", pair(7))
    separator = "&" if "?" in database_url else "?"
    env = {name: value for name, value in os.environ.items() if name != "PIPELINE_ENV"}  # production
    env |= {
        "DATABASE_URL": f"{database_url}{separator}search_path={pg_schema}",
        "TOKEN_VAULT_KEYS": f"{K2},{K1}",
    }

    async def rotate() -> tuple[int | None, list[str]]:
        """Exit status and the summary lines (one per rewrappable store, ``whoop_tokens`` first)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ingest",
            "vault",
            "rotate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        text = out.decode() + err.decode()
        secrets = [K1.split(":")[1], K2.split(":")[1]]
        secrets += [
            token for n in (*range(5), 7) for token in (pair(n).access_token, pair(n).refresh_token) if token
        ]
        assert not [secret for secret in secrets if secret in text], "a token or key was printed"
        lines = out.decode().splitlines()
        assert all(line.startswith(f"{PROGRAM}: ") for line in lines), lines
        return process.returncode, lines[:1]

    assert await rotate() == (
        0,
        [f"{PROGRAM}: whoop_tokens: 5 moved to key 'k2', 1 already under it, 0 do not open"],
    )
    only_new = TokenVault(Keyring.parse(K2))
    assert [await only_new.load(db_pool, f"u{n}") for n in range(5)] == [pair(n) for n in range(5)]
    assert await only_new.load(db_pool, "already") == pair(7)
    assert await rotate() == (
        0,
        [f"{PROGRAM}: whoop_tokens: 0 moved to key 'k2', 6 already under it, 0 do not open"],
    )


async def test_refresh_is_single_flight_across_concurrent_callers(db_pool: asyncpg.Pool) -> None:
    vault = TokenVault(Keyring.parse(K1))
    store = PgStore(db_pool, vault)
    await vault.store(db_pool, "u", pair(1))
    calls = 0

    async def refresher(current: TokenPair) -> TokenPair:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # hold the row lock while the others queue on it
        return pair(2)

    results = await asyncio.gather(*(store.refresh_tokens("u", pair(1), refresher) for _ in range(5)))
    assert calls == 1, "a rotating refresh token may be used only once"
    assert set(results) == {pair(2)} and await vault.load(db_pool, "u") == pair(2)


async def test_api_tokens_are_hashed_revocable_and_scoped_to_their_user(db_pool: asyncpg.Pool) -> None:
    tokens = ApiTokens()
    a1 = await tokens.issue(db_pool, "user-a")
    a2 = await tokens.issue(db_pool, "user-a")
    b = await tokens.issue(db_pool, "user-b")
    assert a1.token not in repr(a1)
    stored = await db_pool.fetch("SELECT token_hash FROM api_tokens")
    assert {r["token_hash"] for r in stored} == {hash_token(t.token) for t in (a1, a2, b)}
    principal = await tokens.authenticate(db_pool, a1.token)
    assert principal is not None and principal.user_id == "user-a" and principal.scopes == ("user",)
    assert await tokens.authenticate(db_pool, a1.token + "x") is None
    assert await tokens.authenticate(db_pool, hash_token(a1.token)) is None  # the hash is not a token
    assert (
        await tokens.revoke(db_pool, a2.token_id) is True
        and await tokens.revoke(db_pool, a2.token_id) is False
    )
    assert await tokens.authenticate(db_pool, a2.token) is None
    assert await tokens.revoke_user(db_pool, "user-a") == 1
    assert await tokens.authenticate(db_pool, a1.token) is None
    assert await tokens.authenticate(db_pool, b.token) is not None


async def test_api_tokens_expire_and_a_device_holds_one_live_token(db_pool: asyncpg.Pool) -> None:
    tokens = ApiTokens()
    short = await tokens.issue(db_pool, "user-a", ttl=timedelta(hours=1))
    stored = await db_pool.fetchval(
        "SELECT expires_at - created_at FROM api_tokens WHERE token_id = $1", short.token_id
    )
    assert stored == timedelta(hours=1) and short.expires_at > datetime.now(UTC)
    expired = await tokens.issue(db_pool, "user-a", ttl=timedelta(seconds=-1))
    assert await tokens.authenticate(db_pool, expired.token) is None
    assert await tokens.authenticate(db_pool, short.token) is not None

    phone = await tokens.issue(db_pool, "user-a", device_id="phone")
    tablet = await tokens.issue(db_pool, "user-a", device_id="tablet")
    other = await tokens.issue(db_pool, "user-b", device_id="phone")
    phone_again = await tokens.issue(db_pool, "user-a", device_id="phone")
    assert await tokens.authenticate(db_pool, phone.token) is None
    for live in (short, tablet, other, phone_again):  # no device: not revoked by device issues
        assert await tokens.authenticate(db_pool, live.token) is not None
