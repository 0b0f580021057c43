"""``python -m projections rebuild``: build a new read-model version from the log, verify it, serve it.

The served version (``projections.versions``) keeps serving throughout: nothing the query API
answers changes before the switch, and a switch back (``python -m projections rollback``) is always
possible. In order:

1. without ``--yes``, refuse when stdin is not a terminal (exit 2);
2. take the rebuild lock (``versions.try_rebuild_lock``) on a connection held for the whole run:
   while another rebuild holds it, refuse (exit 2);
3. capture the log start and end offsets of the records topic: ``--records-topic`` (a generation of
   ``processors renormalize``), by default the served version's topic; an unknown topic is refused;
4. resume the version in state ``building`` of that topic ("resuming version N"), or create one
   (``--bulk``: its tables without keys and indexes);
5. **load**: :class:`~projections.runner.ProjectionWorker` writing that version (``version=N``) runs
   in-process with a Kafka consumer of its own (group ``<PROJECTIONS_GROUP_ID>-rebuild``, dynamic
   membership; the offsets live in PostgreSQL under the version's ``offsets_group``) until its stored
   offsets reach the captured ends, with a progress bar on stderr. A bulk version is loaded through
   ``projections.bulk.BulkStore``, then finished (tables, keys, indexes, ANALYZE) in one transaction;
6. **verify** (``projections.verification``): checksums, accounting, comparison with the served
   version; recorded with ``versions.mark_verified``. A version whose accounting does not balance
   stays ``building`` and is not served without ``--force`` (exit 2);
7. **switch** (``projections.switching``): the worker goes on writing live records into the version;
   without ``--yes`` the command asks on the terminal; the switch waits until the version holds every
   record the served one holds (at most ``--catch-up-s``), in one transaction that advances the epoch;
8. stop the worker and print a summary line.

The steps are in ``projections.rebuild_steps``; the lines printed, the question and the signals in
``projections.rebuild_console``.

Exit codes: 0 switched, 1 failed (Kafka or PostgreSQL unreachable: one line naming where), 2 refused
(bad input, a rebuild already running, not confirmed, not verified without ``--force``), 130
interrupted. Interrupted (SIGINT, SIGTERM) or killed (SIGKILL), the version stays ``building`` with
the offsets its committed batches stored (exactly once per batch): the same command resumes it.

``--with-sync-activity`` also rebuilds ``rm_sync_activity``, which is not versioned (its sources
keep 30 days, or are compacted): refused while its consumer group has members (a ``python -m
projections`` runs), its table and offsets are reset in one transaction and projected again, in
place, up to the captured ends. Ingest's and the fetcher's tables are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from rich.console import Console

from infra.appender import DurableAppender
from infra.db import create_pool
from infra.dead_letters import DeadLetters
from infra.member_keys import MemberKeys

from . import rebuild_steps as steps
from . import versions
from .commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    STDERR,
    Ask,
    Failed,
    Interrupted,
    Refused,
    configure_logging,
    kafka_errors,
    postgres_errors,
    refuse_off_terminal,
    say,
    where,
)
from .read_model_ddl import VERSIONED_TABLES
from .rebuild_console import ended_early, run_command, stop_on_signals, summary_line
from .rebuild_steps import ACTIVITY_READ_MODELS
from .replay_offsets import total
from .settings import Settings
from .verification import verify

__all__ = [
    "ACTIVITY_READ_MODELS",
    "CATCH_UP_S",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "RECORD_READ_MODELS",
    "RebuildSummary",
    "command",
    "configure_logging",
    "rebuild",
]

RECORD_READ_MODELS = VERSIONED_TABLES
"""The tables of a read-model version (``read_model_ddl``): a function of the records topic alone."""
CATCH_UP_S = 120.0
"""How long the switch waits, by default, for the new version to catch up with the served one."""


logger = logging.getLogger(__name__)

_Switched = tuple[int, int, int]
"""The version served before, the version served now, the records dead-lettered."""


# --- what one run did -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RebuildSummary:
    """What a rebuild that switched did: the numbers of its summary line (for ``wear rebuild --json``)."""

    records: int
    seconds: float
    dead_lettered: int
    erased: int
    switched_from: int
    switched_to: int
    activity: int | None = None


# --- the run ----------------------------------------------------------------------------------------


async def rebuild(
    settings: Settings,
    *,
    yes: bool = False,
    bulk: bool = False,
    force: bool = False,
    records_topic: str | None = None,
    sync_activity: bool = False,
    catch_up_s: float = CATCH_UP_S,
    stop: asyncio.Event | None = None,
    ask: Ask | None = None,
    console: Console | None = None,
    handle_signals: bool = False,
    on_summary: Callable[[RebuildSummary], None] | None = None,
) -> int:
    """Build, verify and serve a new read-model version; the exit code (see the module docstring).

    ``yes`` skips the question before the switch; otherwise ``ask`` (default: on the terminal, when
    stdin is one) must say yes. Setting ``stop`` interrupts; with ``handle_signals``, SIGINT and
    SIGTERM set it. ``on_summary`` receives what a run that switched did, after its summary line.
    """
    console = console or STDERR
    stop = stop or asyncio.Event()
    options = steps.Options(yes, bulk, force, records_topic, sync_activity, catch_up_s)
    run = steps.Run(started=time.monotonic())
    try:
        with stop_on_signals(stop, handle_signals):
            switched = await _rebuild(
                settings, options, ask, lambda pool: _locked(settings, pool, options, run, stop, ask, console)
            )
    except (Refused, Failed, Interrupted) as exc:
        code, line = ended_early(exc, run.done, total(run.spans), run.number, run.verified)
        say(console, line)
        return code
    seconds = time.monotonic() - run.started
    counts = run.counts
    say(
        console, summary_line(counts.seen, seconds, switched[2], counts.erased, switched[:2], counts.activity)
    )
    if on_summary is not None:
        on_summary(
            RebuildSummary(counts.seen, seconds, switched[2], counts.erased, *switched[:2], counts.activity)
        )
    return EXIT_OK


async def _rebuild(
    settings: Settings,
    options: steps.Options,
    ask: Ask | None,
    locked: Callable[[asyncpg.Pool], Awaitable[_Switched]],
) -> _Switched:
    """The checks, then ``locked`` on a pool while this run holds the rebuild lock; (the version served
    before, the version served now, records dead-lettered)."""
    own = settings.projections
    refuse_off_terminal(options.yes, ask)
    if options.sync_activity and not own.activity_topics:
        raise Refused("PROJECTIONS_ACTIVITY_TOPICS is empty: there is no sync-activity projection to rebuild")
    with postgres_errors(settings):
        pool = await create_pool(settings.postgres, migrate=True, max_size=own.db_pool_size)
    try:
        with postgres_errors(settings), kafka_errors(settings):
            async with pool.acquire() as lock:  # held for the whole run, and the lock with it
                if not await versions.try_rebuild_lock(lock):
                    raise Refused(
                        "a rebuild is already running (it holds the rebuild lock of "
                        f"{where(settings.postgres.database_url)}): let it end, or stop it and run this "
                        "again to resume its version"
                    )
                try:
                    return await locked(pool)
                finally:
                    with contextlib.suppress(Exception):  # a broken connection released it already
                        await lock.execute("SELECT pg_advisory_unlock_all()")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 10)


async def _locked(
    settings: Settings,
    pool: asyncpg.Pool,
    options: steps.Options,
    run: steps.Run,
    stop: asyncio.Event,
    ask: Ask | None,
    console: Console,
) -> _Switched:
    """Capture the offsets, build (or resume) the version, verify it and switch to it."""
    own = settings.projections
    async with pool.acquire() as connection:
        served = await versions.serving(connection)
    topic = options.records_topic or served.topic(own.records_topic)
    spans, activity_spans = await steps.capture(settings, topic, options.sync_activity)
    if stop.is_set():
        raise Interrupted
    version, loader, applied_before = await steps.begin(
        settings, pool, topic, spans, activity_spans, options, run, console
    )
    keys = MemberKeys(settings.vault.keyring())
    appender = await DurableAppender.start(settings.kafka, "projections-rebuild-dlq")
    try:
        letters = DeadLetters(appender, "projections")
        await steps.load(settings, pool, version, letters, keys, loader, run, stop, console)
        if loader is not None:
            await steps.finish_bulk(pool, version, loader, console)
        outcome = await verify(
            pool,
            version,
            configured_topic=own.records_topic,
            configured_group=own.group_id,
            seen=run.counts.seen,
            applied_before=applied_before,
            dead_lettered=letters.sent + run.counts.dead_lettered,
            erased=run.counts.erased,
        )
        for line in outcome.lines():
            say(console, line)
        run.verified = outcome.verified
        if not outcome.verified and not options.force:
            raise Refused(
                f"version {version.number} did not verify (its accounting is off) and stays building: "
                "run the same command again to resume it, or pass --force to serve it anyway"
            )
        rows = sum(s.rows for s in outcome.sums.values())
        old, new = await steps.switch(
            settings, pool, version, topic, rows, letters, keys, run, options, stop, ask
        )
        return old, new, letters.sent + run.counts.dead_lettered
    finally:
        await appender.stop()


def command(
    settings: Settings,
    *,
    yes: bool,
    bulk: bool,
    force: bool,
    records_topic: str | None,
    sync_activity: bool,
    catch_up_s: float = CATCH_UP_S,
) -> int:
    """``python -m projections rebuild``: run :func:`rebuild`, interrupted cleanly by SIGINT or SIGTERM."""
    return run_command(
        lambda: rebuild(
            settings,
            yes=yes,
            bulk=bulk,
            force=force,
            records_topic=records_topic,
            sync_activity=sync_activity,
            catch_up_s=catch_up_s,
            handle_signals=True,
        )
    )
