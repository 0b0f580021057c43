"""``wear users list|show|disconnect|erase``: the members the pipeline serves.

``list`` and ``show`` print who is connected and how their sync is doing, never a token and never a
value of their health data (``show`` counts their records per type in the served read models).
``disconnect`` does what the phone's disconnect does (``ingest.connect.disconnect``: the grant revoked
at WHOOP, ``UserDisconnected`` appended, their WHOOP tokens deleted and API tokens revoked); ``erase``
is Step 6's erasure (``ingest.erasure``). Both ask on a terminal; ``--yes`` answers for scripts, and
without it a command whose stdin is not a terminal refuses (exit 2, nothing changed).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Column, Table

from infra.progress_bar import progress_bar
from ingest import connect
from ingest.erase_command import summary_line
from ingest.errors import AppendUnavailable, WhoopError
from projections.commands import ask_on_terminal, say
from wear.common import STDERR, STDOUT, JsonOption, fail, print_json, run, usage
from wear.users_edge import Edge, edge, edge_settings, known_user, user_id_of
from wear.users_erase import STEPS, erase_member
from wear.users_reads import member_rows, record_counts

__all__ = ["register"]

Status = Literal["connected", "needs_reauth", "disconnected"]
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask (required when stdin is not a terminal).")]
UserArgument = Annotated[str, typer.Argument(help="Our user id (uuid) or the member's WHOOP id (digits).")]


def _refuse_off_terminal(yes: bool, what: str) -> None:
    if not yes and not sys.stdin.isatty():
        usage(f"refusing to {what} without --yes when stdin is not a terminal; nothing changed")


async def _confirmed(yes: bool, question: str, what: str) -> None:
    if yes:
        return
    if not await asyncio.to_thread(ask_on_terminal, question):
        usage(f"not confirmed; nothing {what}")


def _when(value: object) -> str:
    return "-" if value is None else str(value)[:16].replace("T", " ")


def _kafka_failure(world: Edge, exc: AppendUnavailable) -> str:
    servers = world.settings.kafka.kafka_bootstrap_servers
    return f"Kafka unreachable or failing at {servers}: {exc.code}; run it again"


# ---------------------------------------------------------------------------------------------- list


async def _list(status: Status | None, limit: int, as_json: bool) -> None:
    async with edge(edge_settings()) as world:
        members = await member_rows(world.pool, status=status, limit=limit)
    if as_json:
        print_json({"members": members, "count": len(members)})
        return
    table = Table(
        Column("user id", no_wrap=True, min_width=36),
        Column("WHOOP id", no_wrap=True),
        "status",
        "connected",
        "last sync",
        "last record",
        "re-auth",
    )
    for m in members:
        table.add_row(
            m["user_id"],
            str(m["whoop_user_id"]),
            m["status"],
            _when(m["connected_at"]),
            _when(m["last_sync_at"]),
            _when(m["last_record_at"]),
            "yes" if m["needs_reauth"] else "",
        )
    (STDOUT if STDOUT.is_terminal else Console(width=160)).print(table)  # ids never cut in a pipe
    say(STDOUT, f"{len(members)} members" + (f" ({status})" if status else ""))


# ---------------------------------------------------------------------------------------------- show


async def _show(user: str, as_json: bool) -> None:
    async with edge(edge_settings()) as world:
        connection = await known_user(world, user)
        members = await member_rows(world.pool, user_id=connection.user_id, limit=1)
        version, counts = await record_counts(world.pool, connection.user_id)
    member: dict[str, Any] = {**members[0], "read_model_version": version, "records": counts}
    if as_json:
        print_json(member)
        return
    table = Table.grid(padding=(0, 2))
    for name in ("user_id", "whoop_user_id", "status", "needs_reauth", "connected_at", "disconnected_at"):
        table.add_row(name, str(member[name]) if member[name] is not None else "-")
    for name in ("last_sync_at", "last_webhook_at", "last_record_at", "records_applied"):
        table.add_row(name, str(member[name]) if member[name] is not None else "-")
    pull = member["last_pull"]
    table.add_row(
        "last_pull", "-" if pull is None else f"{pull['job_id']} {pull['status']} {pull['requested_at']}"
    )
    table.add_row("read model", f"version {version}")
    for name, count in counts.items():
        table.add_row(f"  {name}", str(count))
    (STDOUT if STDOUT.is_terminal else Console(width=160)).print(table)


# ---------------------------------------------------------------------------------------- disconnect


async def _disconnect(user: str, yes: bool, as_json: bool) -> None:
    user_id_of(user)
    _refuse_off_terminal(yes, "disconnect")
    settings = edge_settings(uses_secrets=True)
    async with edge(settings) as world:
        connection = await known_user(world, user)
        if connection.status == "disconnected":
            usage(f"user {connection.user_id} is already disconnected")
        await _confirmed(
            yes,
            f"Disconnect user {connection.user_id} (WHOOP member {connection.whoop_user_id}): revoke the "
            "WHOOP grant, delete their WHOOP tokens and revoke their API tokens?",
            "disconnected",
        )
        await world.open_kafka()
        world.open_whoop()
        try:
            revoked = await connect.disconnect(world.services, connection.user_id, connection.whoop_user_id)
        except AppendUnavailable as exc:
            fail(_kafka_failure(world, exc))
        except WhoopError as exc:
            fail(f"WHOOP refused or unreachable while revoking the grant: {exc.code}; run it again")
    if as_json:
        print_json({"user_id": connection.user_id, "status": "disconnected", "api_tokens_revoked": revoked})
    else:
        say(
            STDOUT,
            f"disconnected user {connection.user_id}: WHOOP grant revoked, {revoked} API tokens revoked",
        )


# --------------------------------------------------------------------------------------------- erase


async def _erase(user: str, yes: bool, as_json: bool) -> None:
    user_id_of(user)
    _refuse_off_terminal(yes, "erase")
    settings = edge_settings(uses_secrets=True)
    started = time.monotonic()
    async with edge(settings) as world:
        connection = await known_user(world, user)
        user_id = connection.user_id
        await _confirmed(
            yes,
            f"Erase user {user_id}: every row, and every value of theirs on Kafka? This cannot be undone.",
            "erased",
        )
        await world.open_kafka()
        world.open_whoop()
        with progress_bar(STDERR) as bar:
            task = bar.add_task(f"erase {user_id[:8]}", total=len(STEPS), unit="steps")

            async def on_step(step: str) -> None:
                done = STEPS.index(step) if step in STEPS else len(STEPS)
                bar.update(task, completed=done, description=f"erase {user_id[:8]}: {step}")

            try:
                job_id, progress = await erase_member(world, user_id, on_step)
            except AppendUnavailable as exc:
                fail(_kafka_failure(world, exc) + " (every step is safe to repeat)")
            bar.update(task, completed=len(STEPS), description=f"erase {user_id[:8]}: done")
    seconds = time.monotonic() - started
    if as_json:
        print_json(
            {"user_id": user_id, "job_id": job_id, "status": "done", "seconds": round(seconds, 3), **progress}
        )
    else:
        say(STDOUT, summary_line(user_id, progress, seconds))


# ------------------------------------------------------------------------------------------ commands


def register(app: typer.Typer) -> None:
    """Add the ``wear users`` group to ``app``."""
    group = typer.Typer(
        help="The members: list, show, disconnect, erase.", no_args_is_help=True, rich_markup_mode="rich"
    )

    @group.command("list")
    def list_(
        status: Annotated[
            Status | None, typer.Option("--status", help="Only members with this connection status.")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many members.")] = 1000,
        as_json: JsonOption = False,
    ) -> None:
        """List members: ids, status, connected and last sync times, re-auth needed.

        No token and no health data is shown.

        Example:

            $ wear users list --status needs_reauth

        Exit status: 0 listed; 1 PostgreSQL unreachable; 2 bad usage.
        """
        run(_list(status, limit, as_json))

    @group.command("show")
    def show(user: UserArgument, as_json: JsonOption = False) -> None:
        """Show one member: connection, sync times, latest pull, records per type (counts only).

        Example:

            $ wear users show 10129 --json

        Exit status: 0 shown; 1 PostgreSQL unreachable; 2 unknown user.
        """
        run(_show(user, as_json))

    @group.command("disconnect")
    def disconnect(user: UserArgument, yes: YesOption = False, as_json: JsonOption = False) -> None:
        """Disconnect a member, as the phone's disconnect does; their data stays (see erase).

        The grant is revoked at WHOOP, UserDisconnected announced, their WHOOP and API tokens revoked.

        Asks on a terminal; --yes for scripts (without it, refuses when stdin is not a terminal).

        Example:

            $ wear users disconnect 10129 --yes

        Exit status: 0 disconnected; 1 Kafka, PostgreSQL or WHOOP failed (run it again);

        2 unknown user, already disconnected, not confirmed, or no --yes off a terminal.
        """
        run(_disconnect(user, yes, as_json))

    @group.command("erase")
    def erase(user: UserArgument, yes: YesOption = False, as_json: JsonOption = False) -> None:
        """Erase a member (Step 6's erasure); cannot be undone.

        Every row of theirs is deleted; every value of theirs on Kafka is made unreadable.

        Asks on a terminal; --yes for scripts (without it, refuses when stdin is not a terminal).

        Example:

            $ wear users erase 10129 --yes

        Exit status: 0 erased; 1 Kafka or PostgreSQL failed (run it again: every step is safe to repeat);

        2 unknown user, not confirmed, or no --yes off a terminal.
        """
        run(_erase(user, yes, as_json))

    app.add_typer(group, name="users")
