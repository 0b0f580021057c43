"""The console of ``python -m projections rebuild``: the lines it prints, its question, its signals.

The steps (``projections.rebuild``) say what happened; this module words it. The lines are pure
functions of what a run did; :func:`stop_on_signals` turns SIGINT and SIGTERM into the run's stop
event; :func:`run_command` runs the command on uvloop and answers a Ctrl-C that comes before the
handlers are installed. The prompt itself and the progress bar are shared with the other commands
(``projections.commands``, ``projections.replay_workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvloop

from .commands import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_REFUSED, STDERR, Failed, Interrupted, Refused, say
from .versions import Version

__all__ = [
    "aftermath",
    "ended_early",
    "interrupted_message",
    "run_command",
    "stop_on_signals",
    "summary_line",
    "switch_question",
]


def summary_line(
    records: int,
    seconds: float,
    dead_lettered: int,
    erased: int,
    switched: tuple[int, int],
    activity: int | None = None,
) -> str:
    """The line printed when the rebuild ends: what this run read, and the switch."""
    rate = records / seconds if seconds > 0 else 0.0
    line = (
        f"rebuilt: {records:,} records in {seconds:,.1f} s ({rate:,.0f} records/s), "
        f"{dead_lettered:,} dead-lettered, {erased:,} skipped (member erased); "
        f"switched from version {switched[0]} to version {switched[1]}"
    )
    if activity is not None:
        line += f"; rm_sync_activity from {activity:,} webhooks and documents"
    return line


def aftermath(number: int | None, verified: bool) -> str:
    """What a run that ends early leaves behind, and the way on."""
    if number is None:
        return "nothing changed"
    if verified:
        return (
            f"version {number} is verified and not served: `python -m projections switch {number}` serves it"
        )
    return f"version {number} keeps what it applied; run the same command again to resume"


def interrupted_message(done: int, of: int, number: int | None, verified: bool = False) -> str:
    """The line printed on SIGINT or SIGTERM."""
    if number is None or verified:
        return f"interrupted: {aftermath(number, verified)}"
    return f"interrupted after {done:,} of {of:,} offsets: {aftermath(number, verified)}"


def ended_early(
    exc: Refused | Failed | Interrupted, done: int, of: int, number: int | None, verified: bool
) -> tuple[int, str]:
    """The exit code and the line of a run that ended before its switch."""
    if isinstance(exc, Refused):
        return EXIT_REFUSED, f"rebuild refused: {exc}"
    if isinstance(exc, Failed):
        return EXIT_FAILED, f"rebuild failed: {exc}; {aftermath(number, verified)}"
    return EXIT_INTERRUPTED, interrupted_message(done, of, number, verified)


def switch_question(version: Version, topic: str, served: Version, rows: int) -> str:
    """What the command asks before it serves a verified version."""
    return (
        f"Version {version.number} ({version.schema}, from {topic}) is verified: {rows:,} rows. "
        f"Serve it instead of version {served.number}? The query API switches at once, once the version "
        "caught up with the live records; `python -m projections rollback` switches back."
    )


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event, handle: bool) -> Iterator[None]:
    """With ``handle``, SIGINT and SIGTERM set ``stop`` while the block runs."""
    if not handle:
        yield
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_command(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run the command's coroutine on uvloop; its exit code (a Ctrl-C before the handlers: 130)."""
    try:
        return uvloop.run(main())
    except KeyboardInterrupt:  # before the handlers were installed
        say(STDERR, "interrupted: nothing changed")
        return EXIT_INTERRUPTED
