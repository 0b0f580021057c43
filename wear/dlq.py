"""``wear dlq``: the dead-letter topics: list them and their letters, show a letter decoded, redrive.

The pipeline dead-letters what a stage cannot process to the stage's input topic's twin ``<topic>.dlq``
(``schemas.topics``): the fetcher's ``whoop.webhooks.v1.dlq`` and ``whoop.connections.v1.dlq``, the
normalizer's ``whoop.documents.v1.dlq`` and the projections' ``wear.records.v1.dlq``. A letter
(``schemas.events.DeadLetter``) keeps the raw value (sealed with the member's data key), its origin
offset, the stage, and the error. A letter's id is ``<partition>:<offset>`` in its DLQ topic
(``wear.dlq_log``). Redrive semantics are in ``wear.dlq_redrive``; the settings, the clients and the
reading and decoding of letters in ``wear.dlq_access``.
"""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table

from infra.appender import DurableAppender
from infra.member_keys import MemberKeys, PooledKeys
from infra.progress_bar import progress_bar
from projections.commands import configure_logging
from wear.common import STDERR, STDOUT, JsonOption, print_json, run, usage
from wear.dlq_access import (
    DlqSettings,
    decoded,
    nonempty_snapshot,
    open_consumer,
    open_pool,
    read_all_letters,
)
from wear.dlq_fetcher import FetcherIntake
from wear.dlq_log import counts, dlq_topics, parse_id, read_letters, resolve_dlq
from wear.dlq_redrive import Redriver, Result, redrive_state

__all__ = ["DlqSettings", "register"]

group = typer.Typer(
    help="Dead-letter topics: list them and their letters, show one decoded, redrive after a fix.",
    no_args_is_help=True,
)

TopicArgument = Annotated[
    str, typer.Argument(help="A DLQ topic, e.g. whoop.documents.v1.dlq (or its source, whoop.documents.v1).")
]
IdsOption = Annotated[
    list[str] | None, typer.Option("--id", help="A letter's id, <partition>:<offset>; repeat for more.")
]


# --- list --------------------------------------------------------------------------------------


async def _list_all(settings: DlqSettings, as_json: bool) -> None:
    async with open_consumer(settings.kafka) as consumer:
        topics = await dlq_topics(consumer, settings.pipeline_topics)
        found = await counts(settings.kafka, consumer, topics)
    if as_json:
        print_json({"topics": [{"topic": topic, "count": count} for topic, count in found.items()]})
        return
    table = Table("DLQ topic", "letters", title="Dead-letter topics")
    for topic, count in found.items():
        table.add_row(topic, f"{count:,}")
    STDOUT.print(table)
    STDOUT.print(f"{sum(found.values()):,} dead letters in {len(found)} topics", highlight=False)


async def _list_topic(settings: DlqSettings, name: str, as_json: bool) -> None:
    async with open_consumer(settings.kafka) as consumer:
        topic = await resolve_dlq(consumer, name)
        letters = await read_all_letters(settings.kafka, consumer, topic, None)
    async with open_pool(settings.postgres) as pool:
        state = await redrive_state(pool, topic)
    rows = [{**letter.summary(), "redriven": state.get(letter.id)} for letter in letters]
    if as_json:
        print_json({"topic": topic, "count": len(rows), "letters": rows})
        return
    table = Table(title=topic)
    for name in ("id", "written at (UTC)", "user", "stage", "error"):
        table.add_column(name, no_wrap=True)
    table.add_column("reason", ratio=1)
    table.add_column("redrive", no_wrap=True)
    for row in rows:
        reason = str(row["reason"])
        redrive = [str(row["redriven"] or "")]
        if row["redrive_of"]:
            redrive.append(f"(copy of {row['redrive_of']})")
        table.add_row(
            str(row["id"]),
            str(row["written_at"])[:19].replace("T", " "),
            _short(str(row["user_id"])),
            str(row["stage"]),
            str(row["error_type"]),
            reason if len(reason) <= 160 else reason[:159] + "…",
            " ".join(part for part in redrive if part),
        )
    STDOUT.print(table)
    STDOUT.print(f"{len(rows):,} dead letters in {topic}", highlight=False)


def _short(user_id: str) -> str:
    """A user id as the table shows it (``--json`` has it whole)."""
    return user_id if len(user_id) <= 13 else user_id[:12] + "…"


@group.command("list")
def list_(
    topic: Annotated[
        str | None,
        typer.Argument(help="A DLQ topic: list its letters (without it: every DLQ, counted)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the pipeline's DLQ topics with their counts, or the letters of one DLQ topic.

    A letter's id is <partition>:<offset>; "redriven" says whether wear dlq redrive handled it.

    Example:

        $ wear dlq list
        $ wear dlq list whoop.documents.v1.dlq
        $ wear dlq list wear.records.v1.dlq --json | jq '.letters[].id'
    """
    configure_logging()
    settings = DlqSettings.from_env()
    run(_list_all(settings, as_json) if topic is None else _list_topic(settings, topic, as_json))


# --- show --------------------------------------------------------------------------------------


_SHOWN = ("written_at", "key", "stage", "origin", "failed_at", "error_type", "reason", "redrive_of")


async def _show(settings: DlqSettings, name: str, ids: list[str] | None, as_json: bool) -> None:
    async with open_consumer(settings.kafka) as consumer:
        topic = await resolve_dlq(consumer, name)
        letters = await read_all_letters(settings.kafka, consumer, topic, ids)
    async with open_pool(settings.postgres) as pool:
        keys = PooledKeys(pool, MemberKeys(settings.vault.keyring()))
        shown = [await decoded(keys, letter) for letter in letters]
    if as_json:
        print_json({"topic": topic, "letters": shown})
        return
    for item in shown:
        STDOUT.rule(f"{topic} {item['id']}")
        for label in (
            "written_at",
            "key",
            "stage",
            "origin",
            "failed_at",
            "error_type",
            "reason",
            "redrive_of",
        ):
            if item.get(label) is not None:
                STDOUT.print(f"[bold]{label}[/bold]: ", end="")
                STDOUT.print(str(item[label]), markup=False, highlight=False)
        if item.get("value_note"):
            STDOUT.print(f"[bold]value[/bold]: {item['value_note']}", highlight=False)
        else:
            STDOUT.print("[bold]value[/bold]:")
            STDOUT.print_json(orjson.dumps(item["value"]).decode())


@group.command("show")
def show(topic: TopicArgument, ids: IdsOption = None, as_json: JsonOption = False) -> None:
    """Show dead letters decoded: the error, where the record came from, and its value opened.

    Without --id, every letter of the topic. Sealed values are opened with the member's data key.

    Example:

        $ wear dlq show whoop.documents.v1.dlq --id 2:0
        $ wear dlq show wear.records.v1.dlq --json | jq '.letters[].value'
    """
    configure_logging()
    settings = DlqSettings.from_env()
    run(_show(settings, topic, ids, as_json))


# --- redrive -----------------------------------------------------------------------------------


async def _redrive(
    settings: DlqSettings, name: str, ids: list[str] | None, dry_run: bool, as_json: bool
) -> list[Result]:
    results: list[Result] = []
    async with open_consumer(settings.kafka) as consumer:
        topic = await resolve_dlq(consumer, name)
        shot = await nonempty_snapshot(settings.kafka, consumer, topic)  # its own new letters come after it
        wanted = None if not ids else [parse_id(text) for text in ids]
        for partition, offset in wanted or ():
            if not shot.holds(partition, offset):
                usage(f"unknown id {partition}:{offset} in {topic}: see wear dlq list {topic}")
        async with open_pool(settings.postgres) as pool:
            appender = None if dry_run else await DurableAppender.start(settings.kafka, "wear-dlq-redrive")
            try:
                keyring = MemberKeys(settings.vault.keyring())
                redriver = Redriver(
                    pool,
                    PooledKeys(pool, keyring),
                    appender,
                    settings.records_topic,
                    settings.projections_records_topic,
                    dry_run=dry_run,
                    fetcher=FetcherIntake(pool, appender, settings.fetcher, keyring),
                )
                total = len(wanted) if wanted is not None else shot.count
                with progress_bar(STDERR) as bar:
                    task = bar.add_task(
                        f"{'dry run of ' if dry_run else ''}redrive {topic}", total=total, unit="letters"
                    )
                    async for batch in read_letters(consumer, shot, wanted):
                        for letter in batch:
                            results.append(await redriver.redrive(letter))
                            bar.advance(task)
                    bar.update(task, completed=total)
            finally:
                if appender is not None:
                    await appender.stop()
    if wanted is not None:
        missing = set(wanted) - {parse_id(result.id) for result in results}
        if missing:
            usage(f"unknown id {'{}:{}'.format(*min(missing))} in {topic}: no letter there (compacted away?)")
    _report(topic, results, dry_run, as_json)
    return results


_SAID = {
    "dead_lettered": "back in the DLQ",
    "already_redriven": "already redriven",
    "not_redrivable": "not redrivable",
    "would_land": "would land",
    "would_fail": "would fail",
}


def _report(topic: str, results: list[Result], dry_run: bool, as_json: bool) -> None:
    tally: dict[str, int] = {}
    for result in results:
        tally[result.outcome] = tally.get(result.outcome, 0) + 1
    if as_json:
        print_json(
            {
                "topic": topic,
                "dry_run": dry_run,
                "succeeded": sum(1 for r in results if r.succeeded),
                "failed": sum(1 for r in results if not r.succeeded),
                "outcomes": tally,
                "letters": [result.as_json() for result in results],
            }
        )
        return
    table = Table(
        "id", "stage", "outcome", "detail", title=f"{'dry run: ' if dry_run else ''}redrive {topic}"
    )
    for result in results:
        style = "green" if result.succeeded else "red"
        table.add_row(result.id, str(result.stage), f"[{style}]{result.outcome}[/{style}]", result.detail)
    STDOUT.print(table)
    summary = ", ".join(f"{count} {_SAID.get(outcome, outcome)}" for outcome, count in sorted(tally.items()))
    STDOUT.print(f"{'dry run: ' if dry_run else ''}{len(results)} letters: {summary}", highlight=False)


@group.command("redrive")
def redrive(
    topic: TopicArgument,
    ids: IdsOption = None,
    every: Annotated[bool, typer.Option("--all", help="Every letter in the DLQ now.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen; write nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Send dead letters back through their stage after a fix; report, per letter, what happened.

    Each letter goes through its stage's own code on its original value: the normalizer's letters
    become records on the records topic, the projections' letters are applied to the served read
    models, the fetcher's (webhooks, connections) go through the fetcher's intake: their fetch task
    is queued in PostgreSQL and the running fetchers fetch it. A letter is redriven once: a second
    redrive of it is skipped (already_redriven). One that fails again goes back to the DLQ once, as a
    new letter marked as a redrive of the old one; a run never redrives the letters it added.
    Outcomes: landed, dead_lettered, already_redriven, erased, not_redrivable; with --dry-run,
    would_land or would_fail.
    Exit 0 once every letter was tried (see each outcome), 2 for an unknown topic or id or an empty DLQ.

    Example:

        $ wear dlq redrive whoop.documents.v1.dlq --id 2:0 --dry-run
        $ wear dlq redrive whoop.documents.v1.dlq --all
        $ wear dlq redrive whoop.connections.v1.dlq --id 0:3
        $ wear dlq redrive wear.records.v1.dlq --all --json | jq '.letters[] | select(.succeeded | not)'
    """
    if every == bool(ids):
        raise typer.BadParameter("give --id ID (one or more) or --all, not both", param_hint="--id/--all")
    configure_logging()
    settings = DlqSettings.from_env()
    run(_redrive(settings, topic, ids, dry_run, as_json))


def register(app: typer.Typer) -> None:
    """Add ``wear dlq`` to ``app``."""
    app.add_typer(group, name="dlq")
