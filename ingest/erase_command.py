"""``python -m ingest erase USER [--yes]``: erase a member now, from a terminal or a script.

``USER`` is our user id (a uuid) or the member's WHOOP id (digits). The command records the erasure
job (or takes the member's pending one), runs its steps (``ingest.erasure``) with a line per step,
and ends with a summary line of counts (never a token, never health data). When another process
holds the job's lease (the edge is running it), the command follows it to the end instead.

Exit status: 0 erased; 1 Kafka, PostgreSQL or the settings' services failed (one line; run it again:
every step is safe to repeat); 2 refused before anything changed (bad usage, a user that is not an id,
no ``--yes`` off a terminal, a "no" at the question, a public development secret outside dev);
130 interrupted (run it again to finish).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import TextIO

import asyncpg
from pydantic import ValidationError

from infra.db import create_pool
from infra.member_keys import MemberKeys
from infra.pipeline_env import EXIT_REFUSED, PipelineEnvSettings, dev_secret_problems, refusal_line
from infra.vault import TokenVault
from ingest.erasure import Eraser
from ingest.erasure_jobs import ErasureJobs
from ingest.errors import AppendUnavailable
from ingest.publisher import KafkaPublisher
from ingest.services import Services
from ingest.settings import Settings
from ingest.store import PgStore
from ingest.whoop_oauth import HttpWhoopOAuth
from schemas.identity import user_id_for_whoop_member

__all__ = ["PROGRAM", "USAGE", "command", "parse_user"]

PROGRAM = "python -m ingest erase"
USAGE = (
    "usage: python -m ingest erase USER [--yes]\n"
    "  USER   our user id (uuid) or the member's WHOOP id (digits)\n"
    "  --yes  do not ask (required when stdin is not a terminal)\n"
    "example: python -m ingest erase 10129 --yes\n"
)
_CONNECT_TIMEOUT_S = 30.0
_FOLLOW_S = 0.5


def parse_user(text: str) -> str:
    """Our user id for ``text`` (a uuid, or a WHOOP member id); ValueError otherwise."""
    if text.isascii() and text.isdigit() and len(text) <= 19:
        return user_id_for_whoop_member(int(text))
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(f"{text[:64]!r} is neither a user id (uuid) nor a WHOOP member id") from None


def _confirmed(user_id: str, yes: bool, out: TextIO, err: TextIO) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        err.write(f"{PROGRAM}: refusing without --yes when stdin is not a terminal; nothing erased\n")
        return False
    out.write(
        f"Erase user {user_id}: every row, and every value of theirs on Kafka? This cannot be undone [y/N] "
    )
    out.flush()
    if sys.stdin.readline().strip().lower() not in {"y", "yes"}:
        err.write(f"{PROGRAM}: not confirmed; nothing erased\n")
        return False
    return True


def command(args: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Parse, confirm, erase; the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    yes = "--yes" in args
    rest = [a for a in args if a != "--yes"]
    if len(rest) != 1 or rest[0].startswith("-"):
        err.write(USAGE)
        return EXIT_REFUSED
    try:
        user_id = parse_user(rest[0])
        settings = Settings.from_env()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        err.write(f"{PROGRAM}: {_one_line(exc)}\n")
        return EXIT_REFUSED
    problems = dev_secret_problems(
        PipelineEnvSettings(),
        token_vault_keys=settings.vault.token_vault_keys,
        whoop_client_secret=settings.whoop.whoop_client_secret,
    )
    if problems:
        err.write(refusal_line(PROGRAM, problems))
        return EXIT_REFUSED
    if not _confirmed(user_id, yes, out, err):
        return EXIT_REFUSED
    started = time.monotonic()
    try:
        progress = asyncio.run(_erase(settings, user_id, out))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        err.write(
            f"{PROGRAM}: PostgreSQL (DATABASE_URL) unreachable or failing ({type(exc).__name__}); "
            "run it again\n"
        )
        return 1
    except AppendUnavailable as exc:
        err.write(f"{PROGRAM}: Kafka unavailable ({exc.code}); run it again: every step is safe to repeat\n")
        return 1
    except KeyboardInterrupt:
        err.write(f"{PROGRAM}: interrupted; run it again to finish the erasure\n")
        return 130
    out.write(f"{PROGRAM}: {summary_line(user_id, progress, time.monotonic() - started)}\n")
    return 0


def _one_line(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "bad setting: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def summary_line(user_id: str, progress: dict[str, object], seconds: float) -> str:
    """The closing line: counts only."""
    rows = progress.get("rows_deleted")
    deleted = sum(rows.values()) if isinstance(rows, dict) else 0
    tables = len(rows) if isinstance(rows, dict) else 0
    tokens, tombstones = progress.get("api_tokens_revoked", 0), progress.get("tombstones", 0)
    return (
        f"erased user {user_id} in {seconds:.1f} s: {tokens} API tokens revoked, "
        f"WHOOP access {progress.get('whoop_access', 'unknown')}, {tombstones} tombstones, "
        f"{deleted} rows deleted from {tables} tables, data key destroyed"
    )


async def _erase(settings: Settings, user_id: str, out: TextIO) -> dict[str, object]:
    pool = await asyncio.wait_for(
        create_pool(settings.postgres, migrate=True, max_size=4), _CONNECT_TIMEOUT_S
    )
    try:
        publisher = await asyncio.wait_for(
            KafkaPublisher.start(settings.kafka, timeout_s=10.0, linger_ms=5), _CONNECT_TIMEOUT_S
        )
        try:
            whoop = HttpWhoopOAuth.create(settings.whoop, settings.ingest.whoop_timeout_s)
            try:
                store = PgStore(pool, TokenVault(settings.vault.keyring()))
                services = Services.of(settings, publisher, store, whoop)
                return await _run(services, ErasureJobs(pool), user_id, out)
            finally:
                await whoop.aclose()
        finally:
            await publisher.stop()
    finally:
        await pool.close()


async def _run(services: Services, jobs: ErasureJobs, user_id: str, out: TextIO) -> dict[str, object]:
    job = await jobs.request(user_id, "admin")
    out.write(f"{PROGRAM}: erasure job {job.job_id}\n")

    async def report(step: str, progress: dict[str, object]) -> None:
        out.write(f"  {step}\n")
        out.flush()

    eraser = Eraser(services, jobs, MemberKeys(services.settings.vault.keyring()))
    following = False
    while True:  # run it, or follow the process that holds its lease (and take over if that one dies)
        claimed = await jobs.claim(services.settings.ingest.erasure_lease_s, job.job_id)
        if claimed is not None:
            return await eraser.run(claimed, report)
        current = await jobs.job(job.job_id)
        if current is None or current.status == "done":
            return (current or job).progress
        if not following:
            out.write(f"{PROGRAM}: another process is running it; following it to the end\n")
            following = True
        await asyncio.sleep(_FOLLOW_S)
