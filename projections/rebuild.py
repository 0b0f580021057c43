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
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import asyncpg
import uvloop
from rich.console import Console

from infra.db import create_pool
from infra.kafka import make_producer
from infra.member_keys import MemberKeys

from . import versions
from .bulk import BulkStore
from .commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    LOCK_TIMEOUT,
    STDERR,
    Ask,
    Failed,
    Interrupted,
    Refused,
    ask_on_terminal,
    configure_logging,
    confirm,
    kafka_errors,
    postgres_errors,
    refuse_off_terminal,
    say,
    where,
)
from .read_model_ddl import VERSIONED_TABLES
from .replay_offsets import Span, applied, caught_up, total
from .replay_workers import Counts, follow, projecting, projecting_activity, raise_failure, read_stored
from .runner import DeadLetters
from .settings import Settings
from .switching import switch_when_caught_up
from .topic_offsets import active_members, admin_client, capture_spans
from .verification import records_applied, verify
from .versions import Version

__all__ = [
    "ACTIVITY_READ_MODELS",
    "CATCH_UP_S",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "RECORD_READ_MODELS",
    "Failed",
    "RebuildSummary",
    "Refused",
    "Span",
    "aftermath",
    "applied",
    "caught_up",
    "command",
    "configure_logging",
    "interrupted_message",
    "rebuild",
    "summary_line",
    "total",
    "where",
]

RECORD_READ_MODELS = VERSIONED_TABLES
"""The tables of a read-model version (``read_model_ddl``): a function of the records topic alone."""
ACTIVITY_READ_MODELS = ("rm_sync_activity",)
"""The table of the sync-activity projection: only what the webhook and document topics still retain."""
CATCH_UP_S = 120.0
"""How long the switch waits, by default, for the new version to catch up with the served one."""


logger = logging.getLogger(__name__)


# --- the lines it prints (pure) ---------------------------------------------------------------------


def summary_line(
    records: int,
    seconds: float,
    dead_lettered: int,
    erased: int,
    switched: tuple[int, int],
    activity: int | None = None,
) -> str:
    """The line printed when the rebuild ends: what this run read, and the switch."""
    rate = records / seconds if seconds > 0 else 0.0
    line = (
        f"rebuilt: {records:,} records in {seconds:,.1f} s ({rate:,.0f} records/s), "
        f"{dead_lettered:,} dead-lettered, {erased:,} skipped (member erased); "
        f"switched from version {switched[0]} to version {switched[1]}"
    )
    if activity is not None:
        line += f"; rm_sync_activity from {activity:,} webhooks and documents"
    return line


def aftermath(number: int | None, verified: bool) -> str:
    """What a run that ends early leaves behind, and the way on."""
    if number is None:
        return "nothing changed"
    if verified:
        return (
            f"version {number} is verified and not served: `python -m projections switch {number}` serves it"
        )
    return f"version {number} keeps what it applied; run the same command again to resume"


def interrupted_message(done: int, of: int, number: int | None, verified: bool = False) -> str:
    """The line printed on SIGINT or SIGTERM."""
    if number is None or verified:
        return f"interrupted: {aftermath(number, verified)}"
    return f"interrupted after {done:,} of {of:,} offsets: {aftermath(number, verified)}"


def _question(version: Version, topic: str, served: Version, rows: int) -> str:
    return (
        f"Version {version.number} ({version.schema}, from {topic}) is verified: {rows:,} rows. "
        f"Serve it instead of version {served.number}? The query API switches at once, once the version "
        "caught up with the live records; `python -m projections rollback` switches back."
    )


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


@dataclass
class _Run:
    """What this run did so far: the lines it prints come from here, however it ends."""

    started: float
    version: Version | None = None
    verified: bool = False
    spans: Sequence[Span] = ()
    done: int = 0
    counts: Counts = field(default_factory=Counts)

    @property
    def number(self) -> int | None:
        return None if self.version is None else self.version.number


@dataclass(frozen=True)
class _Options:
    yes: bool
    bulk: bool
    force: bool
    records_topic: str | None
    sync_activity: bool
    catch_up_s: float


# --- PostgreSQL -------------------------------------------------------------------------------------


async def _resume_or_create(
    pool: asyncpg.Pool, topic: str, configured_topic: str, bulk: bool
) -> tuple[Version, bool]:
    """The newest version in state ``building`` of ``topic`` (True), or a new one (False)."""
    async with pool.acquire() as connection, connection.transaction():
        building = [
            v
            for v in await versions.all_versions(connection)
            if v.state == "building" and v.topic(configured_topic) == topic
        ]
        if building:
            return building[-1], True
        # the configured topic is stored as NULL, as version 1's: "the configured records topic"
        stored_topic = None if topic == configured_topic else topic
        return await versions.create(connection, records_topic=stored_topic, bulk=bulk), False


_KEYS_BUILT = """
SELECT count(*) FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'p' AND n.nspname = $1 AND t.relname = ANY($2::text[])
"""


async def _bulk_pending(pool: asyncpg.Pool, version: Version) -> bool:
    """True for a bulk version not finished yet: its tables still lack their primary keys."""
    if not version.bulk:
        return False
    built = await pool.fetchval(_KEYS_BUILT, version.schema, list(VERSIONED_TABLES))
    return int(built) < len(VERSIONED_TABLES)


async def _reset_activity(pool: asyncpg.Pool, group: str) -> None:
    """Empty ``rm_sync_activity`` and delete its group's stored offsets, in one transaction."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await connection.execute(f"TRUNCATE {', '.join(ACTIVITY_READ_MODELS)}")
        await connection.execute("DELETE FROM consumer_offsets WHERE consumer_group = $1", group)


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
    options = _Options(yes, bulk, force, records_topic, sync_activity, catch_up_s)
    run = _Run(started=time.monotonic())
    try:
        with _signals(stop, handle_signals):
            switched = await _rebuild(settings, options, run, stop, ask, console)
    except Refused as exc:
        say(console, f"rebuild refused: {exc}")
        return EXIT_REFUSED
    except Failed as exc:
        say(console, f"rebuild failed: {exc}; {aftermath(run.number, run.verified)}")
        return EXIT_FAILED
    except Interrupted:
        say(console, interrupted_message(run.done, total(run.spans), run.number, run.verified))
        return EXIT_INTERRUPTED
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
    settings: Settings, options: _Options, run: _Run, stop: asyncio.Event, ask: Ask | None, console: Console
) -> tuple[int, int, int]:
    """The run; (the version served before, the version served now, records dead-lettered)."""
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
                    return await _locked(settings, pool, options, run, stop, ask, console)
                finally:
                    with contextlib.suppress(Exception):  # a broken connection released it already
                        await lock.execute("SELECT pg_advisory_unlock_all()")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 10)


async def _locked(
    settings: Settings,
    pool: asyncpg.Pool,
    options: _Options,
    run: _Run,
    stop: asyncio.Event,
    ask: Ask | None,
    console: Console,
) -> tuple[int, int, int]:
    own = settings.projections
    async with pool.acquire() as connection:
        served = await versions.serving(connection)
    topic = options.records_topic or served.topic(own.records_topic)
    # Kafka first: unreachable, or an unknown topic, and nothing changed
    spans = await capture_spans(settings, {"": [topic]})
    activity_spans: list[Span] = []
    if options.sync_activity:
        async with admin_client(settings) as admin:
            members = (await active_members(admin, [own.activity_group_id]))[own.activity_group_id]
        if members:
            raise Refused(
                f"the sync-activity projection runs ({members} member(s) in {own.activity_group_id}): "
                "stop every `python -m projections` to rebuild rm_sync_activity, or leave out "
                "--with-sync-activity"
            )
        activity_spans = await capture_spans(settings, {own.activity_group_id: list(own.activity_topics)})
    if stop.is_set():
        raise Interrupted
    version, resumed = await _resume_or_create(pool, topic, own.records_topic, options.bulk)
    run.version = version
    spans = [replace(span, group=version.group(own.group_id)) for span in spans]
    run.spans = [*spans, *activity_spans]
    pending = await _bulk_pending(pool, version)
    stored_before = await read_stored(pool, spans)
    run.done = applied(spans, stored_before)
    how = "bulk " if pending else ""
    if resumed:
        say(console, f"resuming version {version.number} ({how}{version.schema}) from {topic}")
    else:
        say(console, f"building version {version.number} ({how}{version.schema}) from {topic}")
    loader = BulkStore() if pending else None
    # the growth of records_applied is what this run applied; not measurable for a bulk load resumed
    applied_before = None
    if not (pending and stored_before):
        async with pool.acquire() as connection:
            applied_before = await records_applied(connection, version)
    if options.sync_activity:
        await _reset_activity(pool, own.activity_group_id)
    keys = MemberKeys(settings.vault.keyring())
    producer = make_producer(settings.kafka, "projections-rebuild-dlq")
    await producer.start()
    try:
        letters = DeadLetters(producer)
        await _load(settings, pool, version, letters, keys, loader, run, stop, console)
        if loader is not None:
            say(console, f"bulk load of version {version.number} done: building its tables, keys and indexes")
            try:
                async with pool.acquire() as connection, connection.transaction():
                    await loader.finish(connection, version)
            except versions.VersionError as exc:  # bulk.StagingLost: PostgreSQL restarted during the load
                raise Failed(str(exc)) from exc
        outcome = await verify(
            pool,
            version,
            configured_topic=own.records_topic,
            configured_group=own.group_id,
            seen=run.counts.seen,
            applied_before=applied_before,
            dead_lettered=letters.sent,
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
        old, new = await _switch(settings, pool, version, topic, rows, letters, keys, run, options, stop, ask)
        return old, new, letters.sent
    finally:
        await producer.stop()


async def _load(
    settings: Settings,
    pool: asyncpg.Pool,
    version: Version,
    letters: DeadLetters,
    keys: MemberKeys,
    loader: BulkStore | None,
    run: _Run,
    stop: asyncio.Event,
    console: Console,
) -> None:
    """Project into ``version`` (and rm_sync_activity when asked) until the captured ends."""
    async with contextlib.AsyncExitStack() as stack:
        tasks = [
            await stack.enter_async_context(
                projecting(settings, pool, version, letters, keys, loader, run.counts)
            )
        ]
        if any(span.group == settings.projections.activity_group_id for span in run.spans):
            tasks.append(await stack.enter_async_context(projecting_activity(settings, pool, run.counts)))
        label = f"version {version.number}"
        finished, run.done = await follow(pool, run.spans, tasks, stop, console, label, run.done)
    if not finished:
        if stop.is_set():
            raise Interrupted
        raise Failed("the rebuild's projection worker stopped")


async def _switch(
    settings: Settings,
    pool: asyncpg.Pool,
    version: Version,
    topic: str,
    rows: int,
    letters: DeadLetters,
    keys: MemberKeys,
    run: _Run,
    options: _Options,
    stop: asyncio.Event,
    ask: Ask | None,
) -> tuple[int, int]:
    """Keep writing live records into ``version``; ask, then serve it once it caught up."""
    floors = {span.partition: span.first for span in run.spans if span.topic == topic}
    async with projecting(settings, pool, version, letters, keys, None, run.counts) as worker:
        if not options.yes:
            async with pool.acquire() as connection:
                served = await versions.serving(connection)
            if not await confirm(ask or ask_on_terminal, _question(version, topic, served, rows), stop):
                raise Refused(f"not confirmed: {aftermath(version.number, run.verified)}")
        switching = asyncio.create_task(
            switch_when_caught_up(
                pool,
                settings,
                version.number,
                floors=floors,
                stop=stop,
                within_s=options.catch_up_s,
                force=options.force,
            )
        )
        await asyncio.wait([switching, worker], return_when=asyncio.FIRST_COMPLETED)
        if not switching.done():  # the worker ended before the switch
            switching.cancel()
            await asyncio.wait([switching])
            raise_failure(worker)
            raise Failed("the rebuild's projection worker stopped")
        try:
            old, new = switching.result()
        except versions.VersionError as exc:
            raise Refused(str(exc)) from exc
    return old.number, new.number


@contextlib.contextmanager
def _signals(stop: asyncio.Event, handle: bool) -> Iterator[None]:
    """With ``handle``, SIGINT and SIGTERM set ``stop`` while the block runs."""
    if not handle:
        yield
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


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
    try:
        return uvloop.run(
            rebuild(
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
    except KeyboardInterrupt:  # before the handlers were installed
        say(STDERR, "interrupted: nothing changed")
        return EXIT_INTERRUPTED
