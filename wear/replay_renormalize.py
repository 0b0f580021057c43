"""``wear renormalize``: ``python -m processors renormalize`` (``processors/renormalize.py``) with ``--json``.

The same steps, options and refusals: the dry-run diff first (always), then a new records generation
filled from the document log by the current normalizer, a read-model version built from it and
switched in. The diff and the summary line go to stdout as the processors' command prints them, or,
with ``--json``, to stderr, and stdout gets one JSON document (:func:`document`): the diff per record
type and field (counts only: the example values stay on the terminal), what was read, and the
generation made. Exit codes: 0 done, 1 Kafka or PostgreSQL failing, 2 refused, 130 interrupted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from infra.pipeline_env import PipelineEnvSettings, dev_secret_problems, refusal_line
from processors import renormalize as renormalizing
from processors.normalize import NORMALIZER_VERSION
from processors.record_diff import Diff
from processors.renormalize import Options, Report
from processors.settings import Settings
from projections.commands import STDERR, say
from wear.common import EXIT_USAGE, JsonOption, Usage, parse_since, print_json, usage
from wear.replay_exit import asker, finish, read_settings

__all__ = ["diff_document", "document", "register", "since_of"]

_AGO = re.compile(r"^\d+[mhdw]$")


def since_of(text: str, now: datetime) -> datetime:
    """``--since``: ``30d``/``12h``/``90m``/``2w`` ago (as every wear command reads it), or a date or ISO
    8601 time read as ``python -m processors renormalize`` reads it; :class:`~wear.common.Usage` else."""
    if _AGO.match(text.strip()):
        return parse_since(text, now=now)
    try:
        return renormalizing.parse_since(text.strip(), now)
    except renormalizing.Refused as exc:
        usage(str(exc))


def diff_document(diff: Diff) -> dict[str, Any]:
    """The diff as counts per record type and per changed field (pure; no example value)."""
    return {
        "types": {
            kind: {
                "added": d.added,
                "removed": d.removed,
                "changed": d.changed,
                "envelope_only": d.envelope_only,
                "unchanged": d.unchanged,
                "fields": dict(sorted(d.fields.items())),
            }
            for kind, d in sorted(diff.by_type.items())
        },
        "envelope": dict(sorted(diff.envelope.items())),
        "totals": {
            what: diff.total(what) for what in ("added", "removed", "changed", "envelope_only", "unchanged")
        },
    }


def document(report: Report, options: Options, normalizer_version: int) -> dict[str, Any]:
    """The JSON document of ``wear renormalize --json`` (pure)."""
    counts = report.counts
    return {
        "dry_run": options.dry_run,
        "normalizer_version": normalizer_version,
        "since": None if options.since is None else options.since.isoformat(),
        "serving": report.serving,
        "read": report.read,
        "diff": None if report.diff is None else diff_document(report.diff),
        "generation": report.generation,
        "topic": report.topic,
        "documents": None if counts is None else counts.documents,
        "records": None if counts is None else counts.records,
        "dead_lettered": None if counts is None else counts.dead_lettered,
        "erased": None if counts is None else counts.erased,
        "skipped_before_since": None if counts is None else counts.skipped,
        "seconds": None if report.seconds is None else round(report.seconds, 3),
        "served": report.served,
    }


def _settings() -> Settings:
    settings = read_settings(Settings.from_env)
    if problems := dev_secret_problems(
        read_settings(PipelineEnvSettings),
        token_vault_keys=settings.vault.token_vault_keys,
        whoop_client_secret=settings.whoop.whoop_client_secret,
    ):
        say(STDERR, refusal_line("wear renormalize", problems).rstrip())
        raise typer.Exit(EXIT_USAGE)
    renormalizing.configure_logging()
    return settings


def renormalize(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff only; change nothing.")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Re-normalize only the documents stored at or after DATE (30d, 12h, YYYY-MM-DD in UTC, "
            "or an ISO 8601 time); the other records are copied as they are.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask (required off a terminal).")] = False,
    bulk: Annotated[bool, typer.Option("--bulk", help="Build the read-model version in bulk.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-normalize the document log into a new records generation, serve it.

    The diff against the serving generation comes first (per record type
    and field); --dry-run stops there. Then whoop.documents.v1 goes
    through the current normalizer into a new generation, a read-model
    version is built from it and switched in; `wear rollback` serves the
    previous one again. Progress bars (rate, ETA) go to stderr. Exit 2 on
    a bad --since, off a terminal without --yes, or not confirmed.

    Example:

        $ wear renormalize --dry-run --json | jq '.diff.totals'
    """
    settings = _settings()
    try:
        moment = None if since is None else since_of(since, datetime.now(UTC))
    except Usage as exc:
        say(STDERR, f"refused, nothing changed: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    options = Options(dry_run=dry_run, since=moment, yes=yes, bulk=bulk)
    report = Report()
    out = Console(stderr=True, soft_wrap=True) if as_json else None
    finish(
        renormalizing.renormalize(settings, options, handle_signals=True, ask=asker(), out=out, report=report)
    )
    if as_json:
        print_json(document(report, options, NORMALIZER_VERSION))


def register(app: typer.Typer) -> None:
    """Add ``renormalize`` to ``app``."""
    app.command("renormalize")(renormalize)
