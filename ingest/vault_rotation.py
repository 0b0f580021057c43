"""``python -m ingest vault rotate``: move every row sealed under an older vault key to the first key.

A rotation: put the new key first in ``TOKEN_VAULT_KEYS`` (the old ones after it), restart every
process that reads the vault (so none seals under an old key any more), run this command, then drop
the old keys once it exits 0. It re-seals the rows of each store of :func:`rewrappable_stores` in
batches of their own transaction, skipping rows another process holds (``infra.rewrap``), and prints
one line of counts per store, never a token. Interrupted, it keeps what it moved; run again, it moves
the rest.

Exit status: 0 every row is under the first key; 1 some are not (they do not open, or were pending:
run again) or PostgreSQL is unreachable (one line, no traceback, the URL never shown); 2 refused
before doing anything: bad usage, a bad setting, or the public development key as the sealing key
while ``PIPELINE_ENV`` is not ``dev`` (as an *older* key it is accepted: rotating is how one leaves it).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

import asyncpg
from pydantic import ValidationError

from infra.db import create_pool
from infra.member_keys import MemberKeys
from infra.pipeline_env import EXIT_REFUSED, PipelineEnvSettings, dev_secret_problems, refusal_line
from infra.rewrap import Rewrappable, RewrapReport, summary_line
from infra.settings import PostgresSettings
from infra.vault import Keyring, TokenVault, VaultSettings

__all__ = ["PROGRAM", "USAGE", "command", "rewrappable_stores", "rotate"]

PROGRAM = "python -m ingest vault rotate"
USAGE = "usage: python -m ingest vault rotate\n"
_CONNECT_TIMEOUT_S = 30.0


def rewrappable_stores(keyring: Keyring) -> tuple[Rewrappable, ...]:
    """Every store sealed under the vault's keyring, in rotation order.

    The WHOOP token pairs (``whoop_tokens``) and the members' data keys (``member_data_keys``, ADR 0004).
    """
    return (TokenVault(keyring), MemberKeys(keyring))


async def rotate(pool: asyncpg.Pool, stores: tuple[Rewrappable, ...]) -> list[tuple[str, RewrapReport]]:
    """Rewrap each store in turn; ``(table, report)`` per store."""
    return [(store.table, await store.rewrap(pool)) for store in stores]


async def _run(postgres: PostgresSettings, keyring: Keyring) -> list[tuple[str, RewrapReport]]:
    pool = await asyncio.wait_for(create_pool(postgres, migrate=True, max_size=2), _CONNECT_TIMEOUT_S)
    try:
        return await rotate(pool, rewrappable_stores(keyring))
    finally:
        await pool.close()


def command(out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Read the settings, refuse or rotate, print the summary (stdout; errors on stderr); the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        pipeline, postgres, vault = PipelineEnvSettings(), PostgresSettings(), VaultSettings()
    except ValidationError as exc:
        named = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        err.write(f"{PROGRAM}: bad setting: {named}\n")
        return EXIT_REFUSED
    problems = dev_secret_problems(pipeline, token_vault_keys=vault.token_vault_keys, sealing_key_only=True)
    if problems:
        err.write(refusal_line(PROGRAM, problems))
        return EXIT_REFUSED
    keyring = vault.keyring()
    try:
        reports = asyncio.run(_run(postgres, keyring))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        err.write(f"{PROGRAM}: PostgreSQL (DATABASE_URL) unreachable or failing: {type(exc).__name__}\n")
        return 1
    except KeyboardInterrupt:
        err.write(f"{PROGRAM}: interrupted; the rows moved so far stay moved, run it again for the rest\n")
        return 130
    for table, report in reports:
        out.write(f"{PROGRAM}: {summary_line(table, keyring.active, report)}\n")
    return 0 if all(report.complete for _, report in reports) else 1
