"""The steps of ``python -m projections rebuild``, in order: capture the offsets to reach, begin (or
resume) the version, load it, and keep it current while the switch waits for it to catch up.

Each step raises ``Refused``, ``Failed`` or ``Interrupted`` (``projections.commands``) and records in
the :class:`Run` what it did, so the lines the command prints (``projections.rebuild_console``) come
from there however the run ends. Also here: what the rebuild reads and resets in PostgreSQL besides
the projection's own writes (the version to resume, a bulk version's pending keys, the reset of
``rm_sync_activity`` with its stored offsets, in one transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import asyncpg
from rich.console import Console

from infra.dead_letters import DeadLetters
from infra.exactly_once import forget_offsets
from infra.member_keys import MemberKeys

from . import versions
from .bulk import BulkStore
from .commands import LOCK_TIMEOUT, Ask, Failed, Interrupted, Refused, ask_on_terminal, confirm, say
from .load_helper import Helper, helping
from .read_model_ddl import VERSIONED_TABLES
from .rebuild_console import aftermath, switch_question
from .replay_offsets import Span, applied, total
from .replay_workers import Counts, follow, projecting, projecting_activity, raise_failure, read_stored
from .settings import Settings
from .switching import switch_when_caught_up
from .topic_offsets import active_members, admin_client, capture_spans
from .verification import records_applied
from .versions import Version

__all__ = [
    "ACTIVITY_READ_MODELS",
    "HELPER_MIN_RECORDS",
    "Options",
    "Run",
    "begin",
    "bulk_pending",
    "capture",
    "finish_bulk",
    "load",
    "reset_activity",
    "resume_or_create",
    "switch",
]

logger = logging.getLogger(__name__)

ACTIVITY_READ_MODELS = ("rm_sync_activity",)
"""The table of the sync-activity projection: only what the webhook and document topics still retain."""
HELPER_MIN_RECORDS = 50_000
"""A bulk load of fewer records is loaded by one process: a second one costs ~1 s of start-up."""

_KEYS_BUILT = """
SELECT count(*) FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'p' AND n.nspname = $1 AND t.relname = ANY($2::text[])
"""


async def resume_or_create(
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


async def bulk_pending(pool: asyncpg.Pool, version: Version) -> bool:
    """True for a bulk version not finished yet: its tables still lack their primary keys."""
    if not version.bulk:
        return False
    built = await pool.fetchval(_KEYS_BUILT, version.schema, list(VERSIONED_TABLES))
    return int(built) < len(VERSIONED_TABLES)


async def reset_activity(pool: asyncpg.Pool, group: str) -> None:
    """Empty ``rm_sync_activity`` and delete its group's stored offsets, in one transaction."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await connection.execute(f"TRUNCATE {', '.join(ACTIVITY_READ_MODELS)}")
        await forget_offsets(connection, group)


@dataclass
class Run:
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
class Options:
    yes: bool
    bulk: bool
    force: bool
    records_topic: str | None
    sync_activity: bool
    catch_up_s: float


async def capture(settings: Settings, topic: str, sync_activity: bool) -> tuple[list[Span], list[Span]]:
    """The records topic's offsets to reach (and the activity topics', refused while their projection
    runs). Kafka first: unreachable, or an unknown topic, and nothing changed."""
    own = settings.projections
    spans = await capture_spans(settings, {"": [topic]})
    if not sync_activity:
        return spans, []
    async with admin_client(settings) as admin:
        members = (await active_members(admin, [own.activity_group_id]))[own.activity_group_id]
    if members:
        raise Refused(
            f"the sync-activity projection runs ({members} member(s) in {own.activity_group_id}): "
            "stop every `python -m projections` to rebuild rm_sync_activity, or leave out "
            "--with-sync-activity"
        )
    return spans, await capture_spans(settings, {own.activity_group_id: list(own.activity_topics)})


async def begin(
    settings: Settings,
    pool: asyncpg.Pool,
    topic: str,
    spans: Sequence[Span],
    activity_spans: Sequence[Span],
    options: Options,
    run: Run,
    console: Console,
) -> tuple[Version, BulkStore | None, int | None]:
    """Resume or create the version, say so; its bulk loader (None: the worker writes), the records it
    had applied before (None: not measurable for a bulk load resumed), rm_sync_activity reset if asked."""
    own = settings.projections
    version, resumed = await resume_or_create(pool, topic, own.records_topic, options.bulk)
    run.version = version
    spans = [replace(span, group=version.group(own.group_id)) for span in spans]
    run.spans = [*spans, *activity_spans]
    pending = await bulk_pending(pool, version)
    stored_before = await read_stored(pool, spans)
    run.done = applied(spans, stored_before)
    how = "bulk " if pending else ""
    doing = "resuming" if resumed else "building"
    say(console, f"{doing} version {version.number} ({how}{version.schema}) from {topic}")
    # the growth of records_applied is what this run applied; not measurable for a bulk load resumed
    applied_before = None
    if not (pending and stored_before):
        async with pool.acquire() as connection:
            applied_before = await records_applied(connection, version)
    if options.sync_activity:
        await reset_activity(pool, own.activity_group_id)
    return version, BulkStore() if pending else None, applied_before


async def load(
    settings: Settings,
    pool: asyncpg.Pool,
    version: Version,
    letters: DeadLetters,
    keys: MemberKeys,
    loader: BulkStore | None,
    run: Run,
    stop: asyncio.Event,
    console: Console,
) -> None:
    """Project into ``version`` (and rm_sync_activity when asked) until the captured ends.

    A bulk load of at least ``HELPER_MIN_RECORDS`` records on a machine of several cores runs a
    second load process beside this one (``projections.load_helper``): the load is CPU-bound.
    """
    helper = None
    async with contextlib.AsyncExitStack() as stack:
        if loader is not None and _helps(run):
            helper = await stack.enter_async_context(helping(settings, version))
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
    if helper is not None:
        _add(run.counts, helper)


def _helps(run: Run) -> bool:
    """A second load process pays: records enough left to load, and a core for it."""
    return total(run.spans) - run.done >= HELPER_MIN_RECORDS and (os.cpu_count() or 1) >= 2


def _add(counts: Counts, helper: Helper) -> None:
    """Add what the second load process read; Failed when it could not tell (the accounting needs it)."""
    if helper.failed and not helper.counts.seen:
        raise Failed(f"{helper.failed}: run the same command again to resume the version")
    if helper.failed:
        logger.warning("%s; the rebuild's own worker loaded the rest", helper.failed)
    counts.seen += helper.counts.seen
    counts.erased += helper.counts.erased
    counts.dead_lettered += helper.counts.dead_lettered


async def finish_bulk(pool: asyncpg.Pool, version: Version, loader: BulkStore, console: Console) -> None:
    """Build a bulk-loaded version's tables, keys and indexes, in one transaction."""
    say(console, f"bulk load of version {version.number} done: building its tables, keys and indexes")
    try:
        async with pool.acquire() as connection, connection.transaction():
            await loader.finish(connection, version)
    except versions.VersionError as exc:  # bulk.StagingLost: PostgreSQL restarted during the load
        raise Failed(str(exc)) from exc


async def switch(
    settings: Settings,
    pool: asyncpg.Pool,
    version: Version,
    topic: str,
    rows: int,
    letters: DeadLetters,
    keys: MemberKeys,
    run: Run,
    options: Options,
    stop: asyncio.Event,
    ask: Ask | None,
) -> tuple[int, int]:
    """Keep writing live records into ``version``; ask, then serve it once it caught up."""
    floors = {span.partition: span.first for span in run.spans if span.topic == topic}
    async with projecting(settings, pool, version, letters, keys, None, run.counts) as worker:
        if not options.yes:
            async with pool.acquire() as connection:
                served = await versions.serving(connection)
            question = switch_question(version, topic, served, rows)
            if not await confirm(ask or ask_on_terminal, question, stop):
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
