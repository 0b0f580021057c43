"""``wear status``: the pipeline on one screen: consumer lag, dead letters, the WHOOP quota, connections
needing re-authorization, backfills and rebuilds in progress.

Read only. The settings are the stages' own (``FETCHER_*``, ``PROCESSORS_*``, ``PROJECTIONS_*``,
``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``), so ``wear status`` sees the groups and topics the
processes use. ``--watch`` redraws the screen every ``--interval`` seconds until Ctrl-C (exit 0).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.live import Live

from processors.settings import FetcherSettings, ProcessorsSettings
from projections.commands import configure_logging
from projections.settings import ProjectionsSettings
from wear.common import EXIT_USAGE, STDERR, STDOUT, JsonOption, print_json, print_json_line, run
from wear.status_model import status_json
from wear.status_reads import StatusSettings, open_sources
from wear.status_view import render

__all__ = ["register", "status"]


async def _status(settings: StatusSettings, *, watch: bool, interval: float, as_json: bool) -> None:
    async with open_sources(settings) as sources:
        if not watch:
            taken = await sources.take()
            if as_json:
                print_json(status_json(taken))
            else:
                STDOUT.print(render(taken))
            return
        if as_json:
            while True:
                print_json_line(status_json(await sources.take()))
                await asyncio.sleep(interval)
        with Live(render(await sources.take()), console=STDOUT, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                live.update(render(await sources.take()), refresh=True)


def status(
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw every --interval seconds until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, max=3600, help="Seconds between two redraws with --watch.")
    ] = 2.0,
    as_json: JsonOption = False,
) -> None:
    """The pipeline on one screen: consumer lag per group and partition (Kafka-committed groups and the
    projections, whose offsets live in PostgreSQL), messages in each dead-letter topic, the WHOOP quota
    used and left in the current minute and day by priority, connections needing re-authorization,
    backfills and rebuilds in progress.

    With --json: one JSON document (JSON lines, one per refresh, with --watch).

    Example:

        $ wear status
        $ wear status --watch --interval 5
        $ wear status --json | jq '.consumer_groups[] | {group, lag}'
    """
    configure_logging()
    settings = _settings()
    try:
        run(_status(settings, watch=watch, interval=interval, as_json=as_json))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _settings() -> StatusSettings:
    """The stages' settings from the environment; a bad one exits 2 in one line naming the variable."""
    try:
        return StatusSettings.from_env()
    except ValidationError as exc:
        names = ", ".join(_names(exc))
        STDERR.print(f"error: bad setting: {names or 'environment'}", markup=False, highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


def _names(exc: ValidationError) -> list[str]:
    """The environment variables ``exc`` is about (prefix included), never their values."""
    prefix = next(
        (
            str(part.model_config.get("env_prefix", ""))
            for part in (FetcherSettings, ProcessorsSettings, ProjectionsSettings)
            if part.__name__ == exc.title
        ),
        "",
    )
    return sorted({f"{prefix}{error['loc'][0]}".upper() for error in exc.errors() if error["loc"]})


def register(app: typer.Typer) -> None:
    """Add ``wear status`` to ``app``."""
    app.command("status")(status)
