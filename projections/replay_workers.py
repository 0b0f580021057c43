"""The workers of a rebuild, run in-process while a block runs, and the progress bar that follows them.

:func:`projecting` runs a :class:`~projections.runner.ProjectionWorker` writing one read-model version
(``version=N``) with a Kafka consumer of its own: group ``<PROJECTIONS_GROUP_ID>-rebuild`` and dynamic
membership, so it never takes the partitions (or fences the static id) of a deployed worker; the
offsets it stores are the version's. Leaving the block stops it after its batch in flight and adds
what it read to :class:`Counts`. :func:`follow` polls the stored offsets until the captured ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

import asyncpg
from aiokafka.errors import KafkaError
from rich.console import Console

from infra.dead_letters import DeadLetters
from infra.exactly_once import load_offsets
from infra.member_keys import MemberKeys
from infra.progress_bar import progress_bar

from .bulk import BulkStore
from .commands import Failed
from .replay_offsets import Span, applied, caught_up, total
from .runner import ActivityWorker, ProjectionWorker, activity_consumer_for, projection_consumer
from .settings import Settings
from .versions import Version

__all__ = ["Counts", "follow", "projecting", "projecting_activity", "raise_failure", "read_stored"]

_POLL_S = 0.5
_STOP_WAIT_S = 60.0  # a worker asked to stop finishes its batch in flight within this

logger = logging.getLogger(__name__)


@dataclass
class Counts:
    """What the workers of one run read: records, those skipped (member erased), sync-activity arrivals,
    and the records a second load process dead-lettered (``projections.load_helper``)."""

    seen: int = 0
    erased: int = 0
    activity: int | None = None
    dead_lettered: int = 0


@contextlib.asynccontextmanager
async def projecting(
    settings: Settings,
    pool: asyncpg.Pool,
    version: Version,
    letters: DeadLetters,
    keys: MemberKeys,
    store: BulkStore | None,
    counts: Counts,
) -> AsyncIterator[asyncio.Task[None]]:
    """A worker writing ``version`` while the block runs; stopped after its batch in flight on exit."""
    own = settings.projections.model_copy(update={"group_instance_id": None})
    # a Kafka group of its own and dynamic membership: never the partitions (or the static id) of a
    # deployed worker; the offsets it stores are the version's (its offsets_group)
    kafka_group = own.model_copy(update={"group_id": f"{own.group_id}-rebuild"})
    consumer = projection_consumer(replace(settings, projections=kafka_group))
    await consumer.start()
    halt = asyncio.Event()
    worker = ProjectionWorker(consumer, pool, own, letters, store, keys=keys, version=version.number)
    task = asyncio.create_task(worker.run(halt), name=f"rebuild-version-{version.number}")
    try:
        yield task
    finally:
        await _stop(halt, task)
        await consumer.stop()
        counts.seen += worker.exactly_once.applied
        counts.erased += worker.erased
    raise_failure(task)


@contextlib.asynccontextmanager
async def projecting_activity(
    settings: Settings, pool: asyncpg.Pool, counts: Counts
) -> AsyncIterator[asyncio.Task[None]]:
    """The sync-activity worker (its own consumer group, in place) while the block runs."""
    own = settings.projections.model_copy(update={"group_instance_id": None})
    consumer = activity_consumer_for(replace(settings, projections=own))
    await consumer.start()
    halt = asyncio.Event()
    worker = ActivityWorker(consumer, pool, own)
    task = asyncio.create_task(worker.run(halt), name="rebuild-activity")
    try:
        yield task
    finally:
        await _stop(halt, task)
        await consumer.stop()
        counts.activity = (counts.activity or 0) + worker.exactly_once.applied
    raise_failure(task)


async def _stop(halt: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Ask a worker to stop; cancel it when its batch in flight outlasts the wait."""
    halt.set()
    await asyncio.wait([task], timeout=_STOP_WAIT_S)
    if not task.done():
        task.cancel()
        await asyncio.wait([task])


def raise_failure(task: asyncio.Task[None]) -> None:
    """Raise what ended a worker: Kafka and PostgreSQL errors as they are, anything else as Failed."""
    if task.cancelled() or (failure := task.exception()) is None:
        return
    if isinstance(failure, KafkaError | OSError | asyncpg.PostgresError | asyncpg.InterfaceError):
        raise failure
    raise Failed(f"the rebuild's projection worker failed: {type(failure).__name__}") from failure


async def read_stored(pool: asyncpg.Pool, spans: Sequence[Span]) -> dict[tuple[str, str, int], int]:
    """The stored next offsets of the groups and topics of ``spans``."""
    stored: dict[tuple[str, str, int], int] = {}
    async with pool.acquire() as connection:
        for group, topic in sorted({(span.group, span.topic) for span in spans}):
            for partition, offset in (await load_offsets(connection, group, topic)).items():
                stored[(group, topic, partition)] = offset
    return stored


async def follow(
    pool: asyncpg.Pool,
    spans: Sequence[Span],
    tasks: Sequence[asyncio.Task[None]],
    stop: asyncio.Event,
    console: Console,
    label: str,
    done: int = 0,
) -> tuple[bool, int]:
    """Poll the stored offsets of ``spans`` with a progress bar until caught up (True), or until
    ``stop`` is set or a worker ended (False); and the offsets applied by then.

    ``done`` is what earlier runs applied: the bar starts there, so the rate is this run's.
    """
    with progress_bar(console) as bar:
        task = bar.add_task(label, total=total(spans), completed=done, first=done)
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
