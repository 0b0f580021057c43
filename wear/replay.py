"""``wear rebuild | versions | switch | rollback | drop | renormalize``: the replay commands of Step 7.

A thin front end over ``python -m projections rebuild|versions|switch|rollback|drop``
(``projections/rebuild.py``, ``projections/version_commands.py``) and ``python -m processors
renormalize`` (``wear/replay_renormalize.py``): the same functions, options and semantics, with
``--json`` (one JSON document on stdout) and wear's exit codes: 0 done, 1 Kafka or PostgreSQL
unreachable or failing, 2 refused (bad input, an unknown version, a rebuild already running, not
verified without ``--force``, not confirmed), 130 interrupted. The human lines, the progress bar and
the one-line refusals go to stderr, as the commands they front print them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from infra.db import create_pool
from infra.pipeline_env import PipelineEnvSettings, SharedSecretsSettings, dev_secret_problems, refusal_line
from projections import rebuild as rebuilding
from projections import version_commands, versions
from projections.commands import STDERR, configure_logging, postgres_errors, say
from projections.rebuild import RebuildSummary
from projections.settings import Settings
from wear import replay_renormalize
from wear.common import EXIT_USAGE, JsonOption, print_json, run
from wear.replay_exit import asker, finish, read_settings

__all__ = ["projections_settings", "register", "summary_document"]

YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask (required when stdin is not a terminal).")]


def projections_settings(program: str, *, opens_records: bool) -> Settings:
    """The projections' settings from the environment; exit 2 (one line) on a public development secret
    outside ``PIPELINE_ENV=dev``, as ``python -m projections`` refuses (``infra/pipeline_env.py``)."""
    settings = read_settings(Settings.from_env)
    carried = read_settings(SharedSecretsSettings)
    vault_keys = settings.vault.token_vault_keys if opens_records else carried.token_vault_keys
    if problems := dev_secret_problems(
        read_settings(PipelineEnvSettings),
        token_vault_keys=vault_keys,
        whoop_client_secret=carried.whoop_client_secret,
    ):
        say(STDERR, refusal_line(program, problems).rstrip())
        raise typer.Exit(EXIT_USAGE)
    configure_logging()
    return settings


def summary_document(summary: RebuildSummary) -> dict[str, Any]:
    """The JSON document of ``wear rebuild --json`` (pure)."""
    rate = summary.records / summary.seconds if summary.seconds > 0 else 0.0
    return {
        "rebuilt": True,
        "records": summary.records,
        "seconds": round(summary.seconds, 3),
        "records_per_s": round(rate, 1),
        "dead_lettered": summary.dead_lettered,
        "erased": summary.erased,
        "switched_from": summary.switched_from,
        "switched_to": summary.switched_to,
        "sync_activity": summary.activity,
    }


async def _served(settings: Settings) -> tuple[int, int | None]:
    """The version served now and the one served before it."""
    with postgres_errors(settings):
        pool = await create_pool(settings.postgres, migrate=False, max_size=1)
    try:
        async with pool.acquire() as connection:
            now = await versions.serving(connection)
            before = await versions.previous(connection)
    finally:
        await pool.close()
    return now.number, None if before is None else before.number


def rebuild(
    yes: YesOption = False,
    bulk: Annotated[
        bool, typer.Option("--bulk", help="Load the new version with COPY, keys and indexes built after.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Serve the version even when its verification does not balance.")
    ] = False,
    records_topic: Annotated[
        str | None,
        typer.Option(
            "--records-topic",
            metavar="TOPIC",
            help="Build from this records topic (a generation of `wear renormalize`); "
            "default: the served version's topic.",
        ),
    ] = None,
    with_sync_activity: Annotated[
        bool,
        typer.Option(
            "--with-sync-activity",
            help="Also rebuild rm_sync_activity in place (refused while a projection runs).",
        ),
    ] = False,
    catch_up_s: Annotated[
        float,
        typer.Option(
            "--catch-up-s",
            metavar="SECONDS",
            min=0,
            help="Longest wait for the new version to catch up with the served one at the switch.",
        ),
    ] = rebuilding.CATCH_UP_S,
    as_json: JsonOption = False,
) -> None:
    """Build a new read-model version from the log, verify it, serve it.

    The served version keeps serving until the switch; `wear rollback`
    serves it again. A progress bar (rate, ETA), the verification and the
    summary line go to stderr. Exit 2 when a rebuild already runs, the
    topic is unknown, the version does not verify (without --force) or
    the switch is not confirmed. An interrupted rebuild resumes next run.

    Example:

        $ wear rebuild --bulk --yes --json
    """
    settings = projections_settings("wear rebuild", opens_records=True)
    summaries: list[RebuildSummary] = []
    finish(
        rebuilding.rebuild(
            settings,
            yes=yes,
            bulk=bulk,
            force=force,
            records_topic=records_topic,
            sync_activity=with_sync_activity,
            catch_up_s=catch_up_s,
            handle_signals=True,
            ask=asker(),
            on_summary=summaries.append,
        )
    )
    if as_json:
        print_json(summary_document(summaries[0]))


def list_versions(as_json: JsonOption = False) -> None:
    """List the read-model versions: state, served, topic, times, rows.

    Example:

        $ wear versions --json | jq '.serving'
    """
    settings = projections_settings("wear versions", opens_records=False)
    finish(version_commands.show(settings, as_json=as_json))


VersionArgument = Annotated[int, typer.Argument(help="A read-model version number.")]


def switch(
    version: VersionArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Also a version that is not verified (still building).")
    ] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Serve another read-model version; `wear rollback` switches back.

    One transaction: the query API switches at once. Exit 2 for an
    unknown version, the version already served, an unverified one
    without --force, or no confirmation.

    Example:

        $ wear switch 3 --yes
    """
    settings = projections_settings("wear switch", opens_records=False)
    finish(version_commands.switch(settings, version, force=force, yes=yes, ask=asker()))
    if as_json:
        serving, previous = run(_served(settings))
        print_json({"switched_from": previous, "switched_to": serving, "serving": serving})


def rollback(yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Serve the previous read-model version again.

    Only PostgreSQL is needed. Exit 2 when no previous version is kept,
    or without confirmation.

    Example:

        $ wear rollback --yes --json
    """
    settings = projections_settings("wear rollback", opens_records=False)
    finish(version_commands.rollback(settings, yes=yes, ask=asker()))
    if as_json:
        serving, previous = run(_served(settings))
        print_json({"rolled_back_from": previous, "serving": serving})


def drop(version: VersionArgument, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Delete a read-model version that is not served: tables and offsets.

    Exit 2 for an unknown version, the served one, a building one while
    a rebuild runs, or no confirmation.

    Example:

        $ wear drop 1 --yes
    """
    settings = projections_settings("wear drop", opens_records=False)
    finish(version_commands.drop(settings, version, yes=yes, ask=asker()))
    if as_json:
        serving, _ = run(_served(settings))
        print_json({"dropped": version, "serving": serving})


def register(app: typer.Typer) -> None:
    """Add the replay commands to ``app``."""
    app.command("rebuild")(rebuild)
    app.command("versions")(list_versions)
    app.command("switch")(switch)
    app.command("rollback")(rollback)
    app.command("drop")(drop)
    replay_renormalize.register(app)
