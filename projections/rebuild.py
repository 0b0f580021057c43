"""``python -m projections rebuild``: empty the read models and project the log again from its start.

The steps, in order; nothing changes before step 4:

1. without ``--yes``, refuse when stdin is not a terminal (exit 2);
2. refuse when a consumer group of the projections has active members, i.e. a ``python -m
   projections`` runs somewhere (exit 2);
3. capture the first and end offsets of every partition of the topics to replay; without ``--yes``,
   ask on the terminal;
4. in one PostgreSQL transaction, empty the read models and delete the stored offsets of the group
   (the groups are described again inside it, before it commits);
5. run :class:`~projections.runner.ProjectionWorker` in-process until the offsets it stores reach the
   end offsets captured in step 3, with a progress bar on stderr polled from ``consumer_offsets``.

``rm_sync_activity`` (the sync-activity projection of ``whoop.webhooks.v1``, kept 30 days, and of the
compacted ``whoop.documents.v1``) is rebuilt only with ``--with-sync-activity``: a rebuild forgets
the webhooks older than the topic's retention, so by default its table and the offsets of its group
are left alone. Nothing else is touched: ingest's and the fetcher's tables are not derived from Kafka.

Exit codes: 0 rebuilt, 1 failed (a service unreachable, a worker failed), 2 refused (nothing
changed), 130 interrupted (the read models are partial; see :func:`interrupted_message`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlsplit

import asyncpg
import uvloop
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from infra.db import create_pool
from infra.kafka import make_consumer, make_producer
from infra.member_keys import MemberKeys

from .exactly_once import load_offsets
from .runner import ActivityWorker, DeadLetters, ProjectionWorker, activity_consumer_for, projection_consumer
from .settings import Settings

__all__ = [
    "ACTIVITY_READ_MODELS",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "RECORD_READ_MODELS",
    "Failed",
    "Refused",
    "Span",
    "active_members",
    "applied",
    "capture_spans",
    "caught_up",
    "command",
    "configure_logging",
    "interrupted_message",
    "read_stored",
    "rebuild",
    "reset",
    "summary_line",
    "total",
    "where",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130

RECORD_READ_MODELS = (
    "rm_cycles",
    "rm_sleeps",
    "rm_recoveries",
    "rm_workouts",
    "rm_tombstones",
    "rm_daily_summaries",
    "rm_sync_status",
)
"""The tables of the read-model projection (migration 0010): a function of the records topic alone."""
ACTIVITY_READ_MODELS = ("rm_sync_activity",)
"""The table of the sync-activity projection: only what the webhook and document topics still retain."""

_POLL_S = 0.5
_LOCK_TIMEOUT = "10s"  # the reset waits this long for API queries holding the read models, then gives up

_STDERR = Console(stderr=True)
Ask = Callable[[str], bool]

logger = logging.getLogger(__name__)


class Refused(Exception):
    """The rebuild did not start: nothing changed (exit 2)."""


class Failed(Exception):
    """The rebuild could not go on (exit 1); the message is one line, without secrets."""


# --- progress arithmetic (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """The offsets of one partition to replay: from ``first`` (the log start) up to ``end`` (excluded).

    ``end`` is the partition's end offset when the rebuild started; records produced later are
    projected too but are not waited for.
    """

    group: str
    topic: str
    partition: int
    first: int
    end: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.group, self.topic, self.partition)


Stored = Mapping[tuple[str, str, int], int]
"""The stored next offset by (group, topic, partition), as in ``consumer_offsets``."""


def total(spans: Sequence[Span]) -> int:
    """The offsets to replay (records, less the gaps a compacted topic leaves)."""
    return sum(span.end - span.first for span in spans)


def applied(spans: Sequence[Span], stored: Stored) -> int:
    """The offsets of ``spans`` already applied, by the stored next offsets (capped at each end)."""
    return sum(
        min(max(stored.get(span.key, span.first), span.first), span.end) - span.first for span in spans
    )


def caught_up(spans: Sequence[Span], stored: Stored) -> bool:
    """True when every partition's stored next offset reached its end (an empty partition is done)."""
    return all(stored.get(span.key, span.first) >= span.end for span in spans)


def summary_line(records: int, seconds: float, dead_lettered: int, activity: int | None = None) -> str:
    """The line printed when the rebuild ends."""
    rate = records / seconds if seconds > 0 else 0.0
    line = f"rebuilt: {records:,} records in {seconds:,.1f} s ({rate:,.0f} records/s)"
    line += f", {dead_lettered:,} dead-lettered"
    if activity is not None:
        line += f"; rm_sync_activity from {activity:,} webhooks and documents"
    return line


def interrupted_message(done: int, of: int) -> str:
    """What an interrupted rebuild leaves, and the two ways on."""
    return (
        f"interrupted after {done:,} of {of:,} offsets: the read models are partial. "
        "Run `python -m projections rebuild` again to start over, or start `python -m projections`: "
        "it continues from the stored offsets."
    )


def where(database_url: str) -> str:
    """host:port/database (and search_path) of a libpq URL, without user or password."""
    parts = urlsplit(database_url)
    place = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    schema = parse_qs(parts.query).get("search_path")
    return f"{place} (search_path {schema[0]})" if schema else place


# --- Kafka ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _kafka_errors(settings: Settings) -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        raise Failed(
            f"Kafka unreachable or failing at {settings.kafka.kafka_bootstrap_servers}: {type(exc).__name__}"
        ) from exc


@contextlib.asynccontextmanager
async def _admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.kafka_bootstrap_servers,
        client_id=f"{settings.kafka.kafka_client_id_prefix}-projections-rebuild",
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def active_members(admin: AIOKafkaAdminClient, groups: Sequence[str]) -> dict[str, int]:
    """The number of members of each consumer group (0 for a group without any, or unknown)."""
    members: dict[str, int] = {}
    for group in groups:  # one group per request: aiokafka 0.14 misreads an answer describing several
        count = 0
        for response in await admin.describe_consumer_groups([group]):
            for described in response.to_object()["groups"]:
                if described["error_code"] != 0:
                    raise Failed(
                        f"Kafka could not describe consumer group {group} (error {described['error_code']})"
                    )
                count += len(described["members"])
        members[group] = count
    return members


async def _refuse_when_running(admin: AIOKafkaAdminClient, groups: Sequence[str]) -> None:
    busy = {group: n for group, n in (await active_members(admin, groups)).items() if n}
    if busy:
        named = ", ".join(f"{group} ({n} member{'s' if n > 1 else ''})" for group, n in busy.items())
        raise Refused(
            f"projection consumers are running in {named}: stop every `python -m projections` first "
            "(a killed worker, or one stopped with PROJECTIONS_GROUP_INSTANCE_ID set, stays a member "
            "until PROJECTIONS_SESSION_TIMEOUT_MS has passed: then run this again)"
        )


async def capture_spans(
    settings: Settings, admin: AIOKafkaAdminClient, groups: Mapping[str, Sequence[str]]
) -> list[Span]:
    """The first and end offsets, now, of every partition of the topics of each group."""
    topics = sorted({topic for group_topics in groups.values() for topic in group_topics})
    partitions: dict[str, list[int]] = {}
    for described in await admin.describe_topics(topics):
        if described["error_code"] != 0:
            raise Failed(f"topic {described['topic']} cannot be read (Kafka error {described['error_code']})")
        partitions[described["topic"]] = sorted(p["partition"] for p in described["partitions"])
    tps = [TopicPartition(topic, p) for topic in topics for p in partitions[topic]]
    consumer = make_consumer(settings.kafka, "projections-rebuild-offsets", None)
    await consumer.start()
    try:
        firsts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return [
        Span(group, tp.topic, tp.partition, firsts[tp], ends[tp])
        for group, group_topics in groups.items()
        for tp in tps
        if tp.topic in group_topics
    ]


# --- PostgreSQL -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres_errors(settings: Settings) -> Iterator[None]:
    try:
        yield
    except asyncpg.LockNotAvailableError as exc:
        raise Failed(
            f"the read models stayed locked by other queries for {_LOCK_TIMEOUT}: nothing changed, try again"
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Failed(
            f"PostgreSQL unreachable or failing at {where(settings.postgres.database_url)}: "
            f"{type(exc).__name__}"
        ) from exc


async def read_stored(pool: asyncpg.Pool, spans: Sequence[Span]) -> dict[tuple[str, str, int], int]:
    """The stored next offsets of the groups and topics of ``spans``."""
    stored: dict[tuple[str, str, int], int] = {}
    async with pool.acquire() as connection:
        for group, topic in sorted({(span.group, span.topic) for span in spans}):
            for partition, offset in (await load_offsets(connection, group, topic)).items():
                stored[(group, topic, partition)] = offset
    return stored


async def reset(
    pool: asyncpg.Pool,
    tables: Sequence[str],
    groups: Sequence[str],
    before_commit: Callable[[], Awaitable[None]],
) -> None:
    """Empty ``tables``, delete the stored offsets of ``groups`` and advance the read models' epoch,
    in one transaction.

    ``before_commit`` runs last inside the transaction; when it raises, nothing changes.
    """
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        await connection.execute(f"TRUNCATE {', '.join(tables)}")
        # every data version (and so every ETag) taken before the rebuild is outdated by it
        await connection.execute("UPDATE read_model_epoch SET epoch = epoch + 1")
        await connection.execute(
            "DELETE FROM consumer_offsets WHERE consumer_group = ANY($1::text[])", list(groups)
        )
        await before_commit()


# --- the run ----------------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} records/s", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=4,
    )


@dataclass
class _Outcome:
    records: int
    activity: int | None
    dead_lettered: int
    seconds: float
    done: int
    total: int
    interrupted: bool


async def _follow(
    pool: asyncpg.Pool,
    spans: Sequence[Span],
    tasks: Sequence[asyncio.Task[None]],
    stop: asyncio.Event,
    console: Console,
) -> tuple[bool, int]:
    """Poll the stored offsets until caught up (True), or ``stop`` is set or a worker ended (False)."""
    done = 0
    with _progress(console) as bar:
        task = bar.add_task("rebuilding", total=total(spans))
        while True:
            try:
                stored = await read_stored(pool, spans)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("progress unavailable (%s): the workers retry meanwhile", type(exc).__name__)
            else:
                done = applied(spans, stored)
                bar.update(task, completed=done)
                if caught_up(spans, stored):
                    return True, done
            if stop.is_set() or any(t.done() for t in tasks):
                return False, done
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _POLL_S)


async def _project(
    settings: Settings,
    pool: asyncpg.Pool,
    spans: Sequence[Span],
    sync_activity: bool,
    stop: asyncio.Event,
    console: Console,
) -> _Outcome:
    # dynamic membership: the rebuild never takes (or fences) the static id of a deployed worker
    own = settings.projections.model_copy(update={"group_instance_id": None})
    dynamic = replace(settings, projections=own)
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        producer = make_producer(settings.kafka, "projections-rebuild-dlq")
        await producer.start()
        stack.push_async_callback(producer.stop)
        consumer = projection_consumer(dynamic)
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        letters = DeadLetters(producer)
        projection = ProjectionWorker(consumer, pool, own, letters, keys=MemberKeys(settings.vault.keyring()))
        halt = asyncio.Event()
        tasks = [asyncio.create_task(projection.run(halt), name="rebuild-projection")]
        activity: ActivityWorker | None = None
        if sync_activity:
            activity_consumer = activity_consumer_for(dynamic)
            await activity_consumer.start()
            stack.push_async_callback(activity_consumer.stop)
            activity = ActivityWorker(activity_consumer, pool, own)
            tasks.append(asyncio.create_task(activity.run(halt), name="rebuild-activity"))
        try:
            finished, done = await _follow(pool, spans, tasks, stop, console)
        finally:
            halt.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise Failed(f"a projection worker failed: {type(failures[0]).__name__}") from failures[0]
    return _Outcome(
        records=projection.exactly_once.applied,
        activity=None if activity is None else activity.exactly_once.applied,
        dead_lettered=letters.sent,
        seconds=time.monotonic() - started,
        done=done,
        total=total(spans),
        interrupted=not finished,
    )


def _ask_on_terminal(question: str) -> bool:
    _STDERR.print(question, markup=False, highlight=False, soft_wrap=True)
    try:
        answer = input('Type "yes" to go on: ')
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _question(settings: Settings, tables: Sequence[str], groups: Sequence[str], spans: Sequence[Span]) -> str:
    topics = sorted({span.topic for span in spans})
    return (
        f"This empties {', '.join(tables)} in {where(settings.postgres.database_url)} and deletes the "
        f"stored offsets of {', '.join(groups)}; then it projects {total(spans):,} offsets of "
        f"{', '.join(topics)} again from the start. The query API serves partial data until it ends."
    )


async def rebuild(
    settings: Settings,
    *,
    yes: bool = False,
    sync_activity: bool = False,
    stop: asyncio.Event | None = None,
    ask: Ask | None = None,
    console: Console | None = None,
    handle_signals: bool = False,
) -> int:
    """Rebuild the read models from the log; the exit code (see the module docstring).

    ``yes`` skips the question; otherwise ``ask`` (default: on the terminal, when stdin is one) must
    say yes. Setting ``stop`` interrupts the replay; with ``handle_signals``, SIGINT and SIGTERM set it
    once the question is answered (before, they end the process: nothing has changed yet).
    """
    console = console or _STDERR
    stop = stop or asyncio.Event()
    try:
        async with _signals_set(stop, handle_signals) as confirmed:
            outcome = await _rebuild(settings, yes, sync_activity, confirmed, ask, console)
    except Refused as exc:
        console.print(f"refused, nothing changed: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_REFUSED
    except Failed as exc:
        console.print(f"rebuild failed: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    if outcome.interrupted:
        console.print(
            interrupted_message(outcome.done, outcome.total), markup=False, highlight=False, soft_wrap=True
        )
        return EXIT_INTERRUPTED
    console.print(
        summary_line(outcome.records, outcome.seconds, outcome.dead_lettered, outcome.activity),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


async def _rebuild(
    settings: Settings,
    yes: bool,
    sync_activity: bool,
    confirmed: Callable[[], asyncio.Event],
    ask: Ask | None,
    console: Console,
) -> _Outcome:
    own = settings.projections
    if not yes and ask is None and not sys.stdin.isatty():
        raise Refused("stdin is not a terminal: pass --yes to rebuild without a question")
    if sync_activity and not own.activity_topics:
        raise Refused("PROJECTIONS_ACTIVITY_TOPICS is empty: there is no sync-activity projection to rebuild")
    replayed = {own.group_id: [own.records_topic]}
    tables = list(RECORD_READ_MODELS)
    if sync_activity:
        replayed[own.activity_group_id] = list(own.activity_topics)
        tables.extend(ACTIVITY_READ_MODELS)
    watched = [own.group_id, own.activity_group_id]  # a running `python -m projections` is in both
    try:
        with _kafka_errors(settings), _postgres_errors(settings):
            async with _admin(settings) as admin:
                await _refuse_when_running(admin, watched)
                spans = await capture_spans(settings, admin, replayed)
                # asked in the event loop's thread: Ctrl-C at the question ends the process
                question = _question(settings, tables, list(replayed), spans)
                if not yes and not (ask or _ask_on_terminal)(question):
                    raise Refused("not confirmed")
                stop = confirmed()
                pool = await create_pool(settings.postgres, migrate=True, max_size=own.db_pool_size)
                try:
                    await reset(pool, tables, list(replayed), lambda: _refuse_when_running(admin, watched))
                except BaseException:
                    await _close(pool)
                    raise
    except Failed as exc:
        raise Failed(f"{exc}; nothing changed") from exc
    logger.info("read models emptied, offsets of %s deleted", ", ".join(replayed))
    try:
        with _kafka_errors(settings), _postgres_errors(settings):
            return await _project(settings, pool, spans, sync_activity, stop, console)
    except Failed as exc:
        raise Failed(f"{exc}; the read models are partial: run the rebuild again") from exc
    finally:
        await _close(pool)


async def _close(pool: asyncpg.Pool) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pool.close(), 10)


@contextlib.asynccontextmanager
async def _signals_set(stop: asyncio.Event, handle: bool) -> AsyncIterator[Callable[[], asyncio.Event]]:
    """Yields ``confirmed()``: it returns ``stop`` and, with ``handle``, makes SIGINT/SIGTERM set it."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def confirmed() -> asyncio.Event:
        if handle and not installed:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        return stop

    try:
        yield confirmed
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# --- the command line -------------------------------------------------------------------------------


def configure_logging() -> None:
    """Warnings and errors of the pipeline above the progress bar; aiokafka's own only when critical.

    aiokafka logs every failed connection attempt as an error; the rebuild says it once, in one line.
    """
    logging.basicConfig(
        level=logging.WARNING,
        format="%(name)s %(message)s",
        handlers=[RichHandler(console=_STDERR, show_path=False, rich_tracebacks=False)],
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def command(settings: Settings, *, yes: bool, sync_activity: bool) -> int:
    """``python -m projections rebuild``: run :func:`rebuild`, interrupted cleanly by SIGINT or SIGTERM."""
    try:
        return uvloop.run(rebuild(settings, yes=yes, sync_activity=sync_activity, handle_signals=True))
    except KeyboardInterrupt:  # before the question was answered
        _STDERR.print("interrupted: nothing changed", markup=False, highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
