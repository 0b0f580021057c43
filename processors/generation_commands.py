"""``python -m processors generations [--json] [--drop N [--yes]]``: list the generations, or drop one.

The list (stdout, a table or with ``--json`` one JSON document): number, topic, normalizer version,
state, ``--since``, when it was created, completed and dropped, and which one is served (the records
topic of the served read-model version, from ``python -m projections versions --json``). Dropping
generation N stops the live normalizer writing it from its next batch (its topic stays until someone
deletes it). Refused (exit 2, one line): an unknown generation, generation 1 (the configured records
topic, always written), the served one, stdin not a terminal without ``--yes``; PostgreSQL unreachable
fails (exit 1).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from infra.db import create_pool
from processors import generations
from processors.generations import Generation
from processors.projections_cli import ProjectionsFailed
from processors.renormalize import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, Projections, ask_on_terminal, where
from processors.settings import Settings

__all__ = ["document", "drop", "show", "table"]

Ask = Callable[[str], bool]


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def table(found: list[Generation], configured: str, served: str) -> Table:
    """The generations as a rich table (pure)."""
    shown = Table(title="records generations")
    for title in ("generation", "topic", "normalizer", "state", "since", "created", "completed", ""):
        shown.add_column(title)
    for generation in found:
        name = generation.topic_or(configured)
        shown.add_row(
            str(generation.number),
            name,
            "" if generation.normalizer_version is None else str(generation.normalizer_version),
            generation.state,
            _when(generation.since),
            _when(generation.created_at),
            _when(generation.completed_at),
            "served" if name == served else "",
        )
    return shown


def document(found: list[Generation], configured: str, served: str) -> dict[str, Any]:
    """The generations as one JSON document (pure)."""
    return {
        "served": served,
        "generations": [
            {
                "generation": g.number,
                "topic": g.topic_or(configured),
                "normalizer_version": g.normalizer_version,
                "state": g.state,
                "served": g.topic_or(configured) == served,
                "since": None if g.since is None else g.since.isoformat(),
                "documents_offsets": None if g.documents_offsets is None else dict(g.documents_offsets),
                "copied_from": g.copied_from,
                "created_at": g.created_at.isoformat(),
                "completed_at": None if g.completed_at is None else g.completed_at.isoformat(),
                "dropped_at": None if g.dropped_at is None else g.dropped_at.isoformat(),
            }
            for g in found
        ],
    }


async def _listed(settings: Settings) -> list[Generation]:
    pool = await create_pool(settings.postgres, migrate=True, max_size=1)
    try:
        async with pool.acquire() as connection:
            return await generations.all_generations(connection)
    finally:
        await pool.close()


async def show(
    settings: Settings, projections: Projections, out: Console, err: Console, *, as_json: bool = False
) -> int:
    """Print the generations (a table, or one JSON document); the exit code."""
    configured = settings.processors.records_topic
    try:
        found = await _listed(settings)
        served = await projections.serving_topic(configured)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        err.print(_unreachable(settings, exc), markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    except ProjectionsFailed as exc:
        err.print(f"generations failed: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    if as_json:
        out.print(json.dumps(document(found, configured, served), indent=2), markup=False, highlight=False)
    else:
        out.print(table(found, configured, served))
    return EXIT_OK


def _unreachable(settings: Settings, exc: BaseException) -> str:
    return (
        f"generations failed: PostgreSQL unreachable or failing at {where(settings.postgres.database_url)}: "
        f"{type(exc).__name__}"
    )


async def drop(
    settings: Settings, number: int, *, yes: bool, projections: Projections, ask: Ask | None, err: Console
) -> int:
    """Stop writing generation ``number``; the exit code."""

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    if not yes and ask is None and not sys.stdin.isatty():
        say("refused, nothing changed: stdin is not a terminal: pass --yes to drop without a question")
        return EXIT_REFUSED
    configured = settings.processors.records_topic
    try:
        found = {g.number: g for g in await _listed(settings)}
        served = await projections.serving_topic(configured)
        target = found.get(number)
        if target is None:
            known = ", ".join(str(n) for n in sorted(found)) or "none"
            say(f"refused, nothing changed: no records generation {number} (generations: {known})")
            return EXIT_REFUSED
        if target.topic is None:
            say(f"refused, nothing changed: generation 1 is the configured records topic {configured}")
            return EXIT_REFUSED
        if target.topic == served:
            say(
                f"refused, nothing changed: generation {number} ({target.topic}) is served: serve another "
                "read-model version first (python -m projections rollback or switch)"
            )
            return EXIT_REFUSED
        question = (
            f"Stop writing generation {number} ({target.topic})? Read-model versions built from it no "
            "longer receive new records: drop them too (python -m projections drop)."
        )
        if not yes and not (ask or ask_on_terminal)(question):
            say("refused, nothing changed: not confirmed")
            return EXIT_REFUSED
        pool = await create_pool(settings.postgres, migrate=False, max_size=1)
        try:
            async with pool.acquire() as connection:
                await generations.drop(connection, number)
        finally:
            await pool.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        say(_unreachable(settings, exc))
        return EXIT_FAILED
    except ProjectionsFailed as exc:
        say(f"generations failed: {exc}")
        return EXIT_FAILED
    say(f"dropped: generation {number} ({target.topic}) is no longer written; its topic is kept")
    return EXIT_OK
