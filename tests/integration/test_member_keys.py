"""Data keys on real PostgreSQL: a member erased, connected again, read by a process holding the old key."""

from __future__ import annotations

import asyncpg

from infra.member_keys import ERASED, MemberKeys, open_with
from infra.sealing import seal_value
from infra.vault import VaultSettings

KEYRING = VaultSettings().keyring()
VALUE = b'{"event_type":"SleepRecorded"}'


async def test_a_reader_that_remembers_a_destroyed_key_reads_the_members_new_values(
    db_pool: asyncpg.Pool,
) -> None:
    reader, edge = MemberKeys(KEYRING), MemberKeys(KEYRING)  # two processes
    first = await edge.ensure(db_pool, "member")
    assert (await reader.fetch(db_pool, ["member"]))["member"] == first  # remembered for 30 s
    assert await edge.destroy(db_pool, "member")  # erased...
    second = await edge.ensure(db_pool, "member")  # ...and connected again: a new key
    assert second != first
    old, new = seal_value(first, "member", VALUE), seal_value(second, "member", VALUE)

    keys = await reader.fetch(db_pool, ["member"])
    assert keys["member"] == first  # stale: without the refresh the new value would read as erased
    assert open_with(keys, "member", new) is ERASED
    await reader.refresh_stale(db_pool, keys, [("member", new), ("member", old)])
    assert keys["member"] == second
    assert open_with(keys, "member", new) == VALUE
    assert open_with(keys, "member", old) is ERASED  # sealed before the erasure: gone for good


async def test_ensure_never_hands_out_a_destroyed_key(db_pool: asyncpg.Pool) -> None:
    fetcher, eraser = MemberKeys(KEYRING), MemberKeys(KEYRING)
    first = await fetcher.ensure(db_pool, "member")
    await eraser.destroy(db_pool, "member")
    assert await fetcher.ensure(db_pool, "member") != first
