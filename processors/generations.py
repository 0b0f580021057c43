"""Records generations: the registry of the records topics the normalizer writes (migration 0035).

A generation is a records topic: what one normalizer made of ``whoop.documents.v1``. Generation 1
is the configured records topic (``PROCESSORS_RECORDS_TOPIC``; its row has no topic). ``python -m
processors renormalize`` (``processors.renormalize``) registers generation N on the topic
``<records topic>.g<N>`` (``schemas.topics.generation_topic``) and fills it from the documents.

States: ``filling`` (its renormalizer has not reached the documents' end yet), ``complete`` (it
has; the live normalizer keeps it complete), ``dropped`` (no longer written). The live normalizer
writes each batch to the configured topic and to every generation not dropped
(:class:`LiveGenerations`, one query per batch), so a generation stays complete whether it is
served, being built, or kept for a rollback.

This module owns the table: every other reader goes through these functions. Each takes the
caller's connection and runs in the caller's transaction, if any.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from infra.errors import PipelineError

__all__ = [
    "Generation",
    "GenerationsUnavailable",
    "LiveGenerations",
    "State",
    "all_generations",
    "drop",
    "get",
    "mark_complete",
    "next_number",
    "register",
    "retained_topics",
    "set_copied",
    "set_documents_offsets",
    "try_lock",
]

Connection = asyncpg.Connection | PoolConnectionProxy
State = Literal["filling", "complete", "dropped"]
Offsets = Mapping[int, int]
_LOCK = "whoop-pipeline:renormalize:"
_COLUMNS = (
    "generation, topic, normalizer_version, state, since, documents_topic, documents_offsets::text AS"
    " documents_offsets, copied_from, copied_offsets::text AS copied_offsets, created_at, completed_at,"
    " dropped_at"
)


class GenerationsUnavailable(PipelineError):
    """PostgreSQL did not answer the registry query: the batch is redone later."""

    retriable = True


@dataclass(frozen=True)
class Generation:
    """One row of ``records_generations``."""

    number: int
    topic: str | None  # None: generation 1, the configured records topic
    normalizer_version: int | None  # None: whatever made generation 1
    state: State
    since: datetime | None
    documents_topic: str | None
    documents_offsets: Offsets | None
    copied_from: str | None
    copied_offsets: Offsets | None
    created_at: datetime
    completed_at: datetime | None
    dropped_at: datetime | None

    def topic_or(self, configured: str) -> str:
        """The records topic of this generation (generation 1: ``configured``)."""
        return self.topic or configured


def _offsets(raw: str | None) -> Offsets | None:
    return None if raw is None else {int(p): int(o) for p, o in json.loads(raw).items()}


def _dump(offsets: Offsets) -> str:
    return json.dumps({str(p): o for p, o in sorted(offsets.items())})


def _generation(row: asyncpg.Record) -> Generation:
    return Generation(
        number=row["generation"],
        topic=row["topic"],
        normalizer_version=row["normalizer_version"],
        state=row["state"],
        since=row["since"],
        documents_topic=row["documents_topic"],
        documents_offsets=_offsets(row["documents_offsets"]),
        copied_from=row["copied_from"],
        copied_offsets=_offsets(row["copied_offsets"]),
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        dropped_at=row["dropped_at"],
    )


async def all_generations(connection: Connection) -> list[Generation]:
    """Every generation, oldest first."""
    rows = await connection.fetch(f"SELECT {_COLUMNS} FROM records_generations ORDER BY generation")  # noqa: S608 - constants
    return [_generation(row) for row in rows]


async def get(connection: Connection, number: int) -> Generation | None:
    """Generation ``number``, or None."""
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM records_generations WHERE generation = $1",  # noqa: S608 - constants
        number,
    )
    return None if row is None else _generation(row)


async def retained_topics(connection: Connection) -> list[str]:
    """The topics of the registered generations not dropped (generation 1, the configured one, aside)."""
    rows = await connection.fetch(
        "SELECT topic FROM records_generations WHERE topic IS NOT NULL AND state <> 'dropped'"
        " ORDER BY generation"
    )
    return [row["topic"] for row in rows]


async def next_number(connection: Connection) -> int:
    """A fresh generation number (its topic is made before the generation is registered)."""
    return int(await connection.fetchval("SELECT nextval('records_generation_numbers')"))


async def register(
    connection: Connection,
    number: int,
    topic: str,
    *,
    normalizer_version: int,
    since: datetime | None,
    documents_topic: str,
) -> Generation:
    """Register generation ``number`` on ``topic`` (state ``filling``): the live normalizer writes it
    from the next batch that starts after the caller's transaction commits."""
    await connection.execute(
        "INSERT INTO records_generations"
        " (generation, topic, normalizer_version, state, since, documents_topic)"
        " VALUES ($1, $2, $3, 'filling', $4, $5)",
        number,
        topic,
        normalizer_version,
        since,
        documents_topic,
    )
    registered = await get(connection, number)
    if registered is None:  # pragma: no cover - inserted just above
        raise LookupError(f"generation {number} vanished after its registration")
    return registered


async def set_documents_offsets(connection: Connection, number: int, offsets: Offsets) -> None:
    """Record the documents' end offsets the renormalizer of generation ``number`` fills it to."""
    await connection.execute(
        "UPDATE records_generations SET documents_offsets = $2::jsonb WHERE generation = $1",
        number,
        _dump(offsets),
    )


async def set_copied(connection: Connection, number: int, source: str, offsets: Offsets) -> None:
    """Record that generation ``number`` holds a copy of ``source`` up to ``offsets`` (``--since``)."""
    await connection.execute(
        "UPDATE records_generations SET copied_from = $2, copied_offsets = $3::jsonb WHERE generation = $1",
        number,
        source,
        _dump(offsets),
    )


async def mark_complete(connection: Connection, number: int, offsets: Offsets) -> None:
    """Generation ``number``'s renormalizer reached ``offsets`` of the documents: it is complete."""
    await connection.execute(
        "UPDATE records_generations SET state = 'complete', completed_at = now(),"
        " documents_offsets = $2::jsonb WHERE generation = $1 AND state = 'filling'",
        number,
        _dump(offsets),
    )


async def drop(connection: Connection, number: int) -> None:
    """Stop writing generation ``number`` (its topic stays until someone deletes it)."""
    await connection.execute(
        "UPDATE records_generations SET state = 'dropped', dropped_at = now()"
        " WHERE generation = $1 AND generation > 1 AND state <> 'dropped'",
        number,
    )


async def try_lock(connection: Connection) -> bool:
    """Take the session lock only one renormalization holds at a time; False when another has it.

    Released when ``connection`` closes, however the renormalization ends.
    """
    base = str(await connection.fetchval("SELECT current_schema()"))
    return bool(
        await connection.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _LOCK + base)
    )


class LiveGenerations:
    """The topics the live normalizer writes besides its configured one, read once per batch."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def topics(self) -> tuple[str, ...]:
        """The retained generations' topics; GenerationsUnavailable (retriable) without PostgreSQL."""
        try:
            async with self._pool.acquire() as connection:
                return tuple(await retained_topics(connection))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise GenerationsUnavailable(
                f"the records generations cannot be read ({type(exc).__name__})"
            ) from exc
