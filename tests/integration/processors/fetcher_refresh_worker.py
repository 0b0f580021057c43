"""A real fetcher process for the refresh race: N of these refresh one member's token at the same instant.

Each process builds the fetcher's own parts (``TokenManager`` on the vault's row lock, ``WhoopClient``
against the simulator on a socket, the shared quota) on the test's schema, loads the member's pair,
prints ``ready``, waits for ``go`` on stdin, then does what a fetcher does after WHOOP refused the
access token (401): ``after_unauthorized`` (mode ``locked``), or, as the control, refreshes with
the token it holds without the lock (mode ``naive``). Then it reads one page with the token it got
and prints one JSON line: whether that worked, how many refreshes it made, a hash of the token
(never the token). Run:
python -m tests.integration.processors.fetcher_refresh_worker DATABASE_URL SCHEMA BASE_URL WHOOP_USER_ID MODE
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Sequence

from infra.db import create_pool
from infra.settings import PostgresSettings, WhoopAppSettings
from infra.vault import TokenVault, VaultSettings
from processors.clock import SystemClock
from processors.errors import FetchError
from processors.quota import PgQuota, Priority, QuotaPolicy
from processors.resources import Member
from processors.settings import FetcherSettings
from processors.tokens import TokenManager
from processors.whoop_client import WhoopClient
from schemas.identity import user_id_for_whoop_member


class _Appender:
    """ConnectionRevoked goes nowhere here; the test reads the connection's status instead."""

    async def append(
        self, topic: str, records: Sequence[tuple[bytes, bytes]], headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        return None


async def main(database_url: str, schema: str, base_url: str, whoop_user_id: int, mode: str) -> None:
    clock = SystemClock()
    pool = await create_pool(PostgresSettings(database_url=database_url), schema=schema, migrate=False)
    settings = FetcherSettings(retries=0)
    quota = PgQuota(pool, QuotaPolicy(per_minute=100, per_day=10_000), clock)
    client = WhoopClient.create(WhoopAppSettings(whoop_api_base_url=base_url), settings, quota, clock)
    vault = TokenVault(VaultSettings().keyring())
    tokens = TokenManager(pool, vault, client, _Appender(), "unused", clock, settings.refresh_margin_s)
    member = Member(user_id_for_whoop_member(whoop_user_id), whoop_user_id)
    result: dict[str, object] = {}
    try:
        stale = await vault.load(pool, member.user_id)
        assert stale is not None and stale.refresh_token is not None
        print("ready", flush=True)  # noqa: T201 - the test reads this line
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        try:
            if mode == "locked":
                token = await tokens.after_unauthorized(member, stale.access_token)
            else:
                token = (await client.refresh(stale.refresh_token)).access_token
            await client.get("/cycle", access_token=token, priority=Priority.LIVE, params={"limit": 1})
            result = {"ok": True, "token": hashlib.sha256(token.encode()).hexdigest()[:16]}
        except FetchError as exc:
            result = {"ok": False, "error": type(exc).__name__, "reason": getattr(exc, "reason", None)}
        result["refreshes"] = tokens.refreshes
    finally:
        await client.aclose()
        await pool.close()
    print(json.dumps(result), flush=True)  # noqa: T201 - the test reads this line


if __name__ == "__main__":
    url, schema, base, member_id, mode_name = sys.argv[1:6]
    asyncio.run(main(url, schema, base, int(member_id), mode_name))
