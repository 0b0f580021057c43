"""How a replay command of ``wear`` asks and ends: questions on stderr, the exit code of the function
it fronts as wear's."""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from projections.commands import EXIT_INTERRUPTED, STDERR, say
from wear.common import EXIT_OK, EXIT_USAGE, run

__all__ = ["ask_on_stderr", "asker", "finish", "read_settings"]

T = TypeVar("T")


def read_settings(read: Callable[[], T]) -> T:
    """``read()`` (settings from the environment); a bad value exits 2 in one line naming the setting
    and what is wrong, never the value."""
    try:
        return read()
    except ValidationError as exc:
        found = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors(include_input=False)
        )
        say(STDERR, f"bad setting in the environment ({exc.title}): {found}")
        raise typer.Exit(EXIT_USAGE) from None


def ask_on_stderr(question: str) -> bool:
    """Ask ``question`` on stderr and read the answer on stdin (stdout stays for ``--json``); only
    "y" or "yes" is a yes."""
    say(STDERR, question)
    STDERR.print('Type "yes" to go on: ', end="", markup=False, highlight=False)
    STDERR.file.flush()
    answer = sys.stdin.readline()  # "" at the end of input: no
    return answer.strip().lower() in ("y", "yes")


def asker() -> Callable[[str], bool] | None:
    """The question of a command on a terminal; None off a terminal, where the command fronted refuses
    without ``--yes`` ("stdin is not a terminal")."""
    return ask_on_stderr if sys.stdin.isatty() else None


def finish(coroutine: Coroutine[Any, Any, int]) -> None:
    """Run a command that returns its exit code, its refusal or failure printed already as one line:
    0 returns; 1 (failed), 2 (refused) and 130 (interrupted) exit with that code."""
    try:
        code = run(coroutine)
    except KeyboardInterrupt:  # at a question, before the signal handlers: nothing changed
        say(STDERR, "interrupted: nothing changed")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if code != EXIT_OK:
        raise typer.Exit(code)
