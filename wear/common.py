"""What every ``wear`` subcommand shares: exit codes, one-line errors, JSON output, time parsing.

A subcommand raises :class:`Usage` (exit 2) for bad usage or bad input and :class:`SystemFailure`
(exit 1) when the system fails; :func:`run` turns those, and Kafka or PostgreSQL being unreachable,
into one line on stderr without a traceback and without a secret. ``--json`` output is one JSON
document on stdout (:func:`print_json`), or JSON lines for streams (:func:`print_json_line`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Coroutine
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import orjson
import typer
import uvloop
from aiokafka.errors import KafkaError
from rich.console import Console

from infra.settings import KafkaSettings, PostgresSettings
from projections.commands import where

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "STDERR",
    "STDOUT",
    "JsonOption",
    "SystemFailure",
    "Usage",
    "fail",
    "parse_since",
    "print_json",
    "print_json_line",
    "run",
    "usage",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

PIPE_WIDTH = 160  # a table or bar written to a pipe or a file is not cut at rich's default 80 columns


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=PIPE_WIDTH if wide else None)


STDOUT = _console(stderr=False)
STDERR = _console(stderr=True)

JsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON document on stdout (JSON lines for streams).")
]

T = TypeVar("T")


class Usage(Exception):
    """Bad usage or bad input (exit 2); the message is one line."""


class SystemFailure(Exception):
    """Kafka, PostgreSQL or WHOOP unreachable or failing (exit 1); the message is one line, no secret."""


def usage(line: str) -> NoReturn:
    """Stop with exit 2 and ``line``."""
    raise Usage(line)


def fail(line: str) -> NoReturn:
    """Stop with exit 1 and ``line``."""
    raise SystemFailure(line)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_line(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line that ``exc`` ends a command with."""
    if isinstance(exc, Usage):
        return EXIT_USAGE, _one_line(str(exc))
    if isinstance(exc, SystemFailure):
        return EXIT_FAILED, _one_line(str(exc))
    if isinstance(exc, KafkaError):
        servers = KafkaSettings().kafka_bootstrap_servers
        return EXIT_FAILED, f"Kafka unreachable or failing at {servers}: {type(exc).__name__}"
    if isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError):
        place = where(PostgresSettings().database_url)
        return EXIT_FAILED, f"PostgreSQL unreachable or failing at {place}: {type(exc).__name__}"
    raise exc


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on uvloop; a :class:`Usage`, a :class:`SystemFailure` or an unreachable service
    ends the process with its exit code and one line on stderr."""
    try:
        return uvloop.run(coroutine)
    except (Usage, SystemFailure, KafkaError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        code, line = error_line(exc)
        STDERR.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code) from None


def print_json(document: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def print_json_line(document: Any) -> None:
    """One JSON line on stdout, flushed (for streams)."""
    sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
    sys.stdout.flush()


_AGO = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``90m``, ``2w`` ago, or an ISO date / aware datetime, as an aware UTC datetime.

    Raises :class:`Usage` naming the accepted forms on anything else (and on a moment in the future).
    """
    now = now or datetime.now(UTC)
    found = _AGO.match(text.strip())
    if found:
        moment = now - timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    else:
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            usage(f"bad date {text[:40]!r}: use 30d, 12h, 90m, 2w, 2026-11-01 or 2026-11-01T06:00:00Z")
        if parsed.tzinfo is None:
            if len(text.strip()) > 10:
                usage(f"bad date {text[:40]!r}: a time needs its UTC offset, e.g. 2026-11-01T06:00:00Z")
            parsed = parsed.replace(tzinfo=UTC)
        moment = parsed.astimezone(UTC)
    if moment > now:
        usage(f"bad date {text[:40]!r}: it is in the future")
    return moment


def parse_day(text: str) -> date:
    """An ISO date (``2026-11-01``); :class:`Usage` otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        usage(f"bad date {text[:40]!r}: use YYYY-MM-DD")
