"""A second process loading a bulk read-model version beside the rebuild: the load is CPU-bound.

The bulk load of ``python -m projections rebuild --bulk`` is bound by one Python process (reading,
opening, decoding and folding every record: ``BENCHMARKS.md``, Rebuild). :func:`helping` starts this
module as a child process (``python -m projections.load_helper``) that runs one more
:class:`~projections.runner.ProjectionWorker` with a :class:`~projections.bulk.BulkStore` into the
same version, in the same Kafka consumer group: the group shares the records topic's partitions
between the two processes, and each batch stores its offsets in its own transaction (exactly once
per batch, whichever process applied it), so the rebuild's progress and end are read from PostgreSQL
as before.

The parent sends the run's settings and the version number on the child's stdin (pickled: a pipe
between two processes of this program) and keeps stdin open; closing it (the rebuild caught up,
was interrupted, or died: SIGKILL closes it too) stops the child after its batch in flight. The
child then prints what it read on its last stdout line (``{"seen": ..., "erased": ...,
"dead_lettered": ...}``) for the rebuild's accounting, and exits 0; 1 when its worker failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvloop

from infra.appender import DurableAppender
from infra.db import create_pool
from infra.dead_letters import DeadLetters
from infra.member_keys import MemberKeys

from . import versions
from .bulk import BulkStore
from .commands import configure_logging
from .replay_workers import Counts, projecting
from .settings import Settings

__all__ = ["Helper", "helping", "main"]

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_STOP_WAIT_S = 90.0  # the child stops after its batch in flight (the worker's own wait is 60 s)


@dataclass
class Helper:
    """What the child process read, once it ended (``failed``: it did not end cleanly)."""

    counts: Counts
    failed: str = ""


@contextlib.asynccontextmanager
async def helping(settings: Settings, version: versions.Version) -> AsyncIterator[Helper]:
    """A child process loading ``version`` while the block runs; stopped, and its counts read, on exit."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "projections.load_helper",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None  # noqa: S101 - both are pipes
    payload = pickle.dumps((settings, version.number))
    child.stdin.write(_LENGTH.pack(len(payload)) + payload)
    helper = Helper(Counts(activity=None))
    try:
        yield helper
    finally:
        child.stdin.close()
        try:
            out = await asyncio.wait_for(child.stdout.read(), _STOP_WAIT_S)
            await asyncio.wait_for(child.wait(), _STOP_WAIT_S)
        except TimeoutError:
            child.kill()
            await child.wait()
            out = b""
        _read_counts(helper, out, child.returncode)


def _read_counts(helper: Helper, out: bytes, code: int | None) -> None:
    lines = out.decode("utf-8", "replace").strip().splitlines()
    try:
        read = json.loads(lines[-1]) if lines else {}
        helper.counts.seen = int(read["seen"])
        helper.counts.erased = int(read["erased"])
        helper.counts.dead_lettered = int(read["dead_lettered"])
    except (ValueError, KeyError, TypeError):
        helper.failed = f"the second load process ended without its counts (exit code {code})"
        return
    if code != 0:
        helper.failed = f"the second load process failed (exit code {code})"


async def _load(settings: Settings, number: int, stdin_closed: asyncio.Future[bytes], counts: Counts) -> None:
    """Load version ``number`` until ``stdin_closed`` is done (or the worker ends); adds to ``counts``."""
    pool = await create_pool(settings.postgres, migrate=False, max_size=settings.projections.db_pool_size)
    appender = await DurableAppender.start(settings.kafka, "projections-rebuild-dlq")
    try:
        async with pool.acquire() as connection:
            version = await versions.get(connection, number)
        letters = DeadLetters(appender, "projections")
        keys = MemberKeys(settings.vault.keyring())
        try:
            async with projecting(settings, pool, version, letters, keys, BulkStore(), counts) as task:
                either: list[asyncio.Future[Any]] = [task, stdin_closed]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            counts.dead_lettered += letters.sent
    finally:
        await appender.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 10)


async def _main() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    size = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))[0]
    # our own parent's settings, over a pipe between two processes of this program
    settings, number = pickle.loads(await reader.readexactly(size))  # noqa: S301
    stdin_closed = asyncio.ensure_future(reader.read())
    counts = Counts(activity=None)
    code = 0
    try:
        await _load(settings, number, stdin_closed, counts)
    except Exception as exc:  # noqa: BLE001 - said in one line; the exit code tells the parent
        logger.error("the second load process failed: %s", type(exc).__name__)  # noqa: TRY400 - no traceback: one line
        code = 1
    finally:
        stdin_closed.cancel()
    read = {"seen": counts.seen, "erased": counts.erased, "dead_lettered": counts.dead_lettered}
    sys.stdout.write(json.dumps(read) + "\n")
    sys.stdout.flush()
    return code


def main() -> int:
    """The child process's entry point."""
    configure_logging()
    return uvloop.run(_main())


if __name__ == "__main__":
    sys.exit(main())
