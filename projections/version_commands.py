"""``python -m projections versions | switch | rollback | drop``: the read-model versions, by hand.

- ``versions [--json]``: every version (number, state, served or previous, records topic, bulk,
  created/verified/switched times, live row counts), as a table or as one JSON document;
- ``switch VERSION [--force] [--yes]``: serve VERSION (verified, or served before; ``--force`` for a
  version still ``building``), in one transaction that advances the epoch (``versions.switch``);
- ``rollback [--yes]``: serve the previous version again;
- ``drop VERSION [--yes]``: delete a version's tables and stored offsets (never the served one; not
  a ``building`` one while a rebuild runs).

Only PostgreSQL is needed: a rollback works while Kafka is away. After a switch or a rollback the
live projection writes the version switched to from its stored offsets on, so a version that
stopped being written (a retired one, or a verified one not served by its rebuild) catches up by
itself. Refusals exit 2, PostgreSQL unreachable exits 1, one line each (``projections.commands``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import uvloop
from rich.console import Console
from rich.table import Table

from infra.db import create_pool

from . import versions
from .commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    LOCK_TIMEOUT,
    STDERR,
    Ask,
    Failed,
    Refused,
    ask_on_terminal,
    postgres_errors,
    refuse_off_terminal,
    say,
)
from .read_model_ddl import VERSIONED_TABLES
from .settings import Settings
from .versions import Connection, Version

__all__ = ["command", "drop", "listing", "rollback", "row_counts", "show", "switch"]


async def row_counts(connection: Connection, version: Version) -> dict[str, int]:
    """The live row count of every table of ``version``."""
    schema = '"' + version.schema.replace('"', '""') + '"'
    union = " UNION ALL ".join(
        f"SELECT '{table}' AS t, count(*) AS n FROM {schema}.{table}"  # noqa: S608 - a quoted registry name
        for table in VERSIONED_TABLES
    )
    return {row["t"]: int(row["n"]) for row in await connection.fetch(union)}


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def listing(
    all_versions: list[Version],
    served: int,
    previous: int | None,
    counts: dict[int, dict[str, int]],
    settings: Settings,
) -> dict[str, Any]:
    """The JSON document of ``versions --json`` (pure)."""
    own = settings.projections
    return {
        "serving": served,
        "previous": previous,
        "versions": [
            {
                "number": v.number,
                "state": v.state,
                "serving": v.number == served,
                "previous": v.number == previous,
                "schema": v.schema,
                "records_topic": v.topic(own.records_topic),
                "offsets_group": v.group(own.group_id),
                "bulk": v.bulk,
                "created_at": _when(v.created_at),
                "caught_up_at": _when(v.caught_up_at),
                "verified_at": _when(v.verified_at),
                "switched_at": _when(v.switched_at),
                "rows": counts[v.number],
                "verification": v.verification,
            }
            for v in all_versions
        ],
    }


def _short(moment: str | None) -> str:
    return "" if moment is None else moment[:16].replace("T", " ")


def _table(document: dict[str, Any]) -> Table:
    table = Table()
    for column in ("", "version", "state", "records topic", "bulk", "created", "verified", "switched"):
        table.add_column(column)
    table.add_column("rows", justify="right")
    for v in document["versions"]:
        mark = "serving" if v["serving"] else "previous" if v["previous"] else ""
        table.add_row(
            mark,
            str(v["number"]),
            v["state"],
            v["records_topic"],
            "yes" if v["bulk"] else "",
            _short(v["created_at"]),
            _short(v["verified_at"]),
            _short(v["switched_at"]),
            f"{sum(v['rows'].values()):,}",
        )
    return table


@asynccontextmanager
async def _connection(settings: Settings) -> AsyncIterator[Connection]:
    with postgres_errors(settings):
        pool = await create_pool(settings.postgres, migrate=True, max_size=2)
    try:
        async with pool.acquire() as connection:
            yield connection
    finally:
        await pool.close()


async def show(settings: Settings, *, as_json: bool = False, console: Console | None = None) -> int:
    """``versions``: print every version; the exit code."""

    async def listed() -> None:
        async with _connection(settings) as connection:
            all_versions = await versions.all_versions(connection)
            served = await versions.serving(connection)
            before = await versions.previous(connection)
            counts = {v.number: await row_counts(connection, v) for v in all_versions}
        document = listing(
            all_versions, served.number, None if before is None else before.number, counts, settings
        )
        if as_json:
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        else:
            # piped: wide enough for every column rather than the 80 columns of a pipe
            (console or Console(width=None if sys.stdout.isatty() else 200)).print(_table(document))

    return await _outcome("versions", settings, listed)


async def _not_served(connection: Connection, number: int, refusal: Exception) -> tuple[Version, Version]:
    """Version ``number`` and the served one; ``refusal`` raised when ``number`` is the one served."""
    target = await versions.get(connection, number)
    served = await versions.serving(connection)
    if target.number == served.number:
        raise refusal
    return target, served


def _confirmed(yes: bool, ask: Ask | None, question: str) -> None:
    """Ask (on the terminal unless ``ask`` is given) unless ``yes``; Refused when the answer is no."""
    if not yes and not (ask or ask_on_terminal)(question):
        raise Refused("not confirmed: nothing changed")


async def switch(
    settings: Settings,
    number: int,
    *,
    force: bool = False,
    yes: bool = False,
    ask: Ask | None = None,
    console: Console | None = None,
) -> int:
    """``switch VERSION``: serve version ``number``; the exit code."""
    console = console or STDERR

    async def switched() -> None:
        refuse_off_terminal(yes, ask)
        async with _connection(settings) as connection:
            target, served = await _not_served(
                connection, number, Refused(f"version {number} is already served")
            )
            if target.state == "building" and not force:
                raise versions.NotVerified(
                    f"version {number} is not verified (its rebuild has not finished): "
                    "use --force to serve it anyway"
                )
            rows = sum((await row_counts(connection, target)).values())
            topic = target.topic(settings.projections.records_topic)
            _confirmed(
                yes,
                ask,
                f"Serve version {number} ({target.state}, from {topic}, {rows:,} rows) instead of version "
                f"{served.number}? The query API switches at once; the live projection writes version "
                f"{number} from its stored offsets on.",
            )
            async with connection.transaction():
                await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                old, new = await versions.switch(connection, number, force=force)
        say(
            console,
            f"switched: version {new.number} serves (was version {old.number}); "
            "`python -m projections rollback` switches back",
        )

    return await _outcome("switch", settings, switched, console)


async def rollback(
    settings: Settings, *, yes: bool = False, ask: Ask | None = None, console: Console | None = None
) -> int:
    """``rollback``: serve the previous version again; the exit code."""
    console = console or STDERR

    async def rolled_back() -> None:
        refuse_off_terminal(yes, ask)
        async with _connection(settings) as connection:
            served = await versions.serving(connection)
            before = await versions.previous(connection)
            if before is None:
                raise versions.NoPrevious(
                    "no previous read-model version to roll back to (none served before, or dropped)"
                )
            _confirmed(
                yes,
                ask,
                f"Serve version {before.number} again instead of version {served.number}? "
                "The query API switches at once.",
            )
            async with connection.transaction():
                await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                old, new = await versions.rollback(connection)
        say(console, f"rolled back: version {new.number} serves again (was version {old.number})")

    return await _outcome("rollback", settings, rolled_back, console)


async def drop(
    settings: Settings,
    number: int,
    *,
    yes: bool = False,
    ask: Ask | None = None,
    console: Console | None = None,
) -> int:
    """``drop VERSION``: delete version ``number``'s tables and stored offsets; the exit code."""
    console = console or STDERR

    async def dropped() -> None:
        refuse_off_terminal(yes, ask)
        async with _connection(settings) as connection:
            target, _ = await _not_served(
                connection,
                number,
                versions.ServingVersion(
                    f"version {number} is served: switch to another version before dropping it"
                ),
            )
            # a rebuild holds this lock for its whole run: while it runs, a building version may be its
            if target.state == "building" and not await versions.try_rebuild_lock(connection):
                raise Refused(
                    f"a rebuild is running and version {number} is building: stop the rebuild first"
                )
            try:
                before = await versions.previous(connection)
                rows = sum((await row_counts(connection, target)).values())
                last = before is not None and before.number == number
                _confirmed(
                    yes,
                    ask,
                    f"Drop version {number} ({target.state}, schema {target.schema}, {rows:,} rows)? Its "
                    "tables and stored offsets are deleted"
                    + ("; it is the rollback target: no rollback after this." if last else "."),
                )
                async with connection.transaction():
                    await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    await versions.drop(connection, number)
            finally:
                await connection.execute("SELECT pg_advisory_unlock_all()")
        say(console, f"dropped: version {number} (schema {target.schema})")

    return await _outcome("drop", settings, dropped, console)


async def _outcome(
    name: str, settings: Settings, action: Callable[[], Awaitable[None]], console: Console | None = None
) -> int:
    """Run ``action``; its refusal or failure as one line, and the exit code."""
    console = console or STDERR
    try:
        with postgres_errors(settings):
            await action()
    except (Refused, versions.VersionError) as exc:
        say(console, f"{name} refused: {exc}")
        return EXIT_REFUSED
    except Failed as exc:
        say(console, f"{name} failed: {exc}")
        return EXIT_FAILED
    return EXIT_OK


def command(name: str, settings: Settings, **options: Any) -> int:
    """``python -m projections NAME ...`` for NAME among versions, switch, rollback, drop."""
    actions: dict[str, Callable[..., Coroutine[Any, Any, int]]] = {
        "versions": show,
        "switch": switch,
        "rollback": rollback,
        "drop": drop,
    }
    try:
        return uvloop.run(actions[name](settings, **options))
    except KeyboardInterrupt:  # at the question: nothing changed
        say(STDERR, "interrupted: nothing changed")
        return EXIT_INTERRUPTED
