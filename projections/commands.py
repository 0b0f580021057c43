"""What the operator commands of ``python -m projections`` share: exit codes, one-line errors, questions.

``rebuild`` (``projections/rebuild.py``) and the version commands (``projections/version_commands.py``)
end with one of the exit codes below. A refusal or a failure is one line on stderr naming the service
and where it is (host:port/database, never the user or password), without a traceback. A command
that changes what is served asks on a terminal first; ``--yes`` answers for scripts, and without it a
command whose stdin is not a terminal refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.logging import RichHandler

from .settings import Settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "STDERR",
    "Ask",
    "Failed",
    "Interrupted",
    "Refused",
    "ask_on_terminal",
    "configure_logging",
    "confirm",
    "kafka_errors",
    "postgres_errors",
    "refuse_off_terminal",
    "say",
    "where",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130

LOCK_TIMEOUT = "10s"  # how long a command waits for the locks of running batches and queries, then gives up

STDERR = Console(stderr=True)
Ask = Callable[[str], bool]
"""Asks the operator a question; True when they said yes."""


class Refused(Exception):
    """The command did not do what was asked: bad input, not confirmed, or not allowed now (exit 2)."""


class Failed(Exception):
    """A service unreachable or failing (exit 1); the message is one line, without secrets."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the command (exit 130)."""


def where(database_url: str) -> str:
    """host:port/database (and search_path) of a libpq URL, without user or password."""
    parts = urlsplit(database_url)
    place = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    schema = parse_qs(parts.query).get("search_path")
    return f"{place} (search_path {schema[0]})" if schema else place


@contextlib.contextmanager
def postgres_errors(settings: Settings) -> Iterator[None]:
    """PostgreSQL unreachable or failing → :class:`Failed`, naming where, never the password."""
    try:
        yield
    except asyncpg.LockNotAvailableError as exc:
        raise Failed(
            f"the read models stayed locked by running batches or queries for {LOCK_TIMEOUT}: try again"
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Failed(
            f"PostgreSQL unreachable or failing at {where(settings.postgres.database_url)}: "
            f"{type(exc).__name__}"
        ) from exc


@contextlib.contextmanager
def kafka_errors(settings: Settings) -> Iterator[None]:
    """Kafka unreachable or failing → :class:`Failed`, naming the bootstrap servers."""
    try:
        yield
    except KafkaError as exc:
        raise Failed(
            f"Kafka unreachable or failing at {settings.kafka.kafka_bootstrap_servers}: {type(exc).__name__}"
        ) from exc


def say(console: Console, line: str) -> None:
    """Print one line for the operator as it is (no markup, no highlighting, no wrapping)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def refuse_off_terminal(yes: bool, ask: Ask | None) -> None:
    """Refuse a command that would ask its question where nobody can answer it."""
    if not yes and ask is None and not sys.stdin.isatty():
        raise Refused("stdin is not a terminal: pass --yes to go on without a question")


def ask_on_terminal(question: str) -> bool:
    """Print ``question`` on stderr and read the answer on stdin; only "y" or "yes" is a yes."""
    say(STDERR, question)
    try:
        answer = input('Type "yes" to go on: ')
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def confirm(ask: Ask, question: str, stop: asyncio.Event) -> bool:
    """``ask(question)`` in a thread of its own, so that the event loop (a worker catching up) goes on.

    Raises :class:`Interrupted` when ``stop`` is set before the answer. The thread is a daemon: one
    left waiting for a terminal never holds the process back.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bool] = loop.create_future()

    def deliver(outcome: bool | BaseException) -> None:
        if answer.done():
            return
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)

    def asking() -> None:
        outcome: bool | BaseException
        try:
            outcome = ask(question)
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which raises it
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(deliver, outcome)

    threading.Thread(target=asking, name="question", daemon=True).start()
    stopping = asyncio.ensure_future(stop.wait())
    waiting: list[asyncio.Future[Any]] = [answer, stopping]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not answer.done():
        answer.cancel()
        raise Interrupted
    return answer.result()


def configure_logging() -> None:
    """Warnings and errors of the pipeline above the progress bar; aiokafka's own only when critical.

    aiokafka logs every failed connection attempt as an error; the commands say it once, in one line.
    """
    logging.basicConfig(
        level=logging.WARNING,
        format="%(name)s %(message)s",
        handlers=[RichHandler(console=STDERR, show_path=False, rich_tracebacks=False)],
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
