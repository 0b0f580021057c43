"""``wear export``: records, documents or read models to JSON lines or Parquet, streamed.

``--from records`` reads the records topic the served read-model version projects (the serving
records generation: ``projections.versions``, else ``PROJECTIONS_RECORDS_TOPIC``); ``--from
documents`` reads ``FETCHER_DOCUMENTS_TOPIC`` (``whoop.documents.v1``); ``--from read-models``
reads the served read-model version in PostgreSQL. Sealed values are opened with their member's
data key; erased members' values and tombstones are skipped and counted (``wear.export_sources``).

``--format jsonl`` writes one file, one line per record as it is on the topic (its canonical JSON);
``--format parquet`` writes a directory with one file per type, ``<type>.parquet``, with the explicit
schemas of ``wear.export_schemas``. Memory stays bounded: batches of 2,000 records are read, and at
most 10,000 rows per type wait for their Parquet row group (``wear.export_writers``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import asyncpg
import typer
from pydantic import ValidationError

from infra import connections, erasure_gate
from infra.db import create_pool
from infra.member_keys import MemberKeys, PooledKeys, has_key
from infra.pipeline_env import PipelineEnvSettings, dev_secret_problems
from infra.progress_bar import progress_bar
from infra.settings import KafkaSettings, PostgresSettings
from infra.vault import VaultSettings
from processors.log_reader import total as span_total
from processors.settings import FetcherSettings
from projections import versions
from projections.commands import configure_logging, say
from projections.settings import ProjectionsSettings
from projections.versions import Connection
from schemas.identity import user_id_for_whoop_member
from wear.common import STDERR, STDOUT, JsonOption, fail, print_json, run, usage
from wear.export_schemas import READ_MODEL_SCHEMAS, record_table, row_table
from wear.export_sources import (
    READ_MODEL_OF,
    RECORD_NAMES,
    RESOURCE_TYPES,
    Selection,
    Tally,
    read_model_batches,
    read_model_line,
    read_model_total,
    topic_batches,
    topic_spans,
)
from wear.export_writers import Format, JsonLinesSink, ParquetSink, Sink, check_out

__all__ = ["Request", "parse_request", "parse_user", "parse_window", "register", "summary_line"]

Source = Literal["records", "documents", "read-models"]
SOURCES: Final[tuple[Source, ...]] = ("records", "documents", "read-models")
FORMATS: Final[tuple[Format, ...]] = ("jsonl", "parquet")
_PLURALS = {"cycles": "cycle", "sleeps": "sleep", "recoveries": "recovery", "workouts": "workout"}


@dataclass(frozen=True)
class Request:
    """An export asked for, checked."""

    source: Source
    fmt: Format
    out: Path
    selection: Selection

    def names(self) -> list[str]:
        """The types written, in a stable order (one Parquet file each)."""
        kinds = [kind for kind in RESOURCE_TYPES if kind in self.selection.types]
        if self.source == "records":
            return [name for kind in kinds for name in RECORD_NAMES[kind]]
        if self.source == "documents":
            return ["DocumentFetched"]
        return [READ_MODEL_OF[kind][0] for kind in kinds]


def parse_user(text: str) -> str:
    """Our user id: a UUID as it is, or a WHOOP member id (digits) turned into ours; exit 2 otherwise."""
    raw = text.strip()
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return user_id_for_whoop_member(int(raw))
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        usage(f"unknown user {raw[:64]!r}: give our user id (a UUID) or a WHOOP member id")


def _moment(text: str, option: str, *, end: bool) -> datetime:
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment  # --end DAY includes that day
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        usage(f"bad date {text[:40]!r} for {option}: use 2026-11-01 or 2026-11-01T06:00:00Z")
    if parsed.tzinfo is None:
        usage(f"bad date {text[:40]!r} for {option}: a time needs its UTC offset, e.g. 2026-11-01T06:00:00Z")
    return parsed.astimezone(UTC)


def parse_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """``--start``/``--end``: a date (``--end`` includes it) or an aware ISO time; start before end."""
    first = None if start is None else _moment(start, "--start", end=False)
    last = None if end is None else _moment(end, "--end", end=True)
    if first is not None and last is not None and first >= last:
        usage(f"--start {start} is not before --end {end}")
    return first, last


def _types(values: list[str] | None) -> frozenset[str]:
    if not values:
        return frozenset(RESOURCE_TYPES)
    wanted = {item.strip().lower() for value in values for item in value.split(",") if item.strip()}
    wanted = {_PLURALS.get(item, item) for item in wanted}
    unknown = sorted(wanted - set(RESOURCE_TYPES))
    if unknown or not wanted:
        usage(f"unknown type {(unknown or [''])[0][:40]!r}: use {', '.join(RESOURCE_TYPES)}")
    return frozenset(wanted)


def parse_request(
    source: str | None,
    fmt: str | None,
    out: str | None,
    *,
    user: str | None = None,
    start: str | None = None,
    end: str | None = None,
    types: list[str] | None = None,
) -> Request:
    """The options, checked without I/O but for ``--out`` (exit 2 with one line on bad input)."""
    if source not in SOURCES:
        usage(f"unknown --from {str(source)[:40]!r}: use {', '.join(SOURCES)}")
    if fmt not in FORMATS:
        usage(f"unknown --format {str(fmt)[:40]!r}: use {', '.join(FORMATS)}")
    if not out:
        usage("--out PATH is required: a file for jsonl, a directory for parquet")
    first, last = parse_window(start, end)
    selection = Selection(
        user=None if user is None else parse_user(user), start=first, end=last, types=_types(types)
    )
    request = Request(source, fmt, Path(out), selection)
    check_out(request.out, request.fmt)
    return request


def summary_line(summary: dict[str, Any]) -> str:
    """``exported 1,234 records to PATH in 3.2 s (CycleRecorded 300, ...); skipped: ...``."""
    written = ", ".join(f"{name} {n:,}" for name, n in summary["written"].items() if n) or "none"
    skipped = ", ".join(f"{n:,} {why}" for why, n in summary["skipped"].items() if n) or "none"
    return (
        f"exported {summary['records']:,} records from {summary['source']} to {summary['out']}"
        f" in {summary['seconds']:.1f} s ({written}); skipped: {skipped}"
    )


# --- running it -------------------------------------------------------------------------------------------


def _settings() -> tuple[KafkaSettings, PostgresSettings, VaultSettings, str, str]:
    try:
        vault = VaultSettings()
        problems = dev_secret_problems(PipelineEnvSettings(), token_vault_keys=vault.token_vault_keys)
        records = ProjectionsSettings().records_topic
        documents = FetcherSettings().documents_topic
        kafka, postgres = KafkaSettings(), PostgresSettings()
    except ValidationError as exc:
        names = ", ".join(str(error["loc"][0]).upper() for error in exc.errors() if error["loc"])
        usage(f"bad setting: {names or 'environment'}")
    if problems:
        usage(f"refusing to export: {'; '.join(problems)}; set your own, or PIPELINE_ENV=dev")
    return kafka, postgres, vault, records, documents


async def _known(connection: Connection, user: str) -> bool:
    """Connected once, holding a data key, erased, or in the served read models (each owner asked)."""
    return (
        await connections.exists(connection, user)
        or await has_key(connection, user)
        or await erasure_gate.is_closed(connection, user)
        or await versions.serves_member(connection, user)
    )


def _sink(request: Request, *, read_models: bool) -> Sink:
    try:
        if request.fmt == "jsonl":
            if read_models:
                return JsonLinesSink(request.out, lambda item: read_model_line(*item))
            return JsonLinesSink(request.out, lambda item: item)
        table = row_table if read_models else record_table
        return ParquetSink(request.out, request.names(), table)
    except OSError as exc:
        usage(f"--out {str(request.out)[:120]} cannot be written: {exc.strerror or type(exc).__name__}")


async def _export(request: Request) -> dict[str, Any]:
    kafka, postgres, vault, records_topic, documents_topic = _settings()
    started = time.monotonic()
    tally = Tally(written=dict.fromkeys(request.names(), 0))
    pool = await create_pool(postgres, migrate=False, max_size=2)
    try:
        async with pool.acquire() as connection:
            user = request.selection.user
            if user is not None and not await _known(connection, user):
                usage(f"unknown user {user}: never connected, no data key, never erased, no read models")
            if request.source == "records":
                source = (await versions.serving(connection)).topic(records_topic)
            elif request.source == "documents":
                source = documents_topic
            else:
                source = ""
        if request.source == "read-models":
            source, files = await _from_read_models(pool, request, tally)
        else:
            keys = PooledKeys(pool, MemberKeys(vault.keyring()))
            files = await _from_topic(kafka, keys, source, request, tally)
    finally:
        await pool.close()
    return {
        "from": request.source,
        "source": source,
        "format": request.fmt,
        "out": str(request.out),
        "files": files,
        "records": sum(tally.written.values()),
        "written": tally.written,
        "read": tally.read,
        "skipped": tally.skipped(),
        "seconds": round(time.monotonic() - started, 3),
    }


def _finish(sink: Sink) -> dict[str, str]:
    try:
        return sink.finish()
    except OSError as exc:
        sink.abort()
        fail(f"writing the export failed: {exc.strerror or type(exc).__name__}")


async def _from_topic(
    kafka: KafkaSettings, keys: PooledKeys, topic: str, request: Request, tally: Tally
) -> dict[str, str]:
    of = await topic_spans(kafka, topic, request.selection.user)
    total = span_total(of)
    sink = _sink(request, read_models=False)
    jsonl = request.fmt == "jsonl"
    done = False
    try:
        with progress_bar(STDERR) as bar:
            task = bar.add_task(f"export {request.source}", total=total, unit="records")
            async for count, items in topic_batches(
                kafka, keys, topic, of, request.selection, tally, documents=request.source == "documents"
            ):
                by_name: dict[str, list[Any]] = {}
                for name, _, item, plain in items:
                    by_name.setdefault(name, []).append(plain if jsonl else item)
                for name, kept in by_name.items():
                    _write(sink, name, kept)
                    tally.written[name] = tally.written.get(name, 0) + len(kept)
                bar.advance(task, count)
            bar.update(task, completed=total)
        done = True
    finally:
        if not done:
            sink.abort()
    return _finish(sink)


async def _from_read_models(pool: asyncpg.Pool, request: Request, tally: Tally) -> tuple[str, dict[str, str]]:
    sink = _sink(request, read_models=True)
    jsonl = request.fmt == "jsonl"
    done = False
    try:
        async with (
            pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            number, total = await read_model_total(connection, request.selection)
            with progress_bar(STDERR) as bar:
                task = bar.add_task("export read models", total=total, unit="rows")
                async for table, rows in read_model_batches(connection, request.selection):
                    tally.read += len(rows)
                    _write(sink, table, [(table, row) for row in rows] if jsonl else rows)
                    tally.written[table] = tally.written.get(table, 0) + len(rows)
                    bar.advance(task, len(rows))
        done = True
    finally:
        if not done:
            sink.abort()
    return f"read-model version {number}", _finish(sink)


def _write(sink: Sink, name: str, items: list[Any]) -> None:
    try:
        sink.write(name, items)
    except OSError as exc:
        fail(f"writing the export failed: {exc.strerror or type(exc).__name__}")


_TABLES = ", ".join(READ_MODEL_SCHEMAS)


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""

    @app.command("export")
    def export(
        source: Annotated[
            str | None,
            typer.Option(
                "--from", help="What to export: records, documents or read-models.", show_default=False
            ),
        ] = None,
        fmt: Annotated[
            str | None, typer.Option("--format", help="jsonl (one file) or parquet (a directory).")
        ] = None,
        out: Annotated[
            str | None,
            typer.Option(
                "--out", help="The file (jsonl) or directory (parquet) to write.", show_default=False
            ),
        ] = None,
        user: Annotated[
            str | None, typer.Option("--user", help="Only this member (our user id or WHOOP member id).")
        ] = None,
        start: Annotated[
            str | None, typer.Option("--start", help="Records from this date or aware ISO time (included).")
        ] = None,
        end: Annotated[
            str | None,
            typer.Option("--end", help="Records before this aware ISO time, or up to this date (included)."),
        ] = None,
        types: Annotated[
            list[str] | None,
            typer.Option("--types", help="cycle, sleep, recovery, workout (comma-separated or repeated)."),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Export records, documents or read models to JSON lines or Parquet, streamed with bounded memory.

        --format jsonl writes one file (one record per line, its canonical JSON as on the topic); --format parquet writes a directory with one file per type: CycleRecorded.parquet, CycleDeleted.parquet ... (records), DocumentFetched.parquet (documents), rm_cycles.parquet ... (read models). A record's time for --start/--end is its start (a recovery's: WHOOP's created_at); deletions have none and are left out of a window. Tombstones and erased members' values are skipped and counted.

        Example:

            $ wear export --from records --user 10129 --start 2026-11-01 --end 2026-11-30 --types sleep,recovery --format parquet --out ./export

            exported 58 records from wear.records.v1 to export in 1.4 s (SleepRecorded 29, RecoveryRecorded 29); skipped: 1,742 filtered

        Exit status:

        0 exported;

        1 Kafka or PostgreSQL unreachable, or writing failed;

        2 bad input: unknown --from or --format, unknown user, bad date, --start not before --end, unknown type, unwritable --out.
        """  # noqa: E501 - typer shows each line as it is
        configure_logging()

        async def main() -> dict[str, Any]:
            request = parse_request(source, fmt, out, user=user, start=start, end=end, types=types)
            return await _export(request)

        try:
            summary = run(main())
        except KeyboardInterrupt:  # the partial files were removed on the way out
            say(STDERR, "error: interrupted; nothing was written")
            raise typer.Exit(130) from None
        if as_json:
            print_json(summary)
        else:
            say(STDOUT, summary_line(summary))
