"""The fetcher's dead letters sent back through the fetcher's own intake, for ``wear dlq redrive``.

The fetcher dead-letters to its input topics' twins (``whoop.webhooks.v1.dlq``,
``whoop.connections.v1.dlq``): its intake, for an event it cannot act on (undecodable, a webhook
that names no v2 resource, a backfill of a member it does not know), and its fetch workers, for a
fetch that can never succeed (a 4xx, a malformed document), with the event that caused the work
as the letter's origin and raw value. Either way the letter holds the original event, so a redrive
runs that event through :meth:`processors.intake.Intake.act`, the code the fetcher's faust agents
run: a webhook's fetch is enqueued (or merged) in ``fetcher_tasks``, a backfill's jobs and first
stages are recorded, a deletion's documents appended, a lifecycle event parks, resumes or drops
work. The PostgreSQL writes go through the redrive's own connection, inside its transaction, so
the task-queue rows and the ``dlq_redrives`` row commit together (``NOTIFY`` wakes the fetchers at
commit). The running fetchers then do the work, under the shared quota, and append the documents
(this is not a re-publish to the input topic, which the ingest edge owns). A fetch that fails
again in a worker is dead-lettered by that worker, once, as its one failure policy does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from pydantic import JsonValue

from infra.appender import Appender
from infra.member_keys import MemberKeys
from infra.vault import Executor
from processors.clock import SystemClock
from processors.intake import Incoming, Intake
from processors.quota import Priority
from processors.resources import DocumentLog, Member
from processors.settings import FetcherSettings
from processors.task_queue import TaskQueue
from processors.work import Context

__all__ = ["FETCHER", "FetcherIntake"]

FETCHER = "fetcher"
_OWNER = "wear-dlq-redrive"  # a queue owner that never claims: the intake only enqueues


class _NoWhoop:
    """The intake never calls WHOOP (the workers do); a call here would be a bug."""

    async def get(
        self,
        member: Member,
        path: str,
        *,
        priority: Priority,
        params: Mapping[str, str | int] | None = None,
    ) -> dict[str, JsonValue]:
        raise RuntimeError("the fetcher's intake does not call WHOOP")


class _NoAppends:
    """A dry run's appender: a dry run of the intake appends nothing."""

    async def append(
        self, topic: str, records: Sequence[tuple[bytes, bytes]], headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        raise RuntimeError("a dry run appends nothing")


@dataclass
class FetcherIntake:
    """The fetcher's intake, built as the fetcher builds it, minus the parts the intake never uses."""

    pool: asyncpg.Pool
    appender: Appender | None  # None: a dry run
    settings: FetcherSettings
    keys: MemberKeys

    def __post_init__(self) -> None:
        clock = SystemClock()
        appender = self.appender or _NoAppends()
        log = DocumentLog(self.pool, appender, self.settings.documents_topic, clock, self.keys)
        queue = TaskQueue(self.pool, _OWNER, self.settings.lease_s)
        ctx = Context(self.pool, queue, log, _NoWhoop(), clock, self.settings)
        self._intake = Intake(ctx, appender, None, asyncio.Event())

    async def act(self, db: Executor, record: Incoming) -> str:
        """Run ``record`` through the intake, writing through ``db``; raises NotActionable."""
        return await self._intake.act(record, db, dry_run=self.appender is None)
