"""The document log writer, and what the fetcher remembers per resource.

Tables: ``fetcher_resources`` and ``fetcher_sleep_cycles`` (migration 0022).

:meth:`DocumentLog.publish` appends ``DocumentFetched`` records to ``whoop.documents.v1`` (raw
WHOOP JSON, or ``deleted=True``) and, in the same PostgreSQL transaction that row-locks the
resources, records what was published: WHOOP's ``updated_at`` and ``score_state``, when the fetch
behind it started and when a deletion was appended. Holding the row locks across the append
orders every append of one resource the same way in Kafka as in the table, which gives (the
decision is the pure :func:`processors.novelty.decide_appends`; this module does its I/O):

* a document fetched *before* a deletion was appended is not appended *after* it (no resurrection);
* a document equal to the last one appended (same ``updated_at`` and ``score_state``) is not
  appended again (duplicates cost nothing downstream; reconciliation appends only what changed);
* an event received before a fetch started is covered by that fetch (``covered``).

Every document is sealed with its member's data key (``infra.member_keys``, ADR 0004), and nothing
is appended or remembered for a member whose erasure has begun (``infra.erasure_gate``). Each
document carries its first webhook's trace id in its envelope and in the Kafka header ``trace_id``.

Sleep and recovery documents also feed the sleep → cycle link, which makes ``recovery.updated`` one
call and resolves ``recovery.deleted`` (the sleep is gone at WHOOP by then).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from pydantic import JsonValue

from infra import erasure_gate
from infra.appender import Appender
from infra.logs import progress_logger, trace_header
from infra.member_keys import MemberKeys
from infra.vault import Executor
from processors.clock import Clock
from processors.novelty import Appends, Item, Json, Stored, decide_appends, parse_time, text
from processors.reconcile_plan import day_signals
from schemas.keys import record_key
from schemas.records import DocumentFetched, ResourceType
from schemas.serde import encode

__all__ = ["DocumentLog", "Item", "Member", "ResourceState", "SleepLink", "resource_id_of"]

logger = logging.getLogger(__name__)
progress = progress_logger(__name__)

SOURCE = "fetcher"
_KEEP_TRACES = 32


@dataclass(frozen=True)
class Member:
    """Whose data: our user id and the WHOOP member id."""

    user_id: str
    whoop_user_id: int


@dataclass(frozen=True)
class ResourceState:
    """What was last appended for one resource."""

    whoop_updated_at: str | None
    score_state: str | None
    fetched_at: datetime | None
    deleted_at: datetime | None
    trace_ids: tuple[str, ...]


@dataclass(frozen=True)
class SleepLink:
    """A sleep's cycle, and what dates a recovery: the sleep's end and offset."""

    sleep_id: str
    cycle_id: int
    nap: bool | None
    sleep_start: str | None
    sleep_end: str | None
    timezone_offset: str | None

    def recovery_context(self) -> Json:
        """The ``context`` of a recovery document (the normalizer dates it by the sleep's end)."""
        context: Json = {"sleep_id": self.sleep_id}
        if self.sleep_end is not None:
            context["sleep_end"] = self.sleep_end
        if self.timezone_offset is not None:
            context["sleep_timezone_offset"] = self.timezone_offset
        return context


def resource_id_of(resource_type: ResourceType, document: Mapping[str, JsonValue]) -> str:
    """The resource id of a WHOOP document: its ``id``, a recovery's ``cycle_id``; ValueError if absent."""
    value = document.get("cycle_id" if resource_type == "recovery" else "id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError(f"a {resource_type} document without its id")
    return str(value)


@dataclass(eq=False)
class DocumentLog:
    """Appends documents and keeps ``fetcher_resources`` and the sleep → cycle link in step."""

    pool: asyncpg.Pool
    appender: Appender
    topic: str
    clock: Clock
    keys: MemberKeys
    appended: int = field(default=0, init=False)

    def _event(
        self, member: Member, item: Item, caused_by: Sequence[str], trace_ids: Sequence[str]
    ) -> DocumentFetched:
        now = self.clock.now()
        return DocumentFetched(
            event_id=str(uuid.uuid4()),
            occurred_at=now,
            user_id=member.user_id,
            source=SOURCE,
            causation_id=caused_by[0] if caused_by else None,
            trace_id=trace_ids[0] if trace_ids else None,
            whoop_user_id=member.whoop_user_id,
            resource_type=item.resource_type,
            resource_id=item.resource_id,
            fetched_at=now,
            deleted=item.document is None,
            document=item.document,
            context=item.context,
            caused_by=tuple(caused_by[-20:]),
        )

    async def publish(
        self,
        member: Member,
        items: Sequence[Item],
        *,
        fetch_started: datetime,
        caused_by: Sequence[str] = (),
        trace_ids: Sequence[str] = (),
    ) -> list[Item]:
        """Append what is new among ``items`` (see the module docstring); returns the items appended.

        The decision is :func:`processors.novelty.decide_appends`; this method reads its inputs under
        row locks and carries it out in the same transaction."""
        if not items:
            return []
        data_key = await self._member_key(member.user_id)
        async with self.pool.acquire() as db, db.transaction():
            if data_key is None or not await erasure_gate.admit(db, [member.user_id]):
                logger.info("user %s is being erased: %d documents not appended", member.user_id, len(items))
                return []
            stored = await self._lock(db, member.user_id, items)
            now = self.clock.now()
            appends = decide_appends(items, stored, fetch_started)
            await self.appender.append(
                self.topic,
                [
                    (
                        record_key(member.user_id, i.resource_type, i.resource_id),
                        self.keys.seal(
                            data_key, member.user_id, encode(self._event(member, i, caused_by, trace_ids))
                        ),
                    )
                    for i in appends.fresh
                ],
                trace_header(trace_ids[0] if trace_ids else None),
            )
            self.appended += len(appends.fresh)
            if progress.isEnabledFor(logging.INFO):
                for i in appends.fresh:
                    progress.info(
                        "document %s: %s %s",
                        "deleted" if i.document is None else "fetched",
                        i.resource_type,
                        i.resource_id,
                        extra={"trace_id": trace_ids[0] if trace_ids else None, "user_id": member.user_id},
                    )
            await self._remember(db, member.user_id, appends, fetch_started, now)
            await self._link(db, member, appends.touched)
        return list(appends.fresh)

    async def _lock(self, db: Executor, user_id: str, items: Sequence[Item]) -> dict[tuple[str, str], Stored]:
        """Row-lock every item's resource (created when new) and read what was last appended for it."""
        keys = sorted({(i.resource_type, i.resource_id) for i in items})
        await db.executemany(
            "INSERT INTO fetcher_resources (user_id, resource_type, resource_id) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            [(user_id, t, r) for t, r in keys],
        )
        rows = await db.fetch(
            "SELECT resource_type, resource_id, whoop_updated_at, score_state, deleted_at "
            "FROM fetcher_resources WHERE user_id = $1 AND (resource_type, resource_id) IN "
            "(SELECT * FROM unnest($2::text[], $3::text[])) "
            "ORDER BY resource_type, resource_id FOR UPDATE",
            user_id,
            [t for t, _ in keys],
            [r for _, r in keys],
        )
        return {
            (r["resource_type"], r["resource_id"]): Stored(
                r["whoop_updated_at"], r["score_state"], r["deleted_at"]
            )
            for r in rows
        }

    async def _remember(
        self, db: Executor, user_id: str, appends: Appends, fetch_started: datetime, now: datetime
    ) -> None:
        """Record what was appended: the documents remembered, then the deletions."""
        fresh_keys = appends.fresh_keys
        await db.executemany(
            """
            UPDATE fetcher_resources SET
                whoop_updated_at = CASE WHEN $8 THEN $4 ELSE whoop_updated_at END,
                score_state = CASE WHEN $8 THEN $5 ELSE score_state END,
                fetched_at = GREATEST(fetched_at, $6),
                published_at = CASE WHEN $8 THEN $7 ELSE published_at END,
                record_start = COALESCE($9, record_start),
                record_end = COALESCE($10, record_end),
                strain = CASE WHEN $8 THEN $11 ELSE strain END,
                nap_need_ms = CASE WHEN $8 THEN $12 ELSE nap_need_ms END,
                deleted_at = NULL
            WHERE user_id = $1 AND resource_type = $2 AND resource_id = $3
            """,
            [
                (
                    user_id,
                    i.resource_type,
                    i.resource_id,
                    parse_time(i.document.get("updated_at")) if i.document else None,
                    text(i.document.get("score_state")) if i.document else None,
                    fetch_started,
                    now,
                    (i.resource_type, i.resource_id) in fresh_keys,
                    parse_time(i.document.get("start")) if i.document else None,
                    parse_time(i.document.get("end")) if i.document else None,
                    *day_signals(i.resource_type, i.document),
                )
                for i in appends.touched
            ],
        )
        await db.executemany(
            "UPDATE fetcher_resources SET deleted_at = $4, fetched_at = GREATEST(fetched_at, $4), "
            "published_at = $4 WHERE user_id = $1 AND resource_type = $2 AND resource_id = $3",
            [(user_id, i.resource_type, i.resource_id, now) for i in appends.deletions],
        )

    async def _member_key(self, user_id: str) -> bytes | None:
        """The member's data key, created and committed before any document sealed with it is appended
        (a reader must find it); None when the member's erasure has begun."""
        async with self.pool.acquire() as db, db.transaction():
            if not await erasure_gate.admit(db, [user_id]):
                return None
            return await self.keys.ensure(db, user_id)

    async def _link(self, db: Executor, member: Member, items: Iterable[Item]) -> None:
        links: list[tuple[str, str, int, bool | None, datetime | None, datetime | None, str | None]] = []
        for item in items:
            doc = item.document
            if doc is None:
                continue
            cycle_id = doc.get("cycle_id")
            sleep_id = doc.get("sleep_id")
            if item.resource_type == "sleep" and isinstance(cycle_id, int):
                nap = doc.get("nap")
                links.append(
                    (
                        member.user_id,
                        item.resource_id,
                        cycle_id,
                        nap if isinstance(nap, bool) else None,
                        parse_time(doc.get("start")),
                        parse_time(doc.get("end")),
                        text(doc.get("timezone_offset")),
                    )
                )
            elif item.resource_type == "recovery" and isinstance(sleep_id, str):
                links.append((member.user_id, sleep_id, int(item.resource_id), False, None, None, None))
        if links:
            await db.executemany(
                """
                INSERT INTO fetcher_sleep_cycles
                    (user_id, sleep_id, cycle_id, nap, sleep_start, sleep_end, timezone_offset)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (user_id, sleep_id) DO UPDATE SET
                    cycle_id = EXCLUDED.cycle_id,
                    nap = COALESCE(EXCLUDED.nap, fetcher_sleep_cycles.nap),
                    sleep_start = COALESCE(EXCLUDED.sleep_start, fetcher_sleep_cycles.sleep_start),
                    sleep_end = COALESCE(EXCLUDED.sleep_end, fetcher_sleep_cycles.sleep_end),
                    timezone_offset =
                        COALESCE(EXCLUDED.timezone_offset, fetcher_sleep_cycles.timezone_offset),
                    updated_at = now()
                """,
                links,
            )

    async def sleep_link(self, user_id: str, sleep_id: str) -> SleepLink | None:
        """The stored link of a sleep, if the fetcher ever saw it (or its recovery)."""
        return (await self.sleep_links(user_id, [sleep_id])).get(sleep_id)

    async def sleep_links(self, user_id: str, sleep_ids: Sequence[str]) -> dict[str, SleepLink]:
        """The stored links of several sleeps (those known)."""
        rows = await self.pool.fetch(
            "SELECT sleep_id, cycle_id, nap, sleep_start, sleep_end, timezone_offset "
            "FROM fetcher_sleep_cycles "
            "WHERE user_id = $1 AND sleep_id = ANY($2)",
            user_id,
            list(sleep_ids),
        )
        return {
            r["sleep_id"]: SleepLink(
                r["sleep_id"],
                r["cycle_id"],
                r["nap"],
                _format_or_none(r["sleep_start"]),
                _format_or_none(r["sleep_end"]),
                r["timezone_offset"],
            )
            for r in rows
        }

    async def state(self, user_id: str, resource_type: str, resource_id: str) -> ResourceState | None:
        """What was last appended for a resource, or None."""
        row = await self.pool.fetchrow(
            "SELECT whoop_updated_at, score_state, fetched_at, deleted_at, trace_ids FROM fetcher_resources "
            "WHERE user_id = $1 AND resource_type = $2 AND resource_id = $3",
            user_id,
            resource_type,
            resource_id,
        )
        if row is None:
            return None
        return ResourceState(
            _format_or_none(row["whoop_updated_at"]),
            row["score_state"],
            row["fetched_at"],
            row["deleted_at"],
            tuple(row["trace_ids"]),
        )

    async def live_in_window(
        self, user_id: str, resource_type: str, start: datetime, end: datetime, fetched_before: datetime
    ) -> set[str]:
        """Resources appended (not deleted) whose record overlaps ``[start, end)``, fetched before a time."""
        rows = await self.pool.fetch(
            """
            SELECT resource_id FROM fetcher_resources
            WHERE user_id = $1 AND resource_type = $2 AND deleted_at IS NULL AND whoop_updated_at IS NOT NULL
              AND record_start < $4 AND (record_end IS NULL OR record_end >= $3) AND fetched_at < $5
            """,
            user_id,
            resource_type,
            start,
            end,
            fetched_before,
        )
        return {r["resource_id"] for r in rows}

    async def record_traces(
        self, db: Executor, user_id: str, resource_type: str, resource_id: str, trace_ids: Sequence[str]
    ) -> None:
        """Remember WHOOP trace ids whose work is done (a later duplicate is skipped); nothing for a
        member whose erasure has begun."""
        if not trace_ids or not await erasure_gate.admit(db, [user_id]):
            return
        await db.execute(
            """
            INSERT INTO fetcher_resources (user_id, resource_type, resource_id, trace_ids)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, resource_type, resource_id) DO UPDATE SET trace_ids =
                (fetcher_resources.trace_ids || EXCLUDED.trace_ids)[GREATEST(1,
                    cardinality(fetcher_resources.trace_ids) + cardinality(EXCLUDED.trace_ids) - $5 + 1):]
            """,
            user_id,
            resource_type,
            resource_id,
            list(trace_ids),
            _KEEP_TRACES,
        )


def _format_or_none(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds and ``Z``, as WHOOP writes it; None stays None."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
